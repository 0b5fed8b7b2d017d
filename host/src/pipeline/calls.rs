//! Calls from the stages to adapters: one instance per adapter per run,
//! capability decisions recorded against the run, failures sorted into
//! "try again" and "a person decides", and transient ones retried with a
//! bounded, doubling pause.

use super::Timed;
use super::driver::{Driver, Halt};
use crate::follow_up::Reason;
use crate::sandbox::{Action, AdapterError, CallError, Decision, Instance, Observed, RecordRef};
use std::collections::BTreeMap;
use std::time::Instant;

/// The run's live adapter instances, by instance name.
#[derive(Default)]
pub struct Calls {
    instances: BTreeMap<String, Instance>,
}

/// One request to an adapter.
#[derive(Debug, Clone)]
pub enum Call {
    Observe(RecordRef),
    Apply(RecordRef, Action, String),
    ReadDecision(RecordRef),
}

impl Call {
    /// The record it is about, as `system/kind/id`.
    fn record_key(&self) -> String {
        let (Call::Observe(r) | Call::Apply(r, ..) | Call::ReadDecision(r)) = self;
        format!("{}/{}/{}", r.system, r.kind, r.id)
    }

    fn name(&self) -> &'static str {
        match self {
            Call::Observe(_) => "observe",
            Call::Apply(..) => "apply",
            Call::ReadDecision(_) => "read-decision",
        }
    }
}

/// What an adapter answered.
#[derive(Debug, Clone)]
pub enum Answer {
    Observed(Observed),
    Decision(Decision),
}

/// Why a call did not answer.
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

impl Driver<'_> {
    /// The digest of an adapter's component, for audit rows.
    pub fn adapter_sha(&self, adapter: &str) -> Option<String> {
        self.engine
            .loaded
            .get(adapter)
            .map(|a| a.component_sha256().to_string())
    }

    /// One attempt.
    pub async fn call(&mut self, adapter: &str, call: &Call) -> Result<Answer, Failure> {
        if !self.calls.instances.contains_key(adapter) {
            let loaded = self.engine.adapter(adapter).map_err(|e| {
                Failure::Final(Reason::CapabilityDenied, format!("cannot load: {e}"))
            })?;
            let started = Instant::now();
            let instance = loaded
                .instantiate()
                .await
                .map_err(|e| Failure::Transient(e.to_string()))?;
            self.engine.took(
                Timed::Call {
                    adapter,
                    call: "instantiate",
                },
                started.elapsed(),
            );
            self.calls.instances.insert(adapter.to_string(), instance);
        }
        let instance = self
            .calls
            .instances
            .get_mut(adapter)
            .expect("inserted above");
        // Held for the call only: a run waiting between retries or on
        // another adapter does not keep this one's room.
        let permit = self.engine.throttle.turn(adapter, &call.record_key()).await;
        let started = Instant::now();
        let result: Result<Result<Answer, AdapterError>, CallError> = match call {
            Call::Observe(r) => instance.observe(r).await.map(|r| r.map(Answer::Observed)),
            Call::Apply(r, action, key) => instance
                .apply(r, action, key)
                .await
                .map(|r| r.map(Answer::Observed)),
            Call::ReadDecision(r) => instance
                .read_decision(r)
                .await
                .map(|r| r.map(Answer::Decision)),
        };
        drop(permit);
        self.engine.took(
            Timed::Call {
                adapter,
                call: call.name(),
            },
            started.elapsed(),
        );
        let decisions = instance.take_decisions();
        let run_id = self.stored.then_some(self.run.run_id.as_str());
        let _ =
            self.engine
                .store
                .record_run_decisions(&decisions, run_id, Some(&self.run.event_id));
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => Err(classify(&err)),
            Err(err @ CallError::NotExported { .. }) => {
                Err(Failure::Final(Reason::OutOfScope, err.to_string()))
            }
            Err(err @ CallError::Oversize { .. }) => {
                // The same call would answer the same again: not retried.
                self.calls.instances.remove(adapter);
                Err(Failure::Final(Reason::CapabilityDenied, err.to_string()))
            }
            Err(err) => {
                // A trapped or timed-out instance is finished; the next
                // attempt gets a fresh one.
                self.calls.instances.remove(adapter);
                Err(Failure::Transient(err.to_string()))
            }
        }
    }

    /// Attempts up to the configured limit, pausing between them.
    pub async fn call_retrying(&mut self, adapter: &str, call: &Call) -> Result<Answer, Halt> {
        let retry = self.engine.retry;
        let mut last = String::new();
        for attempt in 1..=retry.attempts {
            let pause = retry.delay_before(attempt);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            match self.call(adapter, call).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(reason, message)) => {
                    return Err(Halt::new(
                        reason,
                        format!("{adapter} {}: {message}", call.name()),
                    ));
                }
                Err(Failure::Transient(message)) => {
                    tracing::warn!(adapter, call = call.name(), attempt, %message, "transient failure");
                    last = message;
                }
            }
        }
        Err(Halt::new(
            Reason::RetriesExhausted,
            format!(
                "{adapter} {} failed {} times; last: {last}",
                call.name(),
                retry.attempts
            ),
        ))
    }

    pub async fn observe(&mut self, adapter: &str, record: &RecordRef) -> Result<Observed, Halt> {
        match self
            .call_retrying(adapter, &Call::Observe(record.clone()))
            .await?
        {
            Answer::Observed(o) => Ok(o),
            Answer::Decision(_) => unreachable!("observe answers with an observation"),
        }
    }

    pub async fn read_decision(
        &mut self,
        adapter: &str,
        record: &RecordRef,
    ) -> Result<Decision, Halt> {
        match self
            .call_retrying(adapter, &Call::ReadDecision(record.clone()))
            .await?
        {
            Answer::Decision(d) => Ok(d),
            Answer::Observed(_) => unreachable!("read-decision answers with a decision"),
        }
    }

    pub async fn apply(
        &mut self,
        adapter: &str,
        record: &RecordRef,
        action: Action,
        key: &str,
    ) -> Result<Observed, Halt> {
        match self
            .call_retrying(
                adapter,
                &Call::Apply(record.clone(), action, key.to_string()),
            )
            .await?
        {
            Answer::Observed(o) => Ok(o),
            Answer::Decision(_) => unreachable!("apply answers with an observation"),
        }
    }
}

/// What a record shows, in the terms conditions test.
pub fn view_of(o: &Observed) -> crate::policy::condition::View {
    crate::policy::condition::View {
        exists: o.exists,
        state: o.state.clone(),
        revision: o.revision.clone(),
        fields: o.fields.iter().cloned().collect(),
        links: o.links.clone(),
        applied_keys: o.applied_keys.clone(),
    }
}

/// A decision, in the terms conditions test.
pub fn view_of_decision(d: &Decision) -> crate::policy::condition::View {
    crate::policy::condition::View {
        exists: true,
        state: d.state.clone(),
        revision: d.revision.clone(),
        fields: d.fields.iter().cloned().collect(),
        links: d.links.clone(),
        applied_keys: Vec::new(),
    }
}
