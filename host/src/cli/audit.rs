//! `handoff audit ...`: verify the chain offline (against anchors kept
//! elsewhere, when given), print its head as an anchor, export it for other
//! tools.

use super::{Ctx, exit};
use crate::audit::{self, anchor::Anchor};
use crate::store::audit::PROGRESS_EVERY;
use crate::store::{Store, StoreError};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; name the first bad row. With anchors (rows
    /// as `audit head` printed them, kept outside the store), also check
    /// that the chain still holds each of them: a chain cut short or
    /// rewritten from some row on verifies alone, but not against an
    /// anchor taken before.
    Verify {
        /// An anchor, SEQ:HASH (repeatable).
        #[arg(long = "anchor", value_name = "SEQ:HASH")]
        anchors: Vec<String>,
        /// A file of anchors, one SEQ:HASH per line (`#` starts a comment);
        /// `-` reads them from standard input.
        #[arg(long = "anchors", value_name = "FILE")]
        anchor_file: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify the chain and print its newest row as an anchor (SEQ:HASH),
    /// to be kept outside the store and given to `verify --anchor` later.
    Head {
        /// One JSON object (`seq`, `hash`, `anchor`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the rows as JSON Lines to standard output.
    Export {
        /// Only this run's rows.
        #[arg(long)]
        run: Option<String>,
        /// Accepted for uniformity: the rows are JSON Lines either way.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<u8> {
    let store = ctx.existing_store()?;
    match cmd {
        AuditCommand::Verify {
            anchors,
            anchor_file,
            json,
        } => {
            let mut anchors = anchors
                .iter()
                .map(|a| Anchor::parse(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            if let Some(path) = anchor_file {
                let name = crate::files::input_name(&path);
                let text =
                    crate::files::read_text_input_at_most(&path, crate::files::ANCHORS_BYTES)
                        .with_context(|| format!("reading the anchors from {name}"))?;
                anchors.extend(Anchor::parse_lines(&text, &name).map_err(anyhow::Error::msg)?);
            }
            let result = verify_showing(&store, &anchors, "audit verify")?;
            report(result, anchors.len(), json)
        }
        AuditCommand::Head { json } => match verify_showing(&store, &[], "audit head")? {
            Ok(v) => match Anchor::head(&v) {
                Some(head) if json => {
                    say!(
                        "{}",
                        serde_json::json!({
                            "seq": head.seq, "hash": head.hash, "anchor": head.to_string(),
                        })
                    );
                    Ok(exit::OK)
                }
                Some(head) => {
                    say!("{head}");
                    Ok(exit::OK)
                }
                None => {
                    eprintln!("the audit chain is empty: there is no row to anchor yet");
                    Ok(exit::ERROR)
                }
            },
            Err(broken) => {
                eprintln!("{broken}; a broken chain is not anchored");
                Ok(exit::VERIFY_FAILED)
            }
        },
        AuditCommand::Export { run, .. } => {
            let mut out = std::io::stdout().lock();
            let mut rows = 0u64;
            // Written as read: a trail of any length in the same memory.
            store.each_audit_row(run.as_deref(), |row| -> Result<()> {
                rows += 1;
                // The payload as an object, not the JSON text it is stored
                // as: its canonical text (what the hash covers) is how
                // serde_json writes the object again, keys sorted.
                let mut value = serde_json::to_value(&row)?;
                value["payload"] = serde_json::from_str(&row.payload)?;
                serde_json::to_writer(&mut out, &value)?;
                out.write_all(b"\n")?;
                Ok(())
            })?;
            // A run with no rows is a run that is not there (a mistyped id),
            // said so rather than exported as nothing.
            if let (Some(id), 0) = (&run, rows) {
                anyhow::bail!("no run {id} in {}", ctx.config.store_path.display());
            }
            Ok(exit::OK)
        }
    }
}

/// The stored chain verified against `anchors`, with a line on stderr every
/// [`PROGRESS_EVERY`] rows, so a verification of millions of rows (by the
/// command `what`) shows it is going.
pub(super) fn verify_showing(
    store: &Store,
    anchors: &[Anchor],
    what: &str,
) -> Result<Result<audit::Verified, audit::Break>, StoreError> {
    store.verify_audit_showing(anchors, PROGRESS_EVERY, |rows| {
        eprintln!("{what}: {rows} rows verified so far")
    })
}

fn report(result: Result<audit::Verified, audit::Break>, anchors: usize, json: bool) -> Result<u8> {
    let code = match &result {
        Ok(_) => exit::OK,
        Err(_) => exit::VERIFY_FAILED,
    };
    if json {
        let value = match &result {
            Ok(v) => serde_json::json!({
                "verified": true, "rows": v.rows, "anchors": anchors,
                "head": Anchor::head(v).map(|a| a.to_string()),
            }),
            Err(b) => serde_json::json!({
                "verified": false, "anchors": anchors,
                "broken_at": b.seq, "reason": b.reason,
            }),
        };
        say!("{value}");
        return Ok(code);
    }
    match result {
        Ok(v) => {
            let head = Anchor::head(&v).map_or_else(|| "none".into(), |a| a.to_string());
            let held = match anchors {
                0 => String::new(),
                1 => ", and it holds the anchored row".into(),
                n => format!(", and it holds all {n} anchored rows"),
            };
            say!("audit chain verified: {} rows, head {head}{held}", v.rows);
        }
        Err(broken) => eprintln!("{broken}"),
    }
    Ok(code)
}
