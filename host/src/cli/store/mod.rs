//! `handoff store`: the store as a file an operator keeps. `backup` copies
//! it while `serve` runs: `VACUUM INTO` reads one consistent snapshot of the
//! database (in WAL mode it neither blocks the writers nor is disturbed by
//! them, where SQLite's page-by-page backup API starts over each time
//! another process writes), then the copy's audit chain is verified, so a
//! backup that is kept is one that checks.

use super::{Ctx, exit};
use crate::audit::anchor::Anchor;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};

mod restore;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the store to PATH (a new file), online, then verify the copy's
    /// audit chain. Exits 4 when the copy does not verify.
    Backup {
        /// Where the copy goes: a new file (one already there is not
        /// replaced).
        path: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make the store from a backup: the backup's audit chain is verified
    /// in a copy, and the copy named as the store only then. The store's
    /// path must be free: stop `handoff serve` and move the store (with its
    /// `-wal` and `-shm` files) aside first. The backup is not written to.
    /// Exits 4, restoring nothing, when the backup does not verify.
    Restore {
        /// The backup, as `store backup` wrote it.
        backup: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prune the bulky rows (event bodies, workflow contexts, steps,
    /// capability decisions) of finished runs quiet for longer than
    /// `[store] retain-days`, or the days given. Every audit row is kept:
    /// the chain still verifies, and a decision sent again is still a
    /// duplicate.
    Prune {
        /// Days to keep (over `[store] retain-days`); 0 prunes every
        /// finished run with nothing open for a person.
        #[arg(long)]
        older_than_days: Option<u32>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: StoreCommand, ctx: &Ctx) -> Result<u8> {
    match cmd {
        StoreCommand::Backup { path, json } => backup(ctx, &path, json),
        StoreCommand::Restore { backup, json } => restore::restore(ctx, &backup, json),
        StoreCommand::Prune {
            older_than_days,
            json,
        } => {
            let Some(days) = older_than_days.or(ctx.config.retain_days) else {
                bail!(
                    "no retention is set: give --older-than-days N, or set [store] retain-days \
                     (HANDOFF_STORE_RETAIN_DAYS)"
                );
            };
            let pruned = ctx.existing_store()?.prune_older_than(days)?;
            if json {
                say!(
                    "{}",
                    serde_json::json!({ "older_than_days": days, "pruned": pruned })
                );
            } else {
                say!(
                    "pruned {} finished runs older than {days} days ({} steps, {} capability \
                     decisions); the audit chain is whole",
                    pruned.runs,
                    pruned.steps,
                    pruned.decisions
                );
            }
            Ok(exit::OK)
        }
    }
}

/// `path` with `suffix` added to its file name.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// A database file and what SQLite keeps beside it: the log and its
/// index, or a rollback journal (which it would play onto a new store).
pub(super) fn with_log(db: &Path) -> [PathBuf; 4] {
    [
        db.to_path_buf(),
        beside(db, "-wal"),
        beside(db, "-shm"),
        beside(db, "-journal"),
    ]
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Where a backup to `path` is written until it is whole.
pub(super) fn partial_path(path: &Path) -> PathBuf {
    beside(path, ".partial")
}

/// Make the copy at `partial` durable, then give it the name `path`, which
/// must still be free (a link, not a rename, so nothing made there in the
/// meantime is replaced).
pub(super) fn put_in_place(partial: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    match std::fs::hard_link(partial, path) {
        Ok(()) => std::fs::remove_file(partial)
            .with_context(|| format!("removing {}", partial.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} was made while the copy was being taken", path.display())
        }
        // A file system without links.
        Err(_) if !path.exists() => std::fs::rename(partial, path)
            .with_context(|| format!("naming the copy {}", path.display()))?,
        Err(e) => return Err(e).with_context(|| format!("naming the copy {}", path.display())),
    }
    let dir = directory_of(path);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Whether `path` names the store at `store` or a file SQLite keeps
/// beside it (its log, its index of the log, a rollback journal), however
/// either is written.
fn one_of_the_stores_files(store: &Path, path: &Path) -> bool {
    let path = crate::paths::resolved(path);
    with_log(store)
        .iter()
        .any(|file| crate::paths::resolved(file) == path)
}

fn backup(ctx: &Ctx, path: &Path, json: bool) -> Result<u8> {
    ctx.must_exist()?;
    if one_of_the_stores_files(&ctx.config.store_path, path) {
        bail!(
            "{} is the store's own file ({} or a file SQLite keeps beside it); a backup is \
             written to a new file elsewhere",
            path.display(),
            ctx.config.store_path.display()
        );
    }
    if let Some(directory) = crate::config::protected::reached_by_an_adapter(&ctx.config, path) {
        bail!(
            "{} lies in {directory}: a copy of the store there could be read by that adapter; \
             back up to a place no adapter reaches",
            path.display()
        );
    }
    if path.exists() {
        bail!(
            "{} exists; a backup is written to a new file (remove it, or name another)",
            path.display()
        );
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("making {}", parent.display()))?;
    }
    // Written under another name and given its own only once whole and on
    // disk: a backup stopped part-way leaves no file that looks like one.
    let partial = partial_path(path);
    if partial.exists() {
        bail!(
            "{} is there: a backup to {} was stopped part-way (or is still being made); \
             remove it and back up again",
            partial.display(),
            path.display()
        );
    }
    // A connection of its own: the copy is one read transaction, which must
    // not hold up this process's other users of the shared one.
    let store = Store::open_unshared(&ctx.config.store_path)
        .with_context(|| format!("opening the store at {}", ctx.config.store_path.display()))?;
    let target = partial.to_str().context("the backup path is not UTF-8")?;
    let started = std::time::Instant::now();
    let copied = store
        .conn()?
        .execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("copying the store into {}", partial.display()))
        .and_then(|_| put_in_place(&partial, path));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let took = started.elapsed();
    let copy = Store::open_unshared(path)
        .with_context(|| format!("opening the copy at {}", path.display()))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let verified = super::audit::verify_showing(&copy, &[], "store backup")?;
    // A backup is one file, with no log beside it to be left behind when
    // it is copied or restored.
    copy.conn()?
        .pragma_update(None, "journal_mode", "DELETE")
        .with_context(|| format!("folding the log of {} into it", path.display()))?;
    drop(copy);
    let (code, head) = match &verified {
        Ok(v) => (exit::OK, Anchor::head(v).map(|a| a.to_string())),
        Err(_) => (exit::VERIFY_FAILED, None),
    };
    if json {
        let value = match &verified {
            Ok(v) => serde_json::json!({
                "backup": path, "bytes": bytes, "seconds": took.as_secs_f64(),
                "verified": true, "rows": v.rows, "head": head,
            }),
            Err(b) => serde_json::json!({
                "backup": path, "bytes": bytes, "seconds": took.as_secs_f64(),
                "verified": false, "broken_at": b.seq, "reason": b.reason,
            }),
        };
        say!("{value}");
        return Ok(code);
    }
    match verified {
        Ok(v) => say!(
            "backed up {} to {} ({bytes} bytes in {took:.2?}); its audit chain verifies: {} rows, head {}",
            ctx.config.store_path.display(),
            path.display(),
            v.rows,
            head.as_deref().unwrap_or("(empty)")
        ),
        Err(b) => eprintln!(
            "backed up to {}, but the copy's audit chain does not verify: {b}",
            path.display()
        ),
    }
    Ok(code)
}
