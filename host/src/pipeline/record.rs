//! The run's record: every run and step transition commits in one
//! transaction with its audit rows, renewing the run's lease. What a stop
//! could only cost a second look at (a read's audit row, a step found or
//! confirmed in its end state, the plan of a run stored before plans were
//! stored at intake) waits for the next transition's transaction. A dry run
//! records nothing: its recorder keeps what a run would have written.

use super::lease::Lease;
use crate::audit::Entry;
use crate::store::runs::{self, RunRecord};
use crate::store::{Store, StoreError, Write};

/// One audit row a transition appends (run, event and policy are filled in).
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub adapter_sha256: Option<String>,
}

impl Row {
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Row {
        Row {
            kind,
            payload,
            adapter_sha256: None,
        }
    }

    pub fn by(mut self, adapter_sha256: Option<String>) -> Row {
        self.adapter_sha256 = adapter_sha256;
        self
    }
}

/// A change that waits for the next transition, with its audit rows.
pub type Change = Box<dyn FnOnce(&Write<'_>) -> Result<(), StoreError> + Send>;

enum Pending {
    /// The audit row of a read (revalidated, check passed...).
    Read(Row),
    /// A change that repeats what the targets already show, or what is
    /// derived again the same way, with its audit rows.
    Change(Change, Vec<Row>),
}

/// Whether transitions reach the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    On,
    /// A dry run: nothing is committed.
    Off,
}

/// What waits for the next transition, and how transitions commit.
pub struct Recorder {
    recording: Recording,
    pending: Vec<Pending>,
    /// The run's lease, which every transition renews.
    lease: Lease,
}

impl Recorder {
    pub fn new(recording: Recording, lease: Lease) -> Recorder {
        Recorder {
            recording,
            pending: Vec::new(),
            lease,
        }
    }

    pub fn recording(&self) -> Recording {
        self.recording
    }

    /// A read's audit row, for the next transition.
    pub fn note(&mut self, row: Row) {
        self.pending.push(Pending::Read(row));
    }

    /// A change and its rows, for the next transition.
    pub fn defer(&mut self, change: Change, rows: Vec<Row>) {
        self.pending.push(Pending::Change(change, rows));
    }

    /// The rows of the reads that wait, taken (everything else waiting is
    /// dropped): what a dry run shows instead of storing.
    pub fn take_reads(&mut self) -> Vec<Row> {
        self.pending
            .drain(..)
            .filter_map(|pending| match pending {
                Pending::Read(row) => Some(row),
                Pending::Change(..) => None,
            })
            .collect()
    }

    /// Commit a change whose audit rows depend on what it wrote, with
    /// everything that waited, in one transaction that renews the lease.
    /// When recording is off, nothing is written and `None` is returned.
    pub fn commit<T>(
        &mut self,
        store: &mut Store,
        run: &RunRecord,
        change: impl FnOnce(&Write<'_>) -> Result<(T, Vec<Row>), StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if self.recording == Recording::Off {
            return Ok(None);
        }
        let tx = store.write()?;
        // Renew first: a change that finishes the run ends the lease.
        runs::renew(&tx, &run.run_id, self.lease.owner(), self.lease.ttl())?;
        // What waited goes first, in the order it happened; if this
        // transaction fails, it is lost with it, as a stop would lose it.
        let mut waited = Vec::new();
        for pending in self.pending.drain(..) {
            match pending {
                Pending::Read(row) => waited.push(row),
                Pending::Change(apply, rows) => {
                    apply(&tx)?;
                    waited.extend(rows);
                }
            }
        }
        let (value, rows) = change(&tx)?;
        for row in waited.into_iter().chain(rows) {
            crate::store::audit::append(&tx, &entry(run, row))?;
        }
        tx.commit()?;
        self.lease.renewed();
        Ok(Some(value))
    }
}

/// An audit entry of this run.
fn entry(run: &RunRecord, row: Row) -> Entry {
    Entry {
        run_id: Some(run.run_id.clone()),
        event_id: Some(run.event_id.clone()),
        kind: row.kind.into(),
        payload: row.payload,
        policy_sha256: Some(run.policy_sha256.clone()),
        adapter_sha256: row.adapter_sha256,
    }
}
