//! The durable store: one SQLite database, opened with the same pragmas on
//! every connection, schema from [`migrations`].
//!
//! Each table is owned by one submodule. Writes that belong together (a state
//! change and its audit row) go through one [`Write`] (`write.rs`).

pub mod adapters;
pub mod audit;
pub mod checkpoint;
pub mod cursors;
pub mod decisions;
pub mod events;
pub mod follow_ups;
pub mod gate;
pub mod group;
pub mod identity;
pub mod intake;
pub mod migrations;
pub mod notices;
pub mod policies;
pub mod retention;
pub mod runs;
pub mod shared;
pub mod stats;
pub mod steps;
mod write;

use rusqlite::Connection;
use shared::{SharedConnection, Turn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
pub use write::Write;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a handoff store: it is {what}; handoff adds nothing to it. Name a new \
         file, or the store handoff made (--store, HANDOFF_STORE or [store] path)"
    )]
    NotAStore { path: PathBuf, what: String },
    #[error(
        "the store at {path} has schema version {found}, newer than this handoff knows ({known}); \
         use a newer handoff or another store"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the store is unavailable: {0}")]
    Unavailable(&'static str),
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "run {run_id} is now driven by {holder}: this driver held it past its lease (paused or \
         cut off) and stops without writing; the run goes on there"
    )]
    LeaseLost { run_id: String, holder: String },
}

/// The size the write-ahead log is cut back to when it starts over. At
/// full speed it stays a few megabytes between the background checkpoints.
pub const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// A handle on the database. Handles a process opens with [`Store::open`]
/// on one file share one connection, used in turns (see [`shared`]).
#[derive(Debug)]
pub struct Store {
    shared: Arc<SharedConnection>,
    gate: Arc<gate::Gate>,
    path: PathBuf,
    /// On the process's shared connection (`Store::open`), not one of its
    /// own: power-cut durability is then a group sync (see [`sync`]).
    on_shared: bool,
}

/// What a commit must survive before it returns (`[store] durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// A process killed at any point: nothing acknowledged is lost.
    Process,
    /// Power lost or the OS crashed too: every commit is synced first.
    #[default]
    Power,
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema
    /// up to date; or, if this process has it open already, share that
    /// connection.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shared = SharedConnection::for_path(path, || Self::connect(path))?;
        Ok(Self::on_file(shared, path, true))
    }

    /// As [`Store::open`], but on a connection of its own, for a user that
    /// should neither wait for the shared connection's readers nor hold
    /// them up: intake, and long reads (counting a whole table). Its page
    /// cache is re-read whenever another connection commits.
    pub fn open_unshared(path: &Path) -> Result<Store, StoreError> {
        let shared = Arc::new(SharedConnection::new(Self::connect(path)?));
        Ok(Self::on_file(shared, path, false))
    }

    fn on_file(shared: Arc<SharedConnection>, path: &Path, on_shared: bool) -> Store {
        Store {
            shared,
            gate: gate::Gate::for_path(path),
            path: path.to_path_buf(),
            on_shared,
        }
    }

    /// A new connection to the database at `path`, its directory made if
    /// missing, its schema brought up to date.
    fn connect(path: &Path) -> Result<Connection, StoreError> {
        create_parent(path)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// An in-memory store, for tests and dry runs.
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Self::init(Connection::open_in_memory()?, &path)?;
        Ok(Store {
            shared: Arc::new(SharedConnection::new(conn)),
            gate: gate::Gate::private(),
            path,
            on_shared: false,
        })
    }

    fn init(mut conn: Connection, path: &Path) -> Result<Connection, StoreError> {
        // Before anything is written to it: handoff's own, or new.
        identity::check(&conn, path)?;
        // WAL: readers do not block the one writer; NORMAL sync is durable
        // across process crashes (the log is fsynced at checkpoints).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // (Foreign keys are turned on by the migrations, once they are done.)
        // The log is written from its start again once a checkpoint has
        // copied all of it, but the file keeps the size it reached: a long
        // read that held checkpoints back would leave it that large for
        // good. Past this size it is cut back when it starts over.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.busy_handler(Some(wait_for_writer))?;
        // Every statement is prepared once per connection and kept: a run
        // uses a few dozen, and parsing them again was a visible share of
        // intake's time.
        conn.set_prepared_statement_cache_capacity(128);
        migrations::apply(&mut conn, path)?;
        identity::mark(&conn)?;
        Ok(conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the same connection and writers' gate (a user of
    /// the store beside this one's, taking its own turns).
    pub fn handle(&self) -> Store {
        Store {
            shared: self.shared.clone(),
            gate: self.gate.clone(),
            path: self.path.clone(),
            on_shared: self.on_shared,
        }
    }

    /// What a commit on this connection survives: `Process` (SQLite's
    /// `synchronous = NORMAL` in WAL mode: a killed process loses nothing,
    /// a power loss or an OS crash may lose the newest commits) or `Power`
    /// (`FULL`: each commit is on disk before it returns).
    pub fn set_durability(&self, durability: Durability) -> Result<(), StoreError> {
        let level = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        self.conn()?.pragma_update(None, "synchronous", level)?;
        Ok(())
    }

    /// How long this process's writers of this file have held their turn to
    /// write, all together since the process first opened it. SQLite lets
    /// one writer in at a time, so its rate (seconds per second) is how busy
    /// the one writer is: near 1, more workers cannot make runs go faster.
    pub fn writing_held(&self) -> std::time::Duration {
        self.gate.held()
    }

    /// The connection, for reads, in this handle's turn (other users of
    /// this process's connection wait until the returned turn is dropped).
    pub fn conn(&self) -> Result<Turn<'_>, StoreError> {
        self.shared.enter()
    }

    /// Stop this connection's commits from checkpointing the write-ahead
    /// log: `checkpointer` does it in the background.
    pub fn leave_checkpoints_to(
        &self,
        checkpointer: &checkpoint::Checkpointer,
    ) -> Result<(), StoreError> {
        debug_assert_eq!(
            std::fs::canonicalize(checkpointer.path()).ok(),
            std::fs::canonicalize(&self.path).ok()
        );
        self.conn()?.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }
}

/// The directory a store file goes in, made if missing.
fn create_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

pub use crate::model::time::{now_rfc3339, rfc3339, rfc3339_in};

/// SQLite's own busy timeout sleeps in steps that grow to 100 ms, so a
/// writer that finds another mid-commit can wait far longer than that
/// commit takes (here, well under a millisecond). Poll every 200 µs for the
/// first 100 ms, then every 5 ms; give up (SQLITE_BUSY) after about 10 s.
fn wait_for_writer(attempt: i32) -> bool {
    let delay = match attempt {
        0..500 => std::time::Duration::from_micros(200),
        500..2_480 => std::time::Duration::from_millis(5),
        _ => return false,
    };
    std::thread::sleep(delay);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_sets_how_each_commit_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_unshared(&dir.path().join("handoff.db")).unwrap();
        let level = |store: &Store| -> i64 {
            store
                .conn()
                .unwrap()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        store.set_durability(Durability::Power).unwrap();
        assert_eq!(level(&store), 2, "FULL");
        store.set_durability(Durability::Process).unwrap();
        assert_eq!(level(&store), 1, "NORMAL");
    }

    #[test]
    fn stores_opened_on_one_file_share_a_connection_and_unshared_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.db");
        let first = Store::open(&path).unwrap();
        // A TEMP table lives in its connection only.
        first
            .conn()
            .unwrap()
            .execute_batch("CREATE TEMP TABLE mine (x INTEGER)")
            .unwrap();
        let sees_it = |store: &Store| {
            store
                .conn()
                .unwrap()
                .query_row(
                    "SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'mine'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1
        };
        let second = Store::open(&dir.path().join(".").join("handoff.db")).unwrap();
        assert!(
            sees_it(&second),
            "a second open made a connection of its own"
        );
        let reader = Store::open_unshared(&path).unwrap();
        assert!(!sees_it(&reader), "an unshared store shares the connection");
        // Once every shared handle is gone, the connection is closed.
        drop((first, second));
        assert!(!sees_it(&Store::open(&path).unwrap()));
    }

    #[test]
    fn a_log_grown_while_a_reader_held_checkpoints_back_is_cut_back_when_it_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.db");
        let mut store = Store::open(&path).unwrap();
        let wal = dir.path().join("handoff.db-wal");
        let wal_size = || std::fs::metadata(&wal).unwrap().len() as i64;
        {
            let tx = store.write().unwrap();
            tx.execute_batch("CREATE TABLE filler (b BLOB)").unwrap();
            tx.commit().unwrap();
        }
        // A reader's snapshot keeps every frame after it in the log.
        let reader = Store::open_unshared(&path).unwrap();
        let reading = reader.conn().unwrap();
        reading.execute_batch("BEGIN").unwrap();
        let _: i64 = reading
            .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        let mib = WAL_SIZE_LIMIT / (1024 * 1024);
        for _ in 0..mib / 8 + 2 {
            let tx = store.write().unwrap();
            tx.execute("INSERT INTO filler VALUES (zeroblob(8 * 1024 * 1024))", [])
                .unwrap();
            tx.commit().unwrap();
        }
        assert!(
            wal_size() > WAL_SIZE_LIMIT,
            "the log did not grow past the limit"
        );
        reading.execute_batch("COMMIT").unwrap();
        drop(reading);
        // Everything copied back; the next write starts the log over.
        store
            .conn()
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        let tx = store.write().unwrap();
        tx.execute("DELETE FROM filler", []).unwrap();
        tx.commit().unwrap();
        assert!(
            wal_size() <= WAL_SIZE_LIMIT,
            "the log kept {} bytes after starting over",
            wal_size()
        );
    }

    #[test]
    fn times_sort_as_text() {
        let a = jiff::Timestamp::from_millisecond(1_700_000_000_790).unwrap();
        let b = jiff::Timestamp::from_millisecond(1_700_000_000_795).unwrap();
        assert!(super::rfc3339(a) < super::rfc3339(b));
        assert_eq!(super::rfc3339(a), "2023-11-14T22:13:20.790Z");
    }
}
