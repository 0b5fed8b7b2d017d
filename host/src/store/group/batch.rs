//! A write on a connection that commits in groups ([`super`]): a
//! savepoint inside the batch's one write transaction.
//!
//! The first write after a commit begins the transaction (`BEGIN
//! IMMEDIATE`, so the write lock is held from then on) and every write,
//! the first included, is a savepoint in it: released, its rows join the
//! batch; dropped unreleased, only its own rows are undone. Between writes
//! the transaction stays open and the writers' turn is parked with the
//! connection ([`super::super::gate`]). Only [`commit`] ends a batch.

use super::super::StoreError;
use super::super::gate::{self, Flush};
use super::super::shared::SharedConnection;
use super::{MAX_WRITES, Syncer};
use rusqlite::Connection;
use std::sync::{Arc, Weak};

/// Begin a write: the batch's transaction if none is open, then the
/// write's savepoint.
pub(in crate::store) fn begin(conn: &Connection, syncer: &Syncer) -> Result<(), StoreError> {
    syncer.check()?;
    if conn.is_autocommit() {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        syncer.began();
    }
    conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    Ok(())
}

/// The write's rows join the batch; a full batch is committed at once.
pub(in crate::store) fn release(conn: &Connection, syncer: &Syncer) -> Result<(), StoreError> {
    conn.prepare_cached("RELEASE write")?.execute([])?;
    if syncer.wrote() >= MAX_WRITES {
        commit(conn, syncer)?;
    }
    Ok(())
}

/// The end of a write's turn: unreleased, its own rows are undone; with a
/// batch open, the turn is parked with the connection, else freed.
pub(in crate::store) fn end(
    conn: &Connection,
    syncer: &Arc<Syncer>,
    released: bool,
    writing: Option<gate::Turn>,
    conn_id: usize,
) {
    if !released {
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a
            // full disk, memory): the batch's other writes went with it.
            syncer.ended_without_commit("the transaction was rolled back by SQLite");
        } else if let Err(e) = conn.execute_batch("ROLLBACK TO write; RELEASE write") {
            let _ = conn.execute_batch("ROLLBACK");
            syncer.ended_without_commit(&format!("undoing one write failed: {e}"));
        }
    }
    if let Some(writing) = writing
        && !conn.is_autocommit()
    {
        park(writing, syncer, conn_id);
    }
}

/// A writer that got the turn but not the connection gives the turn back
/// parked if a batch is open (it cannot look at the connection).
pub(in crate::store) fn keep_parked(syncer: &Arc<Syncer>, writing: gate::Turn, conn_id: usize) {
    if syncer.is_open() {
        park(writing, syncer, conn_id);
    }
}

fn park(writing: gate::Turn, syncer: &Arc<Syncer>, conn_id: usize) {
    let flusher: Weak<dyn Flush> = Arc::downgrade(syncer) as Weak<dyn Flush>;
    writing.park(conn_id, flusher);
}

/// Commit the open batch, if there is one. A commit that fails takes the
/// batch along (see [`super`]).
pub(in crate::store) fn commit(conn: &Connection, syncer: &Syncer) -> Result<(), StoreError> {
    if conn.is_autocommit() {
        return Ok(());
    }
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut c| c.execute([]))
    {
        Ok(_) => {
            syncer.committed();
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            syncer.ended_without_commit(&format!("the commit failed: {e}"));
            Err(super::lost())
        }
    }
}

/// Commit the open batch of `shared` in a turn of the syncer's own, taken
/// as a writer of that connection would take it.
pub(in crate::store) fn flush(
    shared: &SharedConnection,
    syncer: &Syncer,
) -> Result<(), StoreError> {
    let _writing = syncer.gate().enter_for(shared.id())?;
    let turn = shared.enter()?;
    commit(&turn, syncer)
}
