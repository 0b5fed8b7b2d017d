//! The `handoff` command line: argument parsing and dispatch. Each command
//! group lives in its own module and returns an exit code.

#[macro_use]
mod output;
mod adapter;
mod args;
mod audit;
mod check;
mod conform;
mod demo;
mod dry_run;
mod failure;
mod follow_ups;
mod policy;
mod run;
mod runs;
mod serve;
mod shadow;
mod store;

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
    /// Check that every configured policy and adapter instance would be let
    /// run: each policy parses and is approved as it stands, each adapter
    /// is approved and loads with its bindings. Lists every problem with its
    /// fix; exits 1 when there is one. Writes nothing.
    Check {
        /// Also list, under each ready adapter instance, what it may touch
        /// (its effective grant, each directory where it is bound, the
        /// config keys it was given) and what the policies ask of it.
        #[arg(long)]
        reach: bool,
        /// One JSON array instead of text (with every instance's reach).
        #[arg(long)]
        json: bool,
    },
    /// Run the release-readiness scenario and its failure variants on the
    /// embedded default, and show what became of each. Each case has a
    /// configuration of its own: `--config`, `--store` and a handoff.toml
    /// in the current directory play no part.
    Demo {
        /// Where the cases' stores and systems are kept (made fresh).
        #[arg(long, default_value = "handoff-demo")]
        dir: PathBuf,
        /// The adapter packages to use (default: the ones this build made).
        #[arg(long, default_value = crate::BUILT_PACKAGES_DIR)]
        packages: PathBuf,
        /// One JSON object (every case, its outcomes, writes, packets and
        /// audit) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Review, approve and revoke policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Take one event through the pipeline.
    Run {
        /// A CloudEvents 1.0 JSON file. With --dry-run it may be given
        /// several times, to replay past events (against a changed policy,
        /// say): each is tried on its own and a summary follows. `-` reads
        /// it from standard input.
        #[arg(long, required = true)]
        event: Vec<PathBuf>,
        /// The linked workflow context (JSON object), for `{{context.*}}`;
        /// `-` reads it from standard input.
        #[arg(long)]
        context: Option<PathBuf>,
        /// Only read: revalidate, check, plan and observe every step's
        /// target, then say what a run would do. Nothing is written to the
        /// targets or stored (the event can be run for real afterwards); a
        /// policy not yet approved can be tried. Exits as the run would.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Drive every unfinished run (after a crash or a stop) to an outcome.
    Resume {
        /// The runs' reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the service: signed events over HTTP (POST /v1/events), up to
    /// serve.max-in-flight runs driven at once, /healthz, /readyz and
    /// /metrics; stops on SIGTERM or Ctrl-C.
    Serve {
        /// Overrides serve.listen (use 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Logs as JSON lines (on stderr); `--json` says the same.
        #[arg(long, visible_alias = "json")]
        log_json: bool,
    },
    /// List runs and show one run's timeline.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// The store as a file: an online backup, verified.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Packets handed to people, and their resolution.
    #[command(subcommand, name = "follow-ups")]
    FollowUps(follow_ups::FollowUpsCommand),
    /// What policies in shadow mode would have done, against what people did.
    #[command(subcommand)]
    Shadow(shadow::ShadowCommand),
    /// Print a completion script for a shell, made from these definitions
    /// (bash: `source <(handoff completions bash)`).
    Completions { shell: clap_complete::Shell },
    /// Write man pages, one per command, into a directory
    /// (`scripts/man` makes them under target/man).
    Man {
        /// Where the pages go (made if missing).
        dir: PathBuf,
    },
}

/// Exit codes, stable for scripts.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error: bad input, a refused load, a failed operation.
    pub const ERROR: u8 = 1;
    /// The command line itself was wrong (clap's code).
    pub const USAGE: u8 = 2;
    /// A run ended needing a person: halted-for-follow-up or
    /// partially-completed.
    pub const FOLLOW_UP: u8 = 3;
    /// `audit verify` found the chain broken.
    pub const VERIFY_FAILED: u8 = 4;
}

/// Run the command line; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(wrong) => return failure::usage(&wrong),
    };
    // The demo's output is its table; retries it provokes on purpose are
    // not warnings to the person reading it.
    // Kept to the end: dropping it sends the traces still batched.
    let _traces = match cli.command {
        Command::Demo { .. } => init_tracing("error", false),
        Command::Serve { log_json, .. } => init_tracing("info", log_json),
        _ => init_tracing("warn", false),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => failure::told(&err),
    }
}

fn init_tracing(default: &str, json: bool) -> crate::telemetry::Guard {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{Layer, Registry};
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANDOFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal who did not turn them off
    // (NO_COLOR, https://no-color.org: set and not empty): a log written to
    // a file or a pipe (a log shipper, `2> serve.log`) keeps plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let log: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    // Traces keep the pipeline's spans whatever the log level is (HANDOFF_LOG
    // says what is logged, not what is traced).
    let (traces, guard) = crate::telemetry::layer::<Registry>();
    let traces = traces.map(|t| {
        t.with_filter(
            tracing_subscriber::filter::Targets::new().with_target("handoff", tracing::Level::INFO),
        )
        .boxed()
    });
    let layers: Vec<_> = std::iter::once(log).chain(traces).collect();
    let _ = tracing_subscriber::registry().with(layers).try_init();
    guard
}

fn run(cli: Cli) -> Result<u8> {
    // The demo writes its own configuration for each case: a handoff.toml
    // where it is started (another project's, an older one) is not its
    // business, and must not stop it.
    if let Command::Demo {
        dir,
        packages,
        json,
    } = &cli.command
    {
        return demo::run(dir, packages, *json);
    }
    // Made from the definitions alone: no configuration is read.
    match &cli.command {
        Command::Completions { shell } => {
            // Made in memory first: clap_complete panics on a write error
            // (a closed pipe), where this says it and exits.
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "handoff", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .context("writing the completion script")?;
            return Ok(exit::OK);
        }
        Command::Man { dir } => return man_pages(dir),
        _ => {}
    }
    let mut config = load_config(cli.config.as_deref())?;
    if let Some(store) = cli.store {
        config = config.with_store(store)?;
    }
    let ctx = Ctx { config };
    match cli.command {
        Command::Adapter(cmd) => adapter::run(cmd, &ctx),
        Command::Audit(cmd) => audit::run(cmd, &ctx),
        Command::Check { reach, json } => check::check(&ctx, reach, json),
        Command::Policy(cmd) => policy::run(cmd, &ctx),
        Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("made above, without a config")
        }
        Command::Run { event, context, .. }
            if event
                .iter()
                .chain(&context)
                .filter(|p| p.as_os_str() == crate::files::STANDARD_INPUT)
                .count()
                > 1 =>
        {
            anyhow::bail!(
                "standard input (`-`) is read once: give it for one --event or for --context, \
                 and the others as files"
            )
        }
        Command::Run {
            event,
            context,
            dry_run: true,
            json,
        } => dry_run::dry_run(&ctx, &event, context.as_deref(), json),
        Command::Run {
            event,
            context,
            dry_run: false,
            json,
        } => match event.as_slice() {
            [one] => run::run_event(&ctx, one, context.as_deref(), json),
            _ => anyhow::bail!(
                "a run takes one event ({} given); to try several without running them, add --dry-run",
                event.len()
            ),
        },
        Command::Resume { json } => run::resume(&ctx, json),
        Command::Serve { listen, .. } => serve::serve(&ctx, listen),
        Command::Runs(cmd) => runs::run(cmd, &ctx),
        Command::Store(cmd) => store::run(cmd, &ctx),
        Command::FollowUps(cmd) => follow_ups::run(cmd, &ctx),
        Command::Shadow(cmd) => shadow::run(cmd, &ctx),
    }
}

/// `handoff.1` and a page for each subcommand (`handoff-run.1`...).
fn man_pages(dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(exit::OK)
}

/// What every command may need.
pub(crate) struct Ctx {
    /// With its store where `--store` says, when it says.
    pub config: Config,
}

impl Ctx {
    /// The store, made (with its directory) when there is none yet: for
    /// the commands that put something in it (approve, run, serve).
    pub fn open_store(&self) -> Result<Store> {
        let store = Store::open(&self.config.store_path).with_context(|| {
            format!("opening the store at {}", self.config.store_path.display())
        })?;
        store.set_durability(self.config.durability)?;
        Ok(store)
    }

    /// The store, which must exist: a command that reads or acts on what
    /// was stored says there is nothing there instead of making an empty
    /// store (a mistyped path would otherwise answer "no runs", or verify
    /// an empty audit chain).
    pub fn existing_store(&self) -> Result<Store> {
        self.must_exist()?;
        self.open_store()
    }

    /// The store when there is one, else an empty one in memory: for the
    /// commands that only look at what is approved, which write nothing.
    pub fn store_or_empty(&self) -> Result<Store> {
        if self.config.store_path.exists() {
            self.open_store()
        } else {
            Ok(Store::in_memory()?)
        }
    }

    /// Refuses, saying where it looked, when the store file is missing.
    pub fn must_exist(&self) -> Result<()> {
        if !self.config.store_path.exists() {
            anyhow::bail!(
                "there is no store at {}: nothing has been stored with this configuration yet \
                 (check --store, HANDOFF_STORE or [store] path)",
                self.config.store_path.display()
            );
        }
        Ok(())
    }
}

fn load_config(explicit: Option<&Path>) -> Result<Config> {
    match explicit {
        Some(path) => Ok(Config::load(path)?),
        None if Path::new("handoff.toml").is_file() => Ok(Config::load(Path::new("handoff.toml"))?),
        None => Ok(Config::from_env()?),
    }
}
