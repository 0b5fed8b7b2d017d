//! WAL checkpoints on a thread of their own, for a long-running process.
//!
//! By default SQLite copies the write-ahead log back into the database
//! (and syncs both) inside whichever commit takes the log past 1,000 pages:
//! that commit, and the run or request waiting on it, stalls for the copy
//! and the disk flush. `handoff serve` instead starts a [`Checkpointer`],
//! which checkpoints in the background (`PASSIVE`: it never blocks a
//! writer or a reader), and turns the inline checkpoints off on each of its
//! connections ([`super::Store::leave_checkpoints_to`]). If the process
//! stops, the next one to open the store checkpoints as usual.
//!
//! A passive pass alone does not keep the log small under steady writes:
//! SQLite writes the log from its start again only when a write begins
//! after everything in it was copied, and with runs committing all the
//! time (or a group's transaction always open) that moment never comes, so
//! the log grew by every commit, hundreds of megabytes a minute. Once a
//! pass leaves more than [`RESTART_AFTER_FRAMES`] in the log, the thread
//! takes this process's writer turn (a group's open transaction is
//! committed for it), copies the rest and has the log start over
//! (`RESTART`); writers of this process wait for that copy only.

use super::StoreError;
use super::gate::Gate;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often `handoff serve` checkpoints: often enough that the log stays
/// a few megabytes at full speed, seldom enough that an idle pass is noise.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Frames of log (32 MiB) after which a pass has the log start over. Each
/// restart holds this process's writers for its last copy and its two
/// syncs (2-4 ms measured), so it is not done at every pass under load;
/// the log then stays under [`super::WAL_SIZE_LIMIT`] with a pass's worth
/// of writes on top, and its file is written over rather than regrown.
pub const RESTART_AFTER_FRAMES: i64 = 8192;

/// How long a restart waits for readers of the log's older frames (another
/// process's long read): writers of this process wait as long, so it is
/// short; a restart that cannot finish is tried again at the next pass.
const RESTART_PATIENCE: Duration = Duration::from_millis(50);

/// The checkpointing thread; stopped (after its current pass) when dropped.
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    stop: bool,
    /// A pass is wanted now.
    wanted: bool,
    /// Passes begun, and passes finished, so far.
    begun: u64,
    finished: u64,
}

impl Checkpointer {
    /// Checkpoint the store at `path` every `every`.
    pub fn start(path: &Path, every: Duration) -> Result<Checkpointer, StoreError> {
        Checkpointer::restarting_after(path, every, RESTART_AFTER_FRAMES)
    }

    /// [`Checkpointer::start`], having the log start over past `frames`.
    pub fn restarting_after(
        path: &Path,
        every: Duration,
        frames: i64,
    ) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(RESTART_PATIENCE)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let gate = Gate::for_path(path);
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            let shown = path.display().to_string();
            std::thread::Builder::new()
                .name("handoff-checkpoint".into())
                .spawn(move || run(&conn, &gate, frames, &shared, every, &shown))
                .map_err(|_| StoreError::Unavailable("cannot start the checkpoint thread"))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// The store it checkpoints.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoint now, and return once a pass that began after this call
    /// has finished.
    pub fn pass_now(&self) {
        let mut state = self.lock();
        let target = state.begun + 1;
        state.wanted = true;
        self.shared.changed.notify_all();
        while state.finished < target {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One pass: copy what no reader still needs without waiting for anyone
/// (`PASSIVE`); then, if the log is long, copy the rest and start it over
/// during a turn of this process's writers.
fn pass(conn: &Connection, gate: &Arc<Gate>, restart_after: i64) -> Result<(), StoreError> {
    let frames = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            r.get::<_, i64>(1)
        })
    };
    if frames("PASSIVE")? <= restart_after {
        return Ok(());
    }
    let _turn = gate.enter()?;
    // Busy (a reader of another process still needs the old frames) is a
    // row, not an error: the next pass tries again.
    frames("RESTART")?;
    Ok(())
}

fn run(
    conn: &Connection,
    gate: &Arc<Gate>,
    restart_after: i64,
    shared: &Shared,
    every: Duration,
    shown: &str,
) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        {
            let mut state = lock();
            state.begun += 1;
            state.wanted = false;
        }
        if let Err(e) = pass(conn, gate, restart_after) {
            tracing::warn!(store = shown, error = %e, "background checkpoint failed");
        }
        let mut state = lock();
        state.finished += 1;
        shared.changed.notify_all();
        // A stop comes after one last pass, so little log is left behind.
        if state.stop {
            return;
        }
        let deadline = std::time::Instant::now() + every;
        while !state.stop && !state.wanted {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, Store};

    fn db_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn the_thread_copies_the_log_into_the_database_that_writers_leave_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.db");
        let mut store = Store::open(&path).unwrap();
        // A long period: the test's own waits decide when passes happen.
        let checkpointer = Checkpointer::start(&path, Duration::from_secs(3600)).unwrap();
        store.leave_checkpoints_to(&checkpointer).unwrap();
        // The schema written by `open` is copied back first.
        checkpointer.pass_now();
        let before = db_bytes(&path);
        // Far more than the 1,000 pages after which a writer would
        // checkpoint by itself.
        let blob = vec![b'x'; 3000];
        for i in 0..2000 {
            let tx = store.write().unwrap();
            tx.execute(
                "INSERT INTO poll_cursors (adapter, policy_id, cursor, updated_at)
                 VALUES (?1, 'p', ?2, 'now')",
                rusqlite::params![format!("a{i}"), String::from_utf8_lossy(&blob)],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(db_bytes(&path), before, "the writer checkpointed by itself");
        checkpointer.pass_now();
        assert!(
            db_bytes(&path) > 2000 * 3000,
            "{} bytes: the log was not copied back",
            db_bytes(&path)
        );
    }

    #[test]
    fn the_log_starts_over_while_writes_keep_a_group_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.db");
        let mut store = Store::open(&path).unwrap();
        {
            let tx = store.write().unwrap();
            tx.execute_batch("CREATE TABLE filler (b BLOB)").unwrap();
            tx.commit().unwrap();
        }
        // A group stays open until it holds its most writes or someone
        // needs it committed: a pass always finds one open, as a busy
        // service's passes do.
        store
            .commit_in_groups_open_for(Durability::Process, Duration::from_secs(3600))
            .unwrap();
        // Restarts past 1,000 frames, so that a few thousand writes show it.
        let restart_after = 1000;
        let checkpointer =
            Checkpointer::restarting_after(&path, Duration::from_secs(3600), restart_after)
                .unwrap();
        store.leave_checkpoints_to(&checkpointer).unwrap();
        let wal = dir.path().join("handoff.db-wal");
        let mut largest = 0;
        // A page each; passes between every 25 writes (not a divisor of a
        // group's 128, so a pass never falls between a group's commit and
        // the next group's first write).
        for i in 0..3000 {
            let tx = store.write().unwrap();
            tx.execute("INSERT INTO filler VALUES (zeroblob(3000))", [])
                .unwrap();
            tx.commit().unwrap();
            if i % 25 == 24 {
                checkpointer.pass_now();
                largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            }
        }
        // Past the restart threshold by at most what a pass interval and
        // one group add; written on and on, it would hold all 3,000 pages.
        let bound = 2 * restart_after as u64 * (4096 + 24);
        assert!(
            largest <= bound,
            "the log reached {largest} bytes (bound {bound}): it did not start over"
        );
        let rows: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3000);
    }
}
