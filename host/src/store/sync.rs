//! Group sync: the commits of many runs made durable by one `fsync`.
//!
//! With `durability = "power"`, a commit on this process's shared
//! connection is not synced by SQLite itself (`synchronous = NORMAL`: the
//! write-ahead log reaches the OS at each commit, the disk at checkpoints).
//! Whoever must not go on until a commit would survive a power cut (a run
//! about to write to a target after recording its intent, an API answer)
//! asks for [`Syncer::durable`]: a thread of the syncer's own syncs the log
//! file once for every commit made before it started, and wakes everyone
//! waiting for any of them. Runs in flight together share the sync instead
//! of each paying for their own; one at a time, it is one sync per wait, as
//! before.
//!
//! An `fsync` on any descriptor of a file makes all of that file's written
//! data durable, so the log is synced from a descriptor of the syncer's
//! own. A failed sync fails every wait for it: the run stops before its
//! write, and stays unfinished.

use super::{Durability, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

impl Store {
    /// As [`Store::set_durability`], but `Power` on the process's shared
    /// connection syncs in groups: a commit is on disk before anyone who
    /// waits for it with [`Store::durable`] goes on, and one sync serves
    /// every commit made before it (see this module). For a service whose many
    /// runs commit together; every user of the connection must then wait
    /// before anything outside depends on a commit.
    pub fn sync_in_groups(&self, durability: Durability) -> Result<(), StoreError> {
        if durability == Durability::Power && self.on_shared {
            self.shared.syncer(&self.path);
            self.conn()?.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(())
        } else {
            self.set_durability(durability)
        }
    }

    /// Wait until every commit made on this connection so far would survive
    /// a power cut (at once unless it syncs in groups; see this module).
    pub async fn durable(&self) -> Result<(), StoreError> {
        match self.shared.has_syncer() {
            Some(syncer) => syncer.durable().await,
            None => Ok(()),
        }
    }

    /// [`Store::durable`], for a thread that may block.
    pub fn durable_blocking(&self) -> Result<(), StoreError> {
        match self.shared.has_syncer() {
            Some(syncer) => syncer.durable_blocking(),
            None => Ok(()),
        }
    }

    /// Commits made and syncs that made them durable, when this
    /// connection syncs in groups.
    pub fn sync_counts(&self) -> Option<(u64, u64)> {
        self.shared.has_syncer().map(|s| s.counts())
    }
}

#[derive(Debug, Default)]
struct State {
    /// Commits made so far.
    committed: u64,
    /// Commits known durable.
    synced: u64,
    /// The commit someone waits to see durable.
    wanted: u64,
    /// Syncs made.
    syncs: u64,
    failed: Option<String>,
}

/// A store file's group syncer. See the module documentation.
#[derive(Debug)]
pub struct Syncer {
    state: Mutex<State>,
    /// Wakes the sync thread (a wait began) and blocking waiters (a sync
    /// ended).
    wake: Condvar,
    /// For waiting tasks: the last commit known durable.
    synced: tokio::sync::watch::Sender<u64>,
    wal: PathBuf,
    db: PathBuf,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Syncer {
    /// The syncer of the database at `db`, and its thread (which lives as
    /// long as the process: one per store file that asks for one).
    pub fn start(db: &Path) -> Arc<Syncer> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let syncer = Arc::new(Syncer {
            state: Mutex::default(),
            wake: Condvar::new(),
            synced: tokio::sync::watch::Sender::new(0),
            wal: PathBuf::from(wal),
            db: db.to_path_buf(),
        });
        let on_thread = syncer.clone();
        std::thread::Builder::new()
            .name("handoff-sync".into())
            .spawn(move || on_thread.run())
            .expect("the sync thread starts");
        syncer
    }

    fn run(&self) {
        loop {
            let target = {
                let mut s = lock(&self.state);
                while s.wanted <= s.synced {
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                s.committed
            };
            let result = self.sync_files();
            let mut s = lock(&self.state);
            match result {
                Ok(()) => {
                    s.synced = s.synced.max(target);
                    s.syncs += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "syncing the store's log failed");
                    s.failed = Some(e.to_string());
                    // Those waiting are told; the next wait tries again.
                    s.wanted = s.synced;
                }
            }
            let synced = s.synced;
            drop(s);
            self.wake.notify_all();
            self.synced.send_replace(synced);
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

    /// Count a commit just made; its number.
    pub fn committed(&self) -> u64 {
        let mut s = lock(&self.state);
        s.committed += 1;
        s.committed
    }

    /// The commit to wait for (every one made so far), with the sync
    /// thread told; `None` when it is durable already.
    fn want(&self) -> Result<Option<u64>, StoreError> {
        let mut s = lock(&self.state);
        if let Some(failed) = s.failed.take() {
            tracing::warn!(%failed, "trying the store's sync again");
        }
        if s.synced >= s.committed {
            return Ok(None);
        }
        s.wanted = s.wanted.max(s.committed);
        let target = s.committed;
        drop(s);
        self.wake.notify_all();
        Ok(Some(target))
    }

    fn outcome(&self, target: u64) -> Result<(), StoreError> {
        let s = lock(&self.state);
        if s.synced >= target {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the store's log could not be synced to disk",
            ))
        }
    }

    /// Wait until every commit made so far is durable.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let Some(target) = self.want()? else {
            return Ok(());
        };
        let mut synced = self.synced.subscribe();
        loop {
            if *synced.borrow_and_update() >= target {
                return Ok(());
            }
            if lock(&self.state).failed.is_some() {
                return self.outcome(target);
            }
            if synced.changed().await.is_err() {
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
        while s.synced < target && s.failed.is_none() {
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        drop(s);
        self.outcome(target)
    }

    /// Commits and syncs so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.committed, s.syncs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_once_a_sync_covers_every_commit_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        std::fs::write(&db, b"db").unwrap();
        std::fs::write(dir.path().join("s.db-wal"), b"wal").unwrap();
        let syncer = Syncer::start(&db);
        // Nothing committed: nothing to wait for, no sync.
        syncer.durable_blocking().unwrap();
        assert_eq!(syncer.counts(), (0, 0));
        syncer.committed();
        syncer.committed();
        syncer.durable_blocking().unwrap();
        let (committed, syncs) = syncer.counts();
        assert_eq!((committed, syncs), (2, 1), "one sync for both");
        // Already durable: no new sync.
        syncer.durable_blocking().unwrap();
        assert_eq!(syncer.counts().1, 1);
    }

    #[test]
    fn many_waiting_tasks_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        std::fs::write(&db, b"db").unwrap();
        let syncer = Syncer::start(&db);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let syncer = syncer.clone();
                    tokio::task::spawn_local(async move {
                        syncer.committed();
                        syncer.durable().await.unwrap();
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let (committed, syncs) = syncer.counts();
        assert_eq!(committed, 50);
        assert!((1..50).contains(&syncs), "{syncs} syncs for 50 commits");
    }

    #[test]
    fn a_sync_that_fails_fails_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        // Neither the log nor the database exists: the sync cannot be made.
        let syncer = Syncer::start(&dir.path().join("gone.db"));
        syncer.committed();
        assert!(syncer.durable_blocking().is_err());
    }
}
