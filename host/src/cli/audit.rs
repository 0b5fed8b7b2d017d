//! `handoff audit ...`: verify the chain offline, export it for other tools.

use super::{Ctx, exit};
use crate::audit;
use anyhow::Result;
use clap::Subcommand;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; name the first bad row.
    Verify,
    /// Write the rows as JSON Lines to standard output.
    Export {
        /// Only this run's rows.
        #[arg(long)]
        run: Option<String>,
    },
}

pub fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<u8> {
    let store = ctx.open_store()?;
    match cmd {
        AuditCommand::Verify => match audit::verify(store.audit_rows(None)?) {
            Ok(v) => {
                println!("audit chain verified: {} rows, head {}", v.rows, v.head);
                Ok(exit::OK)
            }
            Err(broken) => {
                eprintln!("{broken}");
                Ok(exit::VERIFY_FAILED)
            }
        },
        AuditCommand::Export { run } => {
            let mut out = std::io::stdout().lock();
            for row in store.audit_rows(run.as_deref())? {
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            }
            Ok(exit::OK)
        }
    }
}
