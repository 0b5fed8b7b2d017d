//! A write to the store: a transaction (`BEGIN IMMEDIATE`), or a savepoint
//! in the open batch of a connection that commits in groups
//! ([`super::group`]), in this process's turn to write ([`super::gate`]).

use super::shared::Turn;
use super::{Store, StoreError, gate, group};
use rusqlite::Connection;
use std::sync::Arc;

/// A write transaction (`BEGIN IMMEDIATE`), begun in this process's turn to
/// write (see [`gate`]) and held for the whole of a turn at the connection;
/// dropped without [`Write::commit`], it rolls back. On a connection that
/// commits in groups it is a savepoint in the batch's transaction instead
/// (see [`sync`]): committed, its rows join the batch.
#[derive(Debug)]
pub struct Write<'a> {
    turn: Turn<'a>,
    /// Given back (or parked) before the connection's turn.
    writing: Option<gate::Turn>,
    /// The audit chain's head (sequence, hash) as this transaction last
    /// appended to it: nobody else appends while it is open, so the next
    /// row of the same transaction need not read it back.
    audit_head: std::cell::RefCell<Option<(i64, String)>>,
    /// The connection's group committer, when it commits in groups.
    group: Option<Arc<group::Syncer>>,
    released: bool,
    conn_id: usize,
}

impl std::ops::Deref for Write<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.turn
    }
}

impl Write<'_> {
    pub fn commit(mut self) -> Result<(), StoreError> {
        match &self.group {
            None => {
                self.turn.prepare_cached("COMMIT")?.execute([])?;
            }
            Some(syncer) => {
                group::release(&self.turn, syncer)?;
            }
        }
        self.released = true;
        Ok(())
    }

    /// The audit chain's head if this transaction appended to it (taken:
    /// the appender puts the new head back).
    pub(crate) fn take_audit_head(&self) -> Option<(i64, String)> {
        self.audit_head.borrow_mut().take()
    }

    pub(crate) fn set_audit_head(&self, seq: i64, hash: String) {
        *self.audit_head.borrow_mut() = Some((seq, hash));
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        let writing = self.writing.take();
        match &self.group {
            Some(syncer) => {
                group::end(&self.turn, syncer, self.released, writing, self.conn_id);
            }
            None => {
                if !self.turn.is_autocommit() {
                    // Not committed (or the commit failed): before the turn
                    // passes on, the next user must not find this
                    // transaction still open.
                    let _ = self.turn.execute_batch("ROLLBACK");
                }
                drop(writing);
            }
        }
    }
}

impl Store {
    /// Begin a write transaction (`BEGIN IMMEDIATE`: the write lock is
    /// taken now, so what it reads cannot change before it writes), after
    /// waiting for this process's other writers of the same file, in this
    /// handle's turn at its connection.
    pub fn write(&mut self) -> Result<Write<'_>, StoreError> {
        let group = self.shared.has_syncer().cloned();
        let conn_id = self.shared.id();
        let writing = match &group {
            Some(_) => self.gate.enter_for(conn_id)?,
            None => self.gate.enter()?,
        };
        let turn = match self.shared.enter() {
            Ok(turn) => turn,
            Err(e) => {
                // A batch left open keeps its parked turn.
                if let Some(syncer) = &group {
                    group::keep_parked(syncer, writing, conn_id);
                }
                return Err(e);
            }
        };
        let write = Write {
            turn,
            writing: Some(writing),
            audit_head: std::cell::RefCell::new(None),
            group,
            released: false,
            conn_id,
        };
        // Prepared once per connection, like every statement on the hot
        // path: two or three for each of a run's transitions.
        match &write.group {
            Some(syncer) => group::begin(&write.turn, syncer)?,
            None => {
                write.turn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            }
        }
        Ok(write)
    }
}
