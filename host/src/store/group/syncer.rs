//! The thread that commits a connection's open batch and syncs the log,
//! and the waits for it (see the module above).

use super::super::StoreError;
use super::super::gate::{Flush, Gate};
use super::super::shared::SharedConnection;
use super::GroupCounts;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

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
    /// For whoever must stop once a batch is lost: why it was.
    lost_watch: tokio::sync::watch::Sender<Option<String>>,
    /// Sync the log too (power durability), or only commit.
    pub(super) power: bool,
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
            lost_watch: tokio::sync::watch::Sender::new(None),
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

    pub(in crate::store) fn gate(&self) -> &Arc<Gate> {
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

    /// Why every later write and wait is refused, once a batch was lost.
    pub(in crate::store) fn lost_because(&self) -> Option<String> {
        lock(&self.state).lost.clone()
    }

    /// Why a batch was lost, as soon as one is.
    pub(in crate::store) async fn until_lost(&self) -> String {
        let mut lost = self.lost_watch.subscribe();
        let why = match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            // The sender lives as long as this syncer.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Refused once a batch was lost.
    pub(in crate::store) fn check(&self) -> Result<(), StoreError> {
        match &lock(&self.state).lost {
            Some(_) => Err(lost()),
            None => Ok(()),
        }
    }

    /// A batch was begun.
    pub(in crate::store) fn began(&self) {
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
    pub(in crate::store) fn wrote(&self) -> u64 {
        let mut s = lock(&self.state);
        s.writes += 1;
        s.open_writes += 1;
        s.open_writes
    }

    /// Whether a batch is open.
    pub(in crate::store) fn is_open(&self) -> bool {
        lock(&self.state).open_since.is_some()
    }

    /// The open batch was committed.
    pub(in crate::store) fn committed(&self) {
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
    pub(in crate::store) fn ended_without_commit(&self, why: &str) {
        let mut s = lock(&self.state);
        if s.open_writes > 0 && s.lost.is_none() {
            tracing::error!(
                writes = s.open_writes,
                why,
                "a group of the store's writes could not be committed; \
                 the store refuses every write until handoff is started again"
            );
            s.lost = Some(why.to_string());
            self.lost_watch.send_replace(Some(why.to_string()));
        }
        // Counted as committed, so nobody waits for it (the waits see it
        // lost); not as synced: an earlier commit may still wait for its
        // sync.
        s.committed = s.begun;
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
pub(in crate::store) fn lost() -> StoreError {
    StoreError::Unavailable(
        "a group of writes to the store could not be committed; start handoff again \
         (runs resume from what the store holds)",
    )
}
