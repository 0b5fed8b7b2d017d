//! The `handoff` command line: argument parsing and dispatch. Each command
//! group lives in its own module and returns an exit code.

mod adapter;
mod audit;

use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Carries approved closure work through to completion, inside declared
/// capabilities, with a verifiable audit trail.
#[derive(Debug, Parser)]
#[command(name = "handoff", version, about, long_about = None)]
pub struct Cli {
    /// Operator configuration. Default: ./handoff.toml when it exists, else
    /// the embedded defaults (store and cache under ./.handoff/).
    #[arg(long, global = true, env = "HANDOFF_CONFIG")]
    config: Option<PathBuf>,

    /// The store (SQLite), overriding the configuration.
    #[arg(long, global = true, env = "HANDOFF_STORE")]
    store: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Review, approve and revoke adapter packages.
    #[command(subcommand)]
    Adapter(adapter::AdapterCommand),
    /// Verify and export the audit chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

/// Exit codes, stable for scripts.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error: bad input, a refused load, a failed operation.
    pub const ERROR: u8 = 1;
    /// The command line itself was wrong (clap's code).
    pub const USAGE: u8 = 2;
    /// `audit verify` found the chain broken.
    pub const VERIFY_FAILED: u8 = 4;
}

/// Run the command line; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANDOFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> Result<u8> {
    let config = load_config(cli.config.as_deref())?;
    let ctx = Ctx {
        store_path: cli.store.unwrap_or_else(|| config.store_path.clone()),
        config,
    };
    match cli.command {
        Command::Adapter(cmd) => adapter::run(cmd, &ctx),
        Command::Audit(cmd) => audit::run(cmd, &ctx),
    }
}

/// What every command may need.
pub(crate) struct Ctx {
    pub config: Config,
    pub store_path: PathBuf,
}

impl Ctx {
    pub fn open_store(&self) -> Result<Store> {
        Store::open(&self.store_path)
            .with_context(|| format!("opening the store at {}", self.store_path.display()))
    }
}

fn load_config(explicit: Option<&Path>) -> Result<Config> {
    match explicit {
        Some(path) => Ok(Config::load(path)?),
        None if Path::new("handoff.toml").is_file() => Ok(Config::load(Path::new("handoff.toml"))?),
        None => Ok(Config::default()),
    }
}
