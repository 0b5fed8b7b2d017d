//! Turns inside this process: writers of one database take turns at a
//! gate, and so do the users of one shared connection ([`super::shared`]).
//!
//! SQLite lets one writer in at a time and tells the others only "busy";
//! they must poll, and a poll that just misses a commit sleeps through the
//! next one. Connections of the same process (the shared one and any of
//! their own) instead wait on this gate and are woken the moment the
//! previous write transaction ends. Other processes still
//! meet at SQLite's lock and its busy handler.
//!
//! A connection that commits in groups ([`super::group`]) leaves its write
//! transaction open between writes: the turn is then *parked* with that
//! connection. Its next writer takes the parked turn over and writes into
//! the same transaction; a writer of any other connection asks the
//! connection's flusher to commit, and waits for the turn as usual.

use super::StoreError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How long a writer waits for its turn before giving up (as SQLite's busy
/// handler does for writers of other processes).
const PATIENCE: Duration = Duration::from_secs(10);

/// Who commits a parked transaction when a writer of another connection
/// wants the turn.
pub trait Flush: Send + Sync + std::fmt::Debug {
    /// Commit the parked transaction soon (the turn is then freed).
    fn flush_soon(&self);
}

/// Whose turn it is.
#[derive(Debug, Default)]
enum Holder {
    #[default]
    Free,
    /// A thread's, until its [`Turn`] is dropped or parked.
    Thread(ThreadId),
    /// A connection's, between two of its writes (see the module).
    Parked {
        conn: usize,
        flusher: Weak<dyn Flush>,
    },
}

/// The turn-taking of one database file (or one connection).
#[derive(Debug, Default)]
pub struct Gate {
    taken: Mutex<Holder>,
    freed: Condvar,
    /// Nanoseconds of turns ended so far.
    held: AtomicU64,
}

/// One turn; the next in line is woken when it is dropped.
#[derive(Debug)]
pub struct Turn {
    gate: Arc<Gate>,
    since: Instant,
    /// Set by [`Turn::park`]: the connection the turn is left with.
    parked: Option<(usize, Weak<dyn Flush>)>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A holder that panicked mid-turn still gave its turn back on unwind;
    // what the mutex guards cannot be left half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    /// The gate shared by every connection of this process to `path`.
    pub fn for_path(path: &Path) -> Arc<Gate> {
        static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<Gate>>>> = OnceLock::new();
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut gates = GATES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        gates.entry(key).or_default().clone()
    }

    /// A gate of its own (an in-memory database has no other connection).
    pub fn private() -> Arc<Gate> {
        Arc::default()
    }

    /// How long turns at this gate have been held, all of them together
    /// (a turn still held is counted when it ends).
    pub fn held(&self) -> Duration {
        Duration::from_nanos(self.held.load(Ordering::Relaxed))
    }

    /// Wait for the turn (a writer of a connection that does not commit in
    /// groups).
    pub fn enter(self: &Arc<Self>) -> Result<Turn, StoreError> {
        self.enter_as(None)
    }

    /// Wait for the turn as a writer of the connection `conn` (any number
    /// naming it in this process), taking over its parked turn.
    pub fn enter_for(self: &Arc<Self>, conn: usize) -> Result<Turn, StoreError> {
        self.enter_as(Some(conn))
    }

    fn enter_as(self: &Arc<Self>, mine: Option<usize>) -> Result<Turn, StoreError> {
        let deadline = Instant::now() + PATIENCE;
        let me = std::thread::current().id();
        let mut taken = lock(&self.taken);
        loop {
            match &*taken {
                Holder::Free => break,
                Holder::Parked { conn, .. } if Some(*conn) == mine => break,
                Holder::Parked { flusher, .. } => match flusher.upgrade() {
                    Some(flusher) => flusher.flush_soon(),
                    // Its connection is gone (and committed as it went).
                    None => break,
                },
                Holder::Thread(holder) if *holder == me => {
                    // It would wait for itself: a bug, reported at once
                    // rather than after the patience runs out.
                    return Err(StoreError::Unavailable(
                        "the store was asked for again by the thread whose turn it is",
                    ));
                }
                Holder::Thread(_) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(
                    "another user of this process has held the store for over 10 s",
                ));
            }
            taken = self
                .freed
                .wait_timeout(taken, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *taken = Holder::Thread(me);
        Ok(Turn {
            gate: self.clone(),
            since: Instant::now(),
            parked: None,
        })
    }

    /// The turn, if `conn` left it parked, is free again (the connection
    /// committed its transaction as it closed).
    pub fn unpark(&self, conn: usize) {
        let mut taken = lock(&self.taken);
        if matches!(&*taken, Holder::Parked { conn: c, .. } if *c == conn) {
            *taken = Holder::Free;
            drop(taken);
            self.freed.notify_all();
        }
    }
}

impl Turn {
    /// End the turn leaving it parked with `conn`, whose write transaction
    /// stays open; `flusher` commits it when a writer of another connection
    /// asks.
    pub fn park(mut self, conn: usize, flusher: Weak<dyn Flush>) {
        self.parked = Some((conn, flusher));
    }
}

#[cfg(test)]
impl Gate {
    fn try_enter(self: &Arc<Self>) -> Option<Turn> {
        let mut taken = lock(&self.taken);
        matches!(*taken, Holder::Free).then(|| {
            *taken = Holder::Thread(std::thread::current().id());
            Turn {
                gate: self.clone(),
                since: Instant::now(),
                parked: None,
            }
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let took = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.gate.held.fetch_add(took, Ordering::Relaxed);
        *lock(&self.gate.taken) = match self.parked.take() {
            Some((conn, flusher)) => Holder::Parked { conn, flusher },
            None => Holder::Free,
        };
        // Every waiter: a writer of the parked connection takes the turn
        // over, one of another asks for the commit.
        self.gate.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_turn_at_a_time_and_a_waiting_writer_is_woken() {
        let gate = Gate::private();
        let first = gate.enter().unwrap();
        assert!(
            gate.try_enter().is_none(),
            "a second turn while one is held"
        );
        assert!(
            matches!(gate.enter(), Err(StoreError::Unavailable(m)) if m.contains("asked for again")),
            "the holder asking again is refused at once"
        );
        let other = gate.clone();
        let waiter = std::thread::spawn(move || other.enter().map(drop));
        drop(first);
        // The waiter gets in once the first turn ends (or this join hangs
        // and its 10 s patience fails it).
        waiter.join().unwrap().unwrap();
        assert!(gate.try_enter().is_some(), "the turn was given back");
    }

    #[test]
    fn the_time_turns_are_held_is_added_up_when_each_ends() {
        let gate = Gate::private();
        assert_eq!(gate.held(), Duration::ZERO);
        let mut outside = Duration::ZERO;
        for _ in 0..3 {
            let start = Instant::now();
            let turn = gate.enter().unwrap();
            // Something to time: without it a turn can take under a
            // nanosecond's resolution.
            let spin = Instant::now();
            while spin.elapsed() < Duration::from_micros(200) {}
            assert!(
                gate.held() <= outside,
                "a turn still held is not counted yet"
            );
            drop(turn);
            outside += start.elapsed();
        }
        let held = gate.held();
        assert!(
            held >= Duration::from_micros(600) && held <= outside,
            "three turns of 200+ us held {held:?}, timed {outside:?} from outside"
        );
    }

    #[test]
    fn connections_to_one_file_share_a_gate() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        std::fs::write(&a, b"").unwrap();
        let same = dir.path().join(".").join("a.db");
        assert!(Arc::ptr_eq(&Gate::for_path(&a), &Gate::for_path(&same)));
        assert!(!Arc::ptr_eq(
            &Gate::for_path(&a),
            &Gate::for_path(&dir.path().join("b.db"))
        ));
    }
}
