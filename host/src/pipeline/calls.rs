//! The adapter-call service: the one path by which the pipeline, the dry
//! run, reconciliation and `adapter conform` call adapters. For each call
//! it instantiates the adapter when needed (one instance per adapter per
//! session, or a fresh one every call), takes the adapter's turn at its
//! concurrency limit (and the record's, for `one-call-per-record`), keeps
//! a run's lease before a write that may have waited ([`super::lease`]),
//! makes the call, times it, records every capability decision the call
//! made (a decision that cannot be stored fails the call: none is
//! dropped), and sorts failures into "try again" and "a person decides",
//! retrying transient ones with a bounded, doubling pause.

use super::halt::Halt;
use super::host::{AdapterLoad, Host};
use super::lease::Lease;
use super::throttle::Processes;
use super::{RunError, Timed};
use crate::model::Reason;
use crate::sandbox::{
    Action, AdapterError, CallError, CallResult, ChangePage, Decision, Instance, Observed,
    RecordRef,
};
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Why one attempt did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try (the target is unavailable, the call timed out).
    Transient(String),
    /// Trying again will not help; a person decides.
    Final(Reason, String),
}

/// Sort an adapter's error.
pub fn classify(err: &AdapterError) -> Failure {
    match err {
        AdapterError::Transient(m) => Failure::Transient(m.clone()),
        // The contract: only `transient` is retried. Sending the same request
        // again into a state that refused it would only repeat the refusal.
        AdapterError::Conflict(m) => Failure::Final(Reason::TargetRefused, m.clone()),
        AdapterError::NotFound(m) => Failure::Final(Reason::MappingMissing, m.clone()),
        AdapterError::Denied(m) => Failure::Final(Reason::CapabilityDenied, m.clone()),
        AdapterError::Invalid(m) => Failure::Final(Reason::TargetRefused, m.clone()),
        AdapterError::Unsupported(m) => Failure::Final(Reason::OutOfScope, m.clone()),
    }
}

/// One session's calls: a run's, a dry run's, a reconciliation pass's.
pub struct AdapterCalls {
    host: Arc<Host>,
    /// Where decisions are recorded (a handle of the caller's store).
    store: Store,
    /// The run and event the decisions are about, when there are.
    run_id: Option<String>,
    event_id: Option<String>,
    instances: BTreeMap<String, Instance>,
    /// The component digest of each adapter these calls loaded, for audit
    /// rows (the process may forget its loaded adapters meanwhile).
    digests: BTreeMap<String, String>,
    /// A fresh instance for every call: nothing carries over, as after a
    /// restart (`adapter conform`).
    fresh: bool,
    /// Every instance as a shadow run has it (reading only).
    shadow: bool,
    /// The run's lease, kept before writes (a run's calls only).
    lease: Option<Lease>,
    /// Whose record turns its calls wait for (see [`Processes`]).
    processes: Processes,
}

impl AdapterCalls {
    pub fn new(host: Arc<Host>, store: &Store) -> AdapterCalls {
        AdapterCalls {
            host,
            store: store.handle(),
            run_id: None,
            event_id: None,
            instances: BTreeMap::new(),
            digests: BTreeMap::new(),
            fresh: false,
            shadow: false,
            lease: None,
            processes: Processes::All,
        }
    }

    /// Calls of a run that records nothing (a dry run, a shadow run): their
    /// record turns are this process's only.
    pub fn recording_nothing(mut self) -> AdapterCalls {
        self.processes = Processes::ThisProcess;
        self
    }

    /// Whose record turns these calls wait for; a run's steps wait for the
    /// same.
    pub fn processes(&self) -> Processes {
        self.processes
    }

    /// The calls of a run that holds `lease`: a write that may have waited
    /// long since the lease was last renewed renews it first.
    pub fn leased(mut self, lease: Lease) -> AdapterCalls {
        self.lease = Some(lease);
        self
    }

    /// Decisions attributed to this run and event.
    pub fn for_run(mut self, run_id: Option<&str>, event_id: &str) -> AdapterCalls {
        self.run_id = run_id.map(str::to_string);
        self.event_id = Some(event_id.to_string());
        self
    }

    /// Calls of a run under a policy in shadow mode: every instance as it
    /// is loaded for reading only.
    pub fn shadowed(mut self) -> AdapterCalls {
        self.shadow = true;
        self
    }

    /// A fresh instance for every call.
    pub fn fresh_each_call(mut self) -> AdapterCalls {
        self.fresh = true;
        self
    }

    /// The digest of an adapter's component, for audit rows.
    pub fn adapter_sha(&self, adapter: &str) -> Option<String> {
        self.digests
            .get(adapter)
            .cloned()
            .or_else(|| self.host.adapter_sha(adapter))
    }

    /// One attempt of `call` on `adapter`. `record` is the record it is
    /// about (for one-call-per-record turns), if any; `retry`, whether an
    /// attempt of the same call came before.
    async fn attempt<T>(
        &mut self,
        adapter: &str,
        name: &'static str,
        record: Option<&str>,
        retry: bool,
        call: &mut impl AsyncFnMut(&mut Instance) -> CallResult<T>,
    ) -> Result<Result<T, Failure>, RunError> {
        if !self.instances.contains_key(adapter) {
            let loaded = match self.host.adapter(adapter, &mut self.store, self.shadow) {
                Ok(l) => l,
                Err(AdapterLoad::Store(e)) => return Err(e.into()),
                Err(AdapterLoad::Refused(e)) => {
                    return Ok(Err(Failure::Final(
                        Reason::CapabilityDenied,
                        format!("cannot load: {e}"),
                    )));
                }
            };
            self.digests
                .insert(adapter.to_string(), loaded.component_sha256().to_string());
            let started = Instant::now();
            let instance = match loaded.instantiate().await {
                Ok(i) => i,
                Err(e) => return Ok(Err(Failure::Transient(e.to_string()))),
            };
            self.host.took(
                Timed::Call {
                    adapter,
                    call: "instantiate",
                },
                started.elapsed(),
            );
            self.instances.insert(adapter.to_string(), instance);
        }
        let instance = self.instances.get_mut(adapter).expect("inserted above");
        // Held for the call only: a run waiting between retries or on
        // another adapter does not keep this one's room.
        let turn = match record {
            Some(record) => Some(
                self.host
                    .throttle
                    .turn(adapter, record, self.processes)
                    .await?,
            ),
            None => None,
        };
        let permit = match record {
            Some(_) => None,
            None => self.host.throttle.acquire(adapter).await,
        };
        // A write goes out only while this run's driver holds its lease
        // (after the waits above, and any pause before a retry).
        if name == APPLY
            && let (Some(lease), Some(run_id)) = (&self.lease, &self.run_id)
        {
            lease.keep_for_write(&mut self.store, run_id, retry)?;
        }
        let started = Instant::now();
        let span = tracing::info_span!("adapter call", adapter = %adapter, call = name);
        let result = tracing::Instrument::instrument(call(instance), span).await;
        drop((turn, permit));
        self.host.took(
            Timed::Call {
                adapter,
                call: name,
            },
            started.elapsed(),
        );
        let keep = matches!(result, Ok(Err(_)));
        let decisions = instance.take_decisions();
        self.store.record_run_decisions(
            &decisions,
            self.run_id.as_deref(),
            self.event_id.as_deref(),
        )?;
        let failure = match result {
            Ok(Ok(answer)) => {
                if self.fresh {
                    self.instances.remove(adapter);
                }
                return Ok(Ok(answer));
            }
            Ok(Err(err)) => classify(&err),
            Err(err @ CallError::NotExported { .. }) => {
                Failure::Final(Reason::OutOfScope, err.to_string())
            }
            Err(
                err @ (CallError::Oversize { .. }
                | CallError::Resources { .. }
                | CallError::Stopped { .. }),
            ) => {
                // The same call would answer (or hold) the same again: not
                // retried.
                Failure::Final(Reason::CapabilityDenied, err.to_string())
            }
            // A trapped or timed-out instance is finished; the next attempt
            // gets a fresh one.
            Err(err) => Failure::Transient(err.to_string()),
        };
        if self.fresh || !keep {
            self.instances.remove(adapter);
        }
        Ok(Err(failure))
    }

    /// Attempts up to the configured limit, pausing between them.
    async fn retrying<T>(
        &mut self,
        adapter: &str,
        name: &'static str,
        record: Option<&str>,
        mut call: impl AsyncFnMut(&mut Instance) -> CallResult<T>,
    ) -> Result<Result<T, Halt>, RunError> {
        let retry = self.host.retry;
        let mut last = String::new();
        for attempt in 1..=retry.attempts {
            let pause = retry.delay_before(attempt);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            match self
                .attempt(adapter, name, record, attempt > 1, &mut call)
                .await?
            {
                Ok(answer) => return Ok(Ok(answer)),
                Err(Failure::Final(reason, message)) => {
                    return Ok(Err(Halt::new(
                        reason,
                        format!("{adapter} {name}: {message}"),
                    )));
                }
                Err(Failure::Transient(message)) => {
                    tracing::warn!(adapter, call = name, attempt, %message, "transient failure");
                    last = message;
                }
            }
        }
        Ok(Err(Halt::new(
            Reason::RetriesExhausted,
            format!(
                "{adapter} {name} failed {} times; last: {last}",
                retry.attempts
            ),
        )))
    }

    pub async fn observe(
        &mut self,
        adapter: &str,
        record: &RecordRef,
    ) -> Result<Result<Observed, Halt>, RunError> {
        let key = self.host.throttle.record_key(record);
        self.retrying(adapter, "observe", Some(&key), async |i: &mut Instance| {
            i.observe(record).await
        })
        .await
    }

    /// Apply `action` with `key`; `person_resumed` says a person resumed
    /// the step after it failed (the adapter may ask).
    pub async fn apply(
        &mut self,
        adapter: &str,
        record: &RecordRef,
        action: &Action,
        key: &str,
        person_resumed: bool,
    ) -> Result<Result<Observed, Halt>, RunError> {
        let record_key = self.host.throttle.record_key(record);
        // Only the first try: a retry after it is no longer what the
        // person saw.
        let mut first = person_resumed;
        self.retrying(
            adapter,
            APPLY,
            Some(&record_key),
            async |i: &mut Instance| {
                let resumed = std::mem::take(&mut first);
                i.apply_as(record, action, key, resumed).await
            },
        )
        .await
    }

    pub async fn read_decision(
        &mut self,
        adapter: &str,
        record: &RecordRef,
    ) -> Result<Result<Decision, Halt>, RunError> {
        let key = self.host.throttle.record_key(record);
        self.retrying(
            adapter,
            "read-decision",
            Some(&key),
            async |i: &mut Instance| i.read_decision(record).await,
        )
        .await
    }

    pub async fn list_changes(
        &mut self,
        adapter: &str,
        cursor: &str,
        limit: u32,
    ) -> Result<Result<ChangePage, Halt>, RunError> {
        self.retrying(adapter, "list-changes", None, async |i: &mut Instance| {
            i.list_changes(cursor, limit).await
        })
        .await
    }

    /// One observe, not retried: what the adapter answered, as it did.
    pub async fn observe_once(
        &mut self,
        adapter: &str,
        record: &RecordRef,
    ) -> Result<Result<Observed, Failure>, RunError> {
        let key = self.host.throttle.record_key(record);
        self.attempt(
            adapter,
            "observe",
            Some(&key),
            false,
            &mut async |i: &mut Instance| i.observe(record).await,
        )
        .await
    }

    /// One apply, not retried.
    pub async fn apply_once(
        &mut self,
        adapter: &str,
        record: &RecordRef,
        action: &Action,
        key: &str,
    ) -> Result<Result<Observed, Failure>, RunError> {
        let record_key = self.host.throttle.record_key(record);
        self.attempt(
            adapter,
            APPLY,
            Some(&record_key),
            false,
            &mut async |i: &mut Instance| i.apply(record, action, key).await,
        )
        .await
    }
}

/// The call that writes to a target.
const APPLY: &str = "apply";
