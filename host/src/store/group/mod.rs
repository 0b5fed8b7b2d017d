//! Group commit and group sync: the writes of many runs committed by one
//! transaction, and the commits made durable by one `fsync`.
//!
//! `handoff serve`'s shared connection commits in groups
//! ([`Store::commit_in_groups`]). Each write is a savepoint inside a write
//! transaction that stays open between writes (a *batch*, [`batch`]):
//! its rows are visible to every user of the connection
//! at once, and to other connections and processes when the batch commits.
//! Whoever must not go on until its writes would survive a stop (a run
//! about to write to a target after recording its intent, an API answer)
//! asks for [`Store::durable`]. With `durability = "power"`, this module's
//! thread commits the open batch and syncs the log file once for every
//! commit before it, then wakes everyone waiting for any of them. With
//! `"process"` the commit is enough (SQLite's `synchronous = NORMAL`: a
//! killed process loses nothing committed), and the waiter makes it
//! itself. Runs in flight together share the commit and the sync instead
//! of each paying for their own; one at a time, it is one of each per
//! wait, as before. A batch is also
//! committed when it has been open for [`MAX_OPEN`], when it holds
//! [`MAX_WRITES`] writes, and when a writer of another connection of this
//! process waits for the turn to write ([`super::gate`]); a process killed
//! before that loses only writes nobody outside was told of, which a
//! resumed run makes again.
//!
//! An `fsync` on any descriptor of a file makes all of that file's written
//! data durable, so the log is synced from a descriptor of the syncer's
//! own. A failed sync fails every wait for it: the run stops before its
//! write, and stays unfinished. A batch that cannot be committed (an I/O
//! error, a full disk) takes every write in it along: the connection then
//! refuses every later write and wait, so no run goes on from a state the
//! store has lost; a restart resumes them from what was committed.

mod batch;
mod syncer;
#[cfg(test)]
mod tests;

pub(super) use batch::{begin, commit, end, keep_parked, release};
pub use syncer::Syncer;
pub(super) use syncer::lost;

use super::{Durability, Store, StoreError};
use std::time::Duration;

/// The longest a batch stays open when nobody asks for it: how stale a
/// reader of another connection may find the store.
pub const MAX_OPEN: Duration = Duration::from_millis(2);

/// The most writes one batch holds (what a failed commit can take along).
pub const MAX_WRITES: u64 = 128;

impl Store {
    /// Make this handle's connection, if it is the process's shared one,
    /// commit in groups and make commits durable as `durability` asks, in
    /// groups too (see this module); a connection of its own just gets
    /// `durability`. For a service whose many runs write together: every
    /// user of the connection must then ask for [`Store::durable`] before
    /// anything outside depends on a write.
    pub fn commit_in_groups(&self, durability: Durability) -> Result<(), StoreError> {
        self.commit_in_groups_open_for(durability, MAX_OPEN)
    }

    /// [`Store::commit_in_groups`], a batch nobody asks for staying open
    /// up to `max_open` (tests choose when batches end).
    pub(in crate::store) fn commit_in_groups_open_for(
        &self,
        durability: Durability,
        max_open: Duration,
    ) -> Result<(), StoreError> {
        if !self.on_shared {
            return self.set_durability(durability);
        }
        let conn = self.conn()?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A write's savepoint keeps the pages it changes that the batch had
        // changed before, so it can be undone alone: in memory (bounded by
        // the batch), not in a temporary file made and removed each time.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        drop(conn);
        self.shared
            .syncer(&self.path, durability == Durability::Power, max_open);
        Ok(())
    }

    /// Wait until every write made on this connection so far would survive
    /// what `durability` names (at once unless it commits in groups; see
    /// this module).
    pub async fn durable(&self) -> Result<(), StoreError> {
        match self.shared.has_syncer() {
            Some(syncer) if syncer.power => syncer.durable().await,
            Some(syncer) => self.commit_now(syncer),
            None => Ok(()),
        }
    }

    /// [`Store::durable`], for a thread that may block.
    pub fn durable_blocking(&self) -> Result<(), StoreError> {
        match self.shared.has_syncer() {
            Some(syncer) if syncer.power => syncer.durable_blocking(),
            Some(syncer) => self.commit_now(syncer),
            None => Ok(()),
        }
    }

    /// With process durability a commit is all a wait needs: made here,
    /// without a trip to the syncer's thread.
    fn commit_now(&self, syncer: &Syncer) -> Result<(), StoreError> {
        syncer.check()?;
        batch::flush(&self.shared, syncer)
    }

    /// Why this connection refuses every write, if a batch of its writes
    /// could not be committed: the process cannot go on writing until it
    /// starts again (its health says so).
    pub fn writes_refused(&self) -> Option<String> {
        self.shared.has_syncer().and_then(|s| s.lost_because())
    }

    /// Resolves, with the reason, once this connection refuses every write
    /// (a batch of its writes could not be committed); never when it does
    /// not commit in groups.
    pub async fn until_writes_refused(&self) -> String {
        match self.shared.has_syncer() {
            Some(syncer) => syncer.until_lost().await,
            None => std::future::pending().await,
        }
    }

    /// Writes made, the commits that carried them and the syncs that made
    /// those durable, when this connection commits in groups.
    pub fn group_counts(&self) -> Option<GroupCounts> {
        self.shared.has_syncer().map(|s| s.counts())
    }
}

/// What a connection committing in groups has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCounts {
    pub writes: u64,
    pub commits: u64,
    pub syncs: u64,
}
