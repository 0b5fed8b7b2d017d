//! `handoff store restore`: a store made again from a backup. The backup's
//! file is copied (SQLite never opens it, so it is not written to), the
//! copy opened as a store (another program's database refused, the schema
//! brought up to date) and its audit chain verified; only a copy that
//! verifies is given the store's name, which must be free. A stale `-wal` beside the store's path would be
//! read as the new store's log and corrupt it, so its presence refuses the
//! restore too.

use super::super::{Ctx, exit};
use super::{beside, partial_path, put_in_place, with_log};
use crate::audit::anchor::Anchor;
use crate::store::{Store, StoreError};
use anyhow::{Context, Result, bail};
use std::path::Path;

pub(super) fn restore(ctx: &Ctx, backup: &Path, json: bool) -> Result<u8> {
    let target = &ctx.config.store_path;
    if !backup.is_file() {
        bail!(
            "{} is not a file: give the path of a backup (`handoff store backup PATH` writes one)",
            backup.display()
        );
    }
    for taken in with_log(target) {
        if taken.exists() {
            bail!(
                "{} is there: a restore never replaces a store. Stop `handoff serve`, move the \
                 store and its -wal and -shm files aside (or remove them), then restore again",
                taken.display()
            );
        }
    }
    let partial = partial_path(target);
    for left in with_log(&partial) {
        if left.exists() {
            bail!(
                "{} is there: a restore to {} was stopped part-way (or is still being made); \
                 remove it (and its -wal and -shm files) and restore again",
                left.display(),
                target.display()
            );
        }
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("making {}", parent.display()))?;
    }
    let verified = copy_of(backup, &partial).and_then(|()| {
        let copy = Store::open_unshared(&partial).map_err(|e| match e {
            StoreError::NotAStore { what, .. } => anyhow::anyhow!(
                "{} is not the backup of a handoff store: it is {what}",
                backup.display()
            ),
            // Said as text: the backup is what SQLite could not read, not
            // the store.
            e => anyhow::anyhow!(
                "{} cannot be read as a store: {}",
                backup.display(),
                crate::kept::shortened(&e.to_string(), 512)
            ),
        })?;
        let verified = super::super::audit::verify_showing(&copy, &[], "store restore")?;
        if matches!(&verified, Ok(v) if v.rows == 0) {
            bail!(
                "{} holds no audit rows: it is not the backup of a store that was used",
                backup.display()
            );
        }
        // One file, its log folded in, before it takes the store's name: a
        // log left under the copy's name would be lost.
        copy.conn()?
            .pragma_update(None, "journal_mode", "DELETE")
            .context("folding the copy's log into it")?;
        Ok(verified)
    });
    let verified = match verified {
        Ok(Ok(v)) => v,
        Err(e) => {
            remove_copy(&partial);
            return Err(e);
        }
        Ok(Err(broken)) => {
            remove_copy(&partial);
            if json {
                let value = serde_json::json!({
                    "restored": false, "backup": backup,
                    "broken_at": broken.seq, "reason": broken.reason,
                });
                say!("{value}");
            } else {
                eprintln!(
                    "{} was not restored: the backup's audit chain does not verify: {broken}",
                    backup.display()
                );
            }
            return Ok(exit::VERIFY_FAILED);
        }
    };
    if let Err(e) = put_in_place(&partial, target) {
        remove_copy(&partial);
        return Err(e);
    }
    let head = Anchor::head(&verified).map(|a| a.to_string());
    if json {
        let value = serde_json::json!({
            "restored": true, "store": target, "backup": backup,
            "rows": verified.rows, "head": head,
        });
        say!("{value}");
    } else {
        say!(
            "restored {} from {}; its audit chain verifies: {} rows, head {} (runs the backup \
             held unfinished go on at the next `handoff resume` or `handoff serve`)",
            target.display(),
            backup.display(),
            verified.rows,
            head.as_deref().unwrap_or("(empty)")
        );
    }
    Ok(exit::OK)
}

/// Copy the backup's bytes (and its log, when one was left beside it) to
/// `partial`: SQLite never opens the backup, so nothing is written to it
/// or made beside it.
fn copy_of(backup: &Path, partial: &Path) -> Result<()> {
    std::fs::copy(backup, partial)
        .with_context(|| format!("copying {} to {}", backup.display(), partial.display()))?;
    let log = beside(backup, "-wal");
    if log.is_file() {
        std::fs::copy(&log, beside(partial, "-wal"))
            .with_context(|| format!("copying {}", log.display()))?;
    }
    Ok(())
}

/// Remove a copy that will not be the store, with the log and index its
/// opening made.
fn remove_copy(partial: &Path) {
    for file in with_log(partial) {
        let _ = std::fs::remove_file(file);
    }
}
