//! Group commit and group sync: the writes of many runs committed by one
//! transaction, and the commits made durable by one `fsync`.
//!
//! `handoff serve`'s shared connection commits in groups
//! ([`Store::commit_in_groups`]). Each write is a savepoint inside a write
//! transaction that stays open between writes (a *batch*,
//! [`super::batch`]): its rows are visible to every user of the connection
//! at once, and to other connections and processes when the batch commits.
//! Whoever must not go on until its writes would survive a stop (a run
//! about to write to a target after recording its intent, an API answer)
//! asks for [`Store::durable`]. With `durability = "power"`, this module's
//! thread commits the open batch and syncs the log file once for every
//! commit before it, then wakes everyone waiting for any of them. With
//! `"process"` the commit is enough (SQLite's `synchronous = NORMAL`: a
//! killed process loses nothing committed), and the waiter makes it
//! itself. Runs in flight together
//! share the commit and the sync instead of each paying for their own;
//! one at a time, it is one of each per wait, as before. A batch is also
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

use super::gate::{Flush, Gate};
use super::shared::SharedConnection;
use super::{Durability, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

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
            .syncer(&self.path, durability == Durability::Power, MAX_OPEN);
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
        super::batch::flush(&self.shared, syncer)
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

#[derive(Debug, Default)]
struct State {
    /// Batches begun so far; the last is open until `committed` reaches it.
    begun: u64,
    /// Writes in the open batch, and since when it is open.
    open_writes: u64,
    open_since: Option<Instant>,
    /// Batches committed so far.
    committed: u64,
    /// Batches known durable (with power durability; else `committed`).
    synced: u64,
    /// The batch someone waits to see durable.
    wanted: u64,
    /// A writer of another connection waits for the turn.
    flush_asked: bool,
    /// The thread sleeps with no batch open (so no deadline to wake at).
    idle: bool,
    writes: u64,
    commits: u64,
    syncs: u64,
    /// The last sync failed (the next wait tries again).
    failed: Option<String>,
    /// A batch was lost: every later write and wait is refused.
    lost: Option<String>,
}

/// A connection's group committer and syncer. See the module documentation.
#[derive(Debug)]
pub struct Syncer {
    state: Mutex<State>,
    /// Wakes the thread (a wait began, a batch opened) and blocking waiters
    /// (a batch became durable).
    wake: Condvar,
    /// For waiting tasks: the last batch known durable.
    durable: tokio::sync::watch::Sender<u64>,
    /// Sync the log too (power durability), or only commit.
    power: bool,
    /// How long a batch nobody asks for stays open ([`MAX_OPEN`]).
    max_open: Duration,
    gate: Arc<Gate>,
    conn: OnceLock<Weak<SharedConnection>>,
    wal: PathBuf,
    db: PathBuf,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn done(&self, power: bool) -> u64 {
        if power { self.synced } else { self.committed }
    }
}

impl Syncer {
    /// The group committer of `conn`, on the database at `db` (syncing its
    /// log when `power`), and its thread, which ends with the connection.
    pub fn start(
        conn: &Arc<SharedConnection>,
        db: &Path,
        power: bool,
        max_open: Duration,
    ) -> Arc<Syncer> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let syncer = Arc::new(Syncer {
            state: Mutex::default(),
            wake: Condvar::new(),
            durable: tokio::sync::watch::Sender::new(0),
            power,
            max_open,
            gate: Gate::for_path(db),
            conn: OnceLock::new(),
            wal: PathBuf::from(wal),
            db: db.to_path_buf(),
        });
        let _ = syncer.conn.set(Arc::downgrade(conn));
        let on_thread = syncer.clone();
        std::thread::Builder::new()
            .name("handoff-sync".into())
            .spawn(move || on_thread.run())
            .expect("the sync thread starts");
        syncer
    }

    pub(super) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    fn run(&self) {
        loop {
            {
                let mut s = lock(&self.state);
                loop {
                    let due = s.wanted > s.done(self.power)
                        || s.flush_asked
                        || s.open_since.is_some_and(|t| t.elapsed() >= self.max_open);
                    if due {
                        break;
                    }
                    let wait = s.open_since.map_or(Duration::from_secs(1), |t| {
                        self.max_open.saturating_sub(t.elapsed())
                    });
                    s.idle = s.open_since.is_none();
                    s = self
                        .wake
                        .wait_timeout(s, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    s.idle = false;
                    if self.conn.get().is_some_and(|c| c.strong_count() == 0) {
                        return;
                    }
                }
                s.flush_asked = false;
            }
            let Some(conn) = self.conn.get().and_then(Weak::upgrade) else {
                return;
            };
            let flushed = super::batch::flush(&conn, self);
            drop(conn);
            let committed = lock(&self.state).committed;
            let result = match flushed {
                Ok(()) if self.power => self.sync_files().map_err(|e| e.to_string()),
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
            let mut s = lock(&self.state);
            match result {
                Ok(()) => {
                    if self.power {
                        s.synced = s.synced.max(committed);
                        s.syncs += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "committing or syncing the store's log failed");
                    s.failed = Some(e);
                    // Those waiting are told; the next wait tries again.
                    s.wanted = s.done(self.power);
                }
            }
            let done = s.done(self.power);
            drop(s);
            self.wake.notify_all();
            self.durable.send_replace(done);
        }
    }

    /// The log, and the database file when there is no log (everything in
    /// it was checkpointed into the database, which a checkpoint syncs).
    fn sync_files(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.wal) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.db)?.sync_data()
            }
            Err(e) => Err(e),
        }
    }

    /// Refused once a batch was lost.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &lock(&self.state).lost {
            Some(_) => Err(lost()),
            None => Ok(()),
        }
    }

    /// A batch was begun.
    pub(super) fn began(&self) {
        let mut s = lock(&self.state);
        s.begun += 1;
        s.open_writes = 0;
        s.open_since = Some(Instant::now());
        // Woken only to learn of the batch's age when it sleeps without a
        // deadline; asleep with one, it looks at the open batch then (a
        // wake per batch cost more than the commits saved).
        let idle = s.idle;
        drop(s);
        if idle {
            self.wake.notify_all();
        }
    }

    /// A write went into the open batch; how many it holds now.
    pub(super) fn wrote(&self) -> u64 {
        let mut s = lock(&self.state);
        s.writes += 1;
        s.open_writes += 1;
        s.open_writes
    }

    /// Whether a batch is open.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.state).open_since.is_some()
    }

    /// The open batch was committed.
    pub(super) fn committed(&self) {
        let mut s = lock(&self.state);
        s.committed = s.begun;
        s.commits += 1;
        s.open_writes = 0;
        s.open_since = None;
        drop(s);
        // (Nobody waits on the thread for a commit: with process durability
        // a wait commits itself, with power it waits for the sync.)
    }

    /// The open batch is gone without a commit: with writes in it, they
    /// are lost (see the module).
    pub(super) fn ended_without_commit(&self, why: &str) {
        let mut s = lock(&self.state);
        if s.open_writes > 0 && s.lost.is_none() {
            tracing::error!(
                writes = s.open_writes,
                why,
                "a group of the store's writes could not be committed; \
                 the store refuses every write until handoff is started again"
            );
            s.lost = Some(why.to_string());
        }
        // Counted as done, so nobody waits for it; the waits see it lost.
        s.committed = s.begun;
        s.synced = s.synced.max(s.committed);
        s.open_writes = 0;
        s.open_since = None;
        let done = s.done(self.power);
        drop(s);
        self.wake.notify_all();
        self.durable.send_replace(done);
    }

    /// Every batch begun so far, as the batch to wait for; `None` when it
    /// is durable already.
    fn want(&self) -> Result<Option<u64>, StoreError> {
        let mut s = lock(&self.state);
        if s.lost.is_some() {
            return Err(lost());
        }
        if let Some(failed) = s.failed.take() {
            tracing::warn!(%failed, "trying the store's commit and sync again");
        }
        if s.done(self.power) >= s.begun {
            return Ok(None);
        }
        s.wanted = s.wanted.max(s.begun);
        let target = s.begun;
        drop(s);
        self.wake.notify_all();
        Ok(Some(target))
    }

    fn outcome(&self, target: u64) -> Result<(), StoreError> {
        let s = lock(&self.state);
        if s.lost.is_some() {
            Err(lost())
        } else if s.done(self.power) >= target {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the store's writes could not be committed and synced to disk",
            ))
        }
    }

    /// Wait until every write made so far is durable.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let Some(target) = self.want()? else {
            return Ok(());
        };
        let mut done = self.durable.subscribe();
        loop {
            if *done.borrow_and_update() >= target {
                return self.outcome(target);
            }
            {
                let s = lock(&self.state);
                if s.failed.is_some() || s.lost.is_some() {
                    drop(s);
                    return self.outcome(target);
                }
            }
            if done.changed().await.is_err() {
                return self.outcome(target);
            }
        }
    }

    /// [`Syncer::durable`] on a thread that may block.
    pub fn durable_blocking(&self) -> Result<(), StoreError> {
        let Some(target) = self.want()? else {
            return Ok(());
        };
        let mut s = lock(&self.state);
        while s.done(self.power) < target && s.failed.is_none() && s.lost.is_none() {
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        drop(s);
        self.outcome(target)
    }

    /// Writes, commits and syncs so far.
    pub fn counts(&self) -> GroupCounts {
        let s = lock(&self.state);
        GroupCounts {
            writes: s.writes,
            commits: s.commits,
            syncs: s.syncs,
        }
    }
}

impl Flush for Syncer {
    fn flush_soon(&self) {
        lock(&self.state).flush_asked = true;
        self.wake.notify_all();
    }
}

/// What every write and wait is told once a batch was lost.
pub(super) fn lost() -> StoreError {
    StoreError::Unavailable(
        "a group of writes to the store could not be committed; start handoff again \
         (runs resume from what the store holds)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in `dir` committing in groups, with a table to write to; a
    /// batch nobody asks for stays open for a minute, so that the counts
    /// are the test's own.
    fn grouped(dir: &Path, durability: Durability) -> Store {
        grouped_open_for(dir, durability, Duration::from_secs(60))
    }

    fn grouped_open_for(dir: &Path, durability: Durability, max_open: Duration) -> Store {
        let path = dir.join("s.db");
        let mut store = Store::open(&path).unwrap();
        let tx = store.write().unwrap();
        tx.execute_batch(
            "CREATE TABLE t (n INTEGER PRIMARY KEY);
             CREATE TABLE child (n INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        tx.commit().unwrap();
        store
            .conn()
            .unwrap()
            .pragma_update(None, "synchronous", "NORMAL")
            .unwrap();
        store
            .shared
            .syncer(&path, durability == Durability::Power, max_open);
        store
    }

    fn insert(store: &mut Store, n: i64) {
        let tx = store.write().unwrap();
        tx.execute("INSERT INTO t (n) VALUES (?1)", [n]).unwrap();
        tx.commit().unwrap();
    }

    fn rows(reader: &Store) -> Vec<i64> {
        let conn = reader.conn().unwrap();
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn writes_share_one_commit_and_one_sync_made_when_someone_waits() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path(), Durability::Power);
        let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        for n in 1..=3 {
            insert(&mut store, n);
        }
        // Everyone on the connection sees them at once.
        assert_eq!(rows(&store), [1, 2, 3]);
        store.durable_blocking().unwrap();
        let counts = store.group_counts().unwrap();
        assert_eq!(counts.writes, 3);
        assert_eq!((counts.commits, counts.syncs), (1, 1), "{counts:?}");
        assert_eq!(rows(&reader), [1, 2, 3], "committed for other connections");
        // Nothing new: no commit, no sync.
        store.durable_blocking().unwrap();
        assert_eq!(store.group_counts().unwrap(), counts);
    }

    #[test]
    fn a_full_batch_is_committed_by_its_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path(), Durability::Power);
        for n in 0..MAX_WRITES as i64 + 2 {
            insert(&mut store, n);
        }
        let counts = store.group_counts().unwrap();
        assert_eq!((counts.writes, counts.commits), (MAX_WRITES + 2, 1));
        let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        assert_eq!(rows(&reader).len() as u64, MAX_WRITES);
    }

    #[test]
    fn a_write_dropped_undoes_only_its_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path(), Durability::Process);
        insert(&mut store, 1);
        {
            let tx = store.write().unwrap();
            tx.execute("INSERT INTO t (n) VALUES (2)", []).unwrap();
        }
        insert(&mut store, 3);
        store.durable_blocking().unwrap();
        let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        assert_eq!(rows(&reader), [1, 3]);
        assert_eq!(store.group_counts().unwrap().commits, 1);
    }

    #[test]
    fn a_writer_of_another_connection_has_the_batch_committed_and_gets_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path(), Durability::Power);
        insert(&mut store, 1);
        // Intake's kind of connection: its own, not grouped. It waits at
        // the gate, asks for the batch's commit, then writes.
        let mut other = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        insert(&mut other, 2);
        assert_eq!(rows(&other), [1, 2]);
        assert_eq!(store.group_counts().unwrap().commits, 1);
        // And the grouped connection goes on writing after it.
        insert(&mut store, 3);
        store.durable_blocking().unwrap();
        assert_eq!(rows(&other), [1, 2, 3]);
    }

    #[test]
    fn a_batch_nobody_asks_for_is_committed_when_it_has_been_open_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped_open_for(dir.path(), Durability::Process, MAX_OPEN);
        let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        insert(&mut store, 7);
        // No wait is asked for: the syncer's own clock commits it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rows(&reader).is_empty() {
            assert!(Instant::now() < deadline, "the batch was never committed");
            std::thread::yield_now();
        }
        assert_eq!(store.group_counts().unwrap().commits, 1);
    }

    #[test]
    fn a_batch_left_open_is_committed_when_the_connection_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let mut store = grouped(dir.path(), Durability::Power);
            insert(&mut store, 5);
        }
        assert_eq!(rows(&Store::open_unshared(&path).unwrap()), [5]);
    }

    #[test]
    fn many_waiting_tasks_share_commits_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = grouped(dir.path(), Durability::Power);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let tasks: Vec<_> = (0..50)
                .map(|n| {
                    let mut store = store.handle();
                    tokio::task::spawn_local(async move {
                        insert(&mut store, n);
                        store.durable().await.unwrap();
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let counts = store.group_counts().unwrap();
        assert_eq!(counts.writes, 50);
        assert!((1..50).contains(&counts.syncs), "{counts:?}");
        assert!(counts.commits <= counts.syncs + 1, "{counts:?}");
    }

    #[test]
    fn a_sync_that_fails_fails_the_wait_and_the_next_wait_tries_again() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let mut store = grouped(&home, Durability::Power);
        insert(&mut store, 1);
        // The files cannot be opened under their names any more.
        let moved = dir.path().join("moved");
        std::fs::rename(&home, &moved).unwrap();
        assert!(store.durable_blocking().is_err());
        std::fs::rename(&moved, &home).unwrap();
        insert(&mut store, 2);
        store.durable_blocking().unwrap();
    }

    #[test]
    fn a_batch_that_cannot_commit_refuses_every_later_write_and_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path(), Durability::Process);
        store
            .conn()
            .unwrap()
            .execute_batch("PRAGMA foreign_keys = ON")
            .unwrap();
        insert(&mut store, 1);
        // Checked only at the commit: the whole batch fails with it.
        let tx = store.write().unwrap();
        tx.execute("INSERT INTO child (n) VALUES (99)", []).unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            store.durable_blocking(),
            Err(StoreError::Unavailable(m)) if m.contains("could not be committed")
        ));
        assert!(store.write().is_err(), "a write after a lost batch");
        let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
        assert!(rows(&reader).is_empty(), "the batch was not committed");
    }
}
