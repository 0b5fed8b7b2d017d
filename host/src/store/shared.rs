//! One connection per database file per process, used in turns.
//!
//! SQLite keeps a page cache per connection and throws all of it away
//! whenever it sees that another connection has committed, so workers on
//! connections of their own re-read their pages at every transaction (what
//! it cost: `docs/benchmarks.md`). So every [`super::Store`] opened
//! with `Store::open` on a file in this process shares one connection, and
//! its users (readers and writers alike) take turns at it here: a turn is
//! waited for with patience and the next user is woken the moment the
//! previous turn ends. In `handoff serve` intake and the runs share it
//! (and so share group commits, [`super::group`]). A connection of its own
//! (`Store::open_unshared`) is for a user that should not wait for the
//! others' reads, nor hold them up: the long counts behind `/metrics`, the
//! people's API's reads. Writers of every connection of the
//! process still take turns at [`super::gate`] first, and other processes
//! meet at SQLite's lock and its busy handler.

use super::StoreError;
use super::gate::{self, Gate, lock};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// A connection and the turn-taking around it.
#[derive(Debug)]
pub struct SharedConnection {
    turns: Arc<Gate>,
    // Only ever locked by the holder of the turn, so never contended: it is
    // here because a connection may be used by one thread at a time. A
    // holder that panicked left no transaction open (`Write` rolls back as
    // it unwinds), so a poisoned lock is taken as it is.
    conn: Mutex<Connection>,
    /// Its group committer, once a user asks it to commit in groups.
    syncer: OnceLock<Arc<super::group::Syncer>>,
}

/// One user's turn at the connection; the next user is woken when it is
/// dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    // Declared first, so the connection is given back before the turn.
    conn: MutexGuard<'a, Connection>,
    _turn: gate::Turn,
}

type Registry = Mutex<HashMap<PathBuf, Weak<SharedConnection>>>;

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Weak<SharedConnection>>> {
    static OPEN: OnceLock<Registry> = OnceLock::new();
    lock(OPEN.get_or_init(Registry::default))
}

impl SharedConnection {
    /// The connection this process already has to `path`, or a new one made
    /// by `open` (which must create the file) and kept while a handle on it
    /// lives. Opens of one process are taken one at a time, so two threads
    /// opening the same new file end up with the same connection.
    pub fn for_path(
        path: &Path,
        open: impl FnOnce() -> Result<Connection, StoreError>,
    ) -> Result<Arc<SharedConnection>, StoreError> {
        let mut open_now = registry();
        if let Ok(key) = std::fs::canonicalize(path)
            && let Some(shared) = open_now.get(&key).and_then(Weak::upgrade)
        {
            return Ok(shared);
        }
        let shared = Arc::new(SharedConnection::new(open()?));
        // The file exists now; without a canonical name it is simply not
        // shared.
        if let Ok(key) = std::fs::canonicalize(path) {
            open_now.retain(|_, w| w.strong_count() > 0);
            open_now.insert(key, Arc::downgrade(&shared));
        }
        Ok(shared)
    }

    /// A connection nobody else can find (its own, or in memory).
    pub fn new(conn: Connection) -> SharedConnection {
        SharedConnection {
            turns: Gate::private(),
            conn: Mutex::new(conn),
            syncer: OnceLock::new(),
        }
    }

    /// The connection's group committer for the database at `path`
    /// (syncing its log when `power`), started the first time it is asked
    /// for: from then on the connection commits in groups.
    pub fn syncer(
        self: &Arc<Self>,
        path: &Path,
        power: bool,
        max_open: std::time::Duration,
    ) -> Arc<super::group::Syncer> {
        self.syncer
            .get_or_init(|| super::group::Syncer::start(self, path, power, max_open))
            .clone()
    }

    /// A number naming this connection in this process (for the gate).
    pub fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Its group committer, if it has one.
    pub fn has_syncer(&self) -> Option<&Arc<super::group::Syncer>> {
        self.syncer.get()
    }

    /// Wait for the turn to use the connection (with the gate's patience;
    /// the thread holding the turn is refused at once).
    pub fn enter(&self) -> Result<Turn<'_>, StoreError> {
        let turn = self.turns.enter()?;
        Ok(Turn {
            conn: lock(&self.conn),
            _turn: turn,
        })
    }
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        // A batch still open is committed before the connection closes
        // (closing would roll it back), and the turn it held is freed.
        if let Some(syncer) = self.syncer.get() {
            let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = super::group::commit(conn, syncer) {
                tracing::error!(error = %e, "committing the store's last writes failed");
            }
            syncer.gate().unpark(self.id());
        }
    }
}

impl std::ops::Deref for Turn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Turn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> impl FnOnce() -> Result<Connection, StoreError> + '_ {
        move || Ok(Connection::open(path)?)
    }

    #[test]
    fn opens_of_one_file_share_a_connection_while_it_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        let first = SharedConnection::for_path(&a, open(&a)).unwrap();
        let same = dir.path().join(".").join("a.db");
        let again = SharedConnection::for_path(&same, || panic!("opened a second connection"));
        assert!(Arc::ptr_eq(&first, &again.unwrap()));
        let b = dir.path().join("b.db");
        let other = SharedConnection::for_path(&b, open(&b)).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        // Once no handle holds it, the connection is closed and the next
        // open makes a new one.
        drop(first);
        let mut opened = false;
        SharedConnection::for_path(&a, || {
            opened = true;
            Ok(Connection::open(&a)?)
        })
        .unwrap();
        assert!(opened, "a connection nobody held was kept open");
    }
}
