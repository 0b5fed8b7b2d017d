//! Per-adapter concurrency: how many calls each adapter instance may have
//! in flight at once, across every engine that shares one `Throttle` (the
//! service's workers share one). A target that can take a handful of
//! writes at a time (a small tracker, a rate-limited API) is protected
//! however many runs are being driven. Instances without a limit are not
//! throttled.
//!
//! An instance may also take one call per record at a time
//! (`one-call-per-record`): calls on different records run side by side,
//! calls on the same record take turns. That is what a store that reads a
//! record, changes it and writes it back, with no lock of its own, needs
//! to take more than one call at once without losing an update.
//!
//! Whatever the adapter, one run at a time takes a step that changes a
//! record ([`Throttle::step_on`]): its look, its write and its
//! confirmation. Two runs (of two decisions) closing one checklist would
//! otherwise both look, both find it open, and both close it; the second
//! now looks after the first has written, finds it closed and skips. (A
//! message published is each run's own, found by its key: runs publishing
//! to one channel take no such turn.)
//!
//! Both kinds of turn hold across the processes that share one store too
//! ([`across`]), once the host names its store
//! ([`Throttle::across_processes`]).
//!
//! A record is known by where it lives ([`Throttle::record_key`]):
//! instances bound to the same directories (two instances of one record
//! store, each narrowed to other actions) reach the same records, so they
//! take their turns together; any other instance's records are its own.

pub mod across;

use crate::config::AdapterInstance;
use crate::sandbox::RecordRef;
use across::{Across, Held, TurnError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub struct Throttle {
    limits: BTreeMap<String, Arc<Limit>>,
    /// Where each instance's records live, as [`Throttle::record_key`]
    /// names them: its name, or its directories when it is bound to some.
    places: BTreeMap<String, String>,
    /// The instances that take one call per record at a time (instances
    /// in one place share their records' turns).
    per_record: BTreeMap<String, Arc<Records>>,
    /// The records a run is taking a step on now, of every instance.
    steps: Arc<Records>,
}

/// Whose turns a holder waits for: this process's runs only (a dry run or
/// a shadow run, which write nothing another process could race, and so
/// make no lock file beside the store), or the other processes' on the
/// store too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    ThisProcess,
    All,
}

/// The layers of turns, held apart in the lock file beside the store.
const STEP: &str = "step";
const CALL: &str = "call";

/// A run's hold on a record for one step, released when dropped.
pub struct StepTurn {
    _record: RecordTurn,
}

/// The records of one instance with a call on them or waiting for one.
#[derive(Debug, Default)]
struct Records {
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Calls waiting for their record's turn now.
    waiters: Waiters,
    /// Where other processes on the store take their turns, and the layer
    /// these turns are in.
    across: Option<(Arc<Across>, &'static str)>,
}

/// The right to make one call: room under the adapter's limit, and the
/// record's turn when its instance takes one call per record.
pub struct Turn {
    _room: Option<OwnedSemaphorePermit>,
    _record: Option<RecordTurn>,
}

struct RecordTurn {
    records: Arc<Records>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    /// The turn across processes, taken once this process's was.
    across: Option<Held>,
}

impl Drop for RecordTurn {
    fn drop(&mut self) {
        // The other processes' turn first: this process's next holder
        // then finds the record's byte free.
        self.across.take();
        self.guard.take();
        // Forget a record no one holds or waits for, so the map holds only
        // the records in use.
        let mut busy = self.records.busy.lock().unwrap_or_else(|p| p.into_inner());
        if busy
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            busy.remove(&self.key);
        }
    }
}

impl Records {
    /// Records whose turns are held across processes too, in `layer`.
    fn across(across: &Arc<Across>, layer: &'static str) -> Records {
        Records {
            across: Some((across.clone(), layer)),
            ..Records::default()
        }
    }

    /// `key`'s turn, once every holder before has let it go, in this
    /// process and then, for [`Processes::All`], in the others on its
    /// store.
    async fn hold(
        records: &Arc<Records>,
        key: &str,
        processes: Processes,
    ) -> Result<RecordTurn, TurnError> {
        let lock = {
            let mut busy = records.busy.lock().unwrap_or_else(|p| p.into_inner());
            busy.entry(key.to_string()).or_default().clone()
        };
        let mut turn = RecordTurn {
            records: records.clone(),
            key: key.to_string(),
            guard: None,
            across: None,
        };
        // Held in `turn` from here on: a wait given up on still lets the
        // record be forgotten.
        turn.guard = Some(match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                let _waiting = records.waiters.enter();
                lock.lock_owned().await
            }
        });
        if let (Some((others, layer)), Processes::All) = (&records.across, processes) {
            turn.across = Some(match others.take(layer, key)? {
                Some(held) => held,
                // Counted with the waits in this process.
                None => {
                    let _waiting = records.waiters.enter();
                    tracing::info!(
                        record = %key,
                        turn = %layer,
                        "waiting for another process on this store, which holds the record"
                    );
                    others.hold(layer, key).await?
                }
            });
        }
        Ok(turn)
    }
}

#[derive(Debug)]
struct Limit {
    /// The configured `concurrency`.
    size: usize,
    room: Arc<Semaphore>,
    /// Calls waiting for room now.
    waiters: Waiters,
    /// The most calls in flight at once so far.
    peak: AtomicUsize,
}

impl Limit {
    /// Count a call let in: the most in flight at once so far.
    fn entered(&self) {
        let in_flight = self.size - self.room.available_permits();
        self.peak.fetch_max(in_flight, Ordering::SeqCst);
    }
}

/// A count of waiting calls that can be waited on.
#[derive(Debug, Default)]
struct Waiters {
    count: AtomicUsize,
    changed: Notify,
}

impl Waiters {
    /// Count one waiting call for as long as the guard lives (also when
    /// the wait is abandoned).
    fn enter(&self) -> Waiting<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Waiting(self)
    }

    fn now(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    async fn until(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the count is read, so no change is missed.
            changed.as_mut().enable();
            if self.now() >= n {
                return;
            }
            changed.await;
        }
    }
}

struct Waiting<'a>(&'a Waiters);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Throttle {
    /// A throttle with each instance's configured `concurrency` and
    /// `one-call-per-record`.
    pub fn new<'a>(instances: impl IntoIterator<Item = &'a AdapterInstance>) -> Throttle {
        let instances: Vec<_> = instances.into_iter().collect();
        let places: BTreeMap<String, String> = instances
            .iter()
            .map(|i| (i.name.clone(), place_of(i)))
            .collect();
        let per_record = shared_by_place(
            &places,
            instances
                .iter()
                .filter(|i| i.one_call_per_record)
                .map(|i| i.name.clone()),
            Records::default,
        );
        Throttle {
            steps: Arc::default(),
            places,
            per_record,
            limits: instances
                .into_iter()
                .filter_map(|i| {
                    let size = i.concurrency?;
                    let limit = Limit {
                        size,
                        room: Arc::new(Semaphore::new(size)),
                        waiters: Waiters::default(),
                        peak: AtomicUsize::new(0),
                    };
                    Some((i.name.clone(), Arc::new(limit)))
                })
                .collect(),
        }
    }

    /// Wait for room to call `adapter`; the call may proceed while the
    /// returned permit is held. `None`: that adapter is not throttled.
    pub async fn acquire(&self, adapter: &str) -> Option<OwnedSemaphorePermit> {
        let limit = self.limits.get(adapter)?;
        if let Ok(permit) = limit.room.clone().try_acquire_owned() {
            limit.entered();
            return Some(permit);
        }
        let _waiting = limit.waiters.enter();
        // The semaphore is never closed.
        let permit = limit.room.clone().acquire_owned().await.ok();
        limit.entered();
        permit
    }

    /// Each limited adapter: the most calls it had in flight at once.
    pub fn peaks(&self) -> impl Iterator<Item = (&str, usize)> {
        self.limits
            .iter()
            .map(|(name, l)| (name.as_str(), l.peak.load(Ordering::SeqCst)))
    }

    /// The same throttle, its record turns held across every process on
    /// the store at `store` as well.
    pub fn across_processes(self, store: &std::path::Path) -> Throttle {
        let across = Arc::new(Across::beside(store));
        let per_record = shared_by_place(&self.places, self.per_record.into_keys(), || {
            Records::across(&across, CALL)
        });
        Throttle {
            steps: Arc::new(Records::across(&across, STEP)),
            places: self.places,
            per_record,
            limits: self.limits,
        }
    }

    /// A record as its turns are taken: `place/kind/id`, where the place
    /// is where its instance's records live (see [`place_of`]).
    pub fn record_key(&self, record: &RecordRef) -> String {
        let place = self
            .places
            .get(&record.system)
            .map_or(record.system.as_str(), String::as_str);
        format!("{place}/{}/{}", record.kind, record.id)
    }

    /// Wait for the right to call `adapter` about `record` (a record's
    /// identity, as [`Throttle::record_key`] names it): the record's turn first, when the
    /// instance takes one call per record, then room under its limit (so a
    /// call waiting for its record holds no room another could use).
    pub async fn turn(
        &self,
        adapter: &str,
        record: &str,
        processes: Processes,
    ) -> Result<Turn, TurnError> {
        let record = match self.per_record.get(adapter) {
            Some(records) => Some(Records::hold(records, record, processes).await?),
            None => None,
        };
        Ok(Turn {
            _room: self.acquire(adapter).await,
            _record: record,
        })
    }

    /// Wait until no other run is taking a step on `record` (as
    /// [`Throttle::record_key`] names it), then hold it for this run's step.
    pub async fn step_on(&self, record: &str, processes: Processes) -> Result<StepTurn, TurnError> {
        Ok(StepTurn {
            _record: Records::hold(&self.steps, record, processes).await?,
        })
    }

    /// How many records of `adapter` have a call on them or waiting now.
    pub fn records_in_use(&self, adapter: &str) -> usize {
        self.per_record.get(adapter).map_or(0, |r| {
            r.busy.lock().unwrap_or_else(|p| p.into_inner()).len()
        })
    }

    /// Steps waiting for their record's turn now (another run's step holds
    /// it, in this process or another on the store).
    pub fn steps_waiting(&self) -> usize {
        self.steps.waiters.now()
    }

    /// Each limited adapter: its limit and the calls waiting for room now.
    pub fn limits(&self) -> impl Iterator<Item = (&str, usize, usize)> {
        self.limits
            .iter()
            .map(|(name, l)| (name.as_str(), l.size, l.waiters.now()))
    }

    /// Each instance that takes one call per record, and the calls waiting
    /// for their record's turn now.
    pub fn record_waits(&self) -> impl Iterator<Item = (&str, usize)> {
        self.per_record
            .iter()
            .map(|(name, r)| (name.as_str(), r.waiters.now()))
    }

    /// How many calls to `adapter` are waiting for room now.
    pub fn waiting(&self, adapter: &str) -> usize {
        self.limits.get(adapter).map_or(0, |l| l.waiters.now())
    }

    /// Resolves once at least `n` calls to `adapter` wait for room (for
    /// tests and tools that must know a caller is held back, not guess).
    pub async fn until_waiting(&self, adapter: &str, n: usize) {
        match self.limits.get(adapter) {
            Some(limit) => limit.waiters.until(n).await,
            None => std::future::pending().await,
        }
    }

    /// Resolves once at least `n` calls to `adapter` wait for their
    /// record's turn.
    pub async fn until_waiting_for_records(&self, adapter: &str, n: usize) {
        match self.per_record.get(adapter) {
            Some(records) => records.waiters.until(n).await,
            None => std::future::pending().await,
        }
    }
}

/// Where an instance's records live: its name, or, for an instance bound
/// to directories, those directories (as the file system resolves them,
/// so two spellings of one directory are one place). Two instances of a
/// record store on one directory then take their turns on its records
/// together, as one instance would.
fn place_of(instance: &AdapterInstance) -> String {
    let directories = &instance.surfaces.files.directories;
    if directories.is_empty() {
        return instance.name.clone();
    }
    let mut paths: Vec<std::path::PathBuf> = directories
        .values()
        .map(|p| {
            std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    paths.sort();
    paths.dedup();
    let mut digest = Sha256::new();
    for path in &paths {
        digest.update(path.as_os_str().as_encoded_bytes());
        digest.update([0]);
    }
    let digest = digest.finalize();
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("directories-{short}")
}

/// One `Records` for each place among `names`, handed to every instance
/// there.
fn shared_by_place(
    places: &BTreeMap<String, String>,
    names: impl Iterator<Item = String>,
    make: impl Fn() -> Records,
) -> BTreeMap<String, Arc<Records>> {
    let mut by_place: HashMap<String, Arc<Records>> = HashMap::new();
    names
        .map(|name| {
            let place = places.get(&name).cloned().unwrap_or_else(|| name.clone());
            let records = by_place
                .entry(place)
                .or_insert_with(|| Arc::new(make()))
                .clone();
            (name, records)
        })
        .collect()
}

#[cfg(test)]
mod tests;
