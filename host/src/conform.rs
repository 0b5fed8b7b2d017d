//! Conformance of a target adapter to what the pipeline relies on
//! (`handoff adapter conform`): an integration author points a loaded
//! instance at a scratch record of a real system, and each promise of the
//! contract is tried there, every call on a fresh instance, as a run after
//! a restart would make it:
//!
//! 1. `observe` answers;
//! 2. `apply` with a new idempotency key answers;
//! 3. a later `observe` shows that key among the applied keys: this is how
//!    a run killed between a write and its record recognises its own write
//!    instead of making it again;
//! 4. `apply` again with the same key writes nothing: the key shows once,
//!    and the revision (when the adapter reports one) does not move.
//!
//! It writes to the target (once, if the adapter conforms): point it at a
//! record made for the purpose. The calls go through the adapter-call
//! service like a run's, so what they reached for is audited the same way.

use crate::pipeline::RunError;
use crate::pipeline::calls::{AdapterCalls, Failure};
use crate::sandbox::{Action, Observed, RecordRef};
use serde::Serialize;

/// One promise, and whether the adapter kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub promise: &'static str,
    pub kept: bool,
    pub detail: String,
}

/// What a conformance run found.
pub struct Conformance {
    pub checks: Vec<Check>,
}

impl Conformance {
    pub fn conforms(&self) -> bool {
        self.checks.iter().all(|c| c.kept)
    }
}

/// Try the contract on `record` of `adapter` with `action` and the new
/// key `key`, each call on a fresh instance (`calls` made so). Stops at the
/// first promise not kept: the later ones build on it.
pub async fn conform(
    calls: AdapterCalls,
    adapter: &str,
    record: &RecordRef,
    action: &Action,
    key: &str,
) -> Result<Conformance, RunError> {
    let mut run = Run {
        calls,
        adapter,
        checks: Vec::new(),
    };
    match run.promises(record, action, key).await {
        Ok(()) | Err(Stop::Broken) => Ok(Conformance { checks: run.checks }),
        Err(Stop::Store(e)) => Err(e),
    }
}

struct Run<'a> {
    calls: AdapterCalls,
    adapter: &'a str,
    checks: Vec<Check>,
}

/// Why the run stops: a promise not kept, or a store that could not
/// record what the calls did.
enum Stop {
    Broken,
    Store(RunError),
}

impl Run<'_> {
    async fn promises(
        &mut self,
        record: &RecordRef,
        action: &Action,
        key: &str,
    ) -> Result<(), Stop> {
        let before = self.observe("observe answers", record).await?;
        self.kept("observe answers", format!("before: {}", shown(&before)));

        let answer = self
            .apply("apply with a new key answers", record, action, key)
            .await?;
        self.kept(
            "apply with a new key answers",
            format!("{key}: {}", shown(&answer)),
        );

        let promise = "a later observe shows the key";
        let after = self.observe(promise, record).await?;
        let times = after.applied_keys.iter().filter(|k| *k == key).count();
        if times == 0 {
            return Err(self.broken(
                promise,
                format!(
                    "{key} is not among the applied keys ({}): a run stopped between this write \
                     and its record would write again when it resumes; report the keys of the \
                     writes made to the record in observe's applied-keys",
                    shown(&after)
                ),
            ));
        }
        self.kept(promise, shown(&after));

        let promise = "a repeated apply with the same key writes nothing";
        self.apply(promise, record, action, key).await?;
        let again = self.observe(promise, record).await?;
        let times = again.applied_keys.iter().filter(|k| *k == key).count();
        let moved = match (&after.revision, &again.revision) {
            (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
            _ => None,
        };
        if times != 1 || moved.is_some() {
            let mut what = Vec::new();
            if times != 1 {
                what.push(format!("the key shows {times} times"));
            }
            if let Some((a, b)) = moved {
                what.push(format!("the revision moved from {a} to {b}"));
            }
            return Err(self.broken(
                promise,
                format!(
                    "{}: the same write was made twice; apply must answer without writing when \
                     the record already carries its key",
                    what.join(" and ")
                ),
            ));
        }
        self.kept(promise, shown(&again));
        Ok(())
    }

    fn kept(&mut self, promise: &'static str, detail: String) {
        self.checks.push(Check {
            promise,
            kept: true,
            detail,
        });
    }

    fn broken(&mut self, promise: &'static str, detail: String) -> Stop {
        self.checks.push(Check {
            promise,
            kept: false,
            detail,
        });
        Stop::Broken
    }

    async fn observe(
        &mut self,
        promise: &'static str,
        record: &RecordRef,
    ) -> Result<Observed, Stop> {
        self.call(promise, record, None).await
    }

    async fn apply(
        &mut self,
        promise: &'static str,
        record: &RecordRef,
        action: &Action,
        key: &str,
    ) -> Result<Observed, Stop> {
        self.call(promise, record, Some((action, key))).await
    }

    /// One observe (or apply, with an action and key) on a fresh instance:
    /// nothing kept in memory carries over, as after a restart.
    async fn call(
        &mut self,
        promise: &'static str,
        record: &RecordRef,
        apply: Option<(&Action, &str)>,
    ) -> Result<Observed, Stop> {
        let (name, result) = match apply {
            None => (
                "observe",
                self.calls.observe_once(self.adapter, record).await,
            ),
            Some((action, key)) => (
                "apply",
                self.calls
                    .apply_once(self.adapter, record, action, key)
                    .await,
            ),
        };
        match result.map_err(Stop::Store)? {
            Ok(observed) => Ok(observed),
            Err(Failure::Final(reason, e)) => {
                Err(self.broken(promise, format!("{name} answered {reason}: {e}")))
            }
            Err(Failure::Transient(e)) => Err(self.broken(promise, format!("{name} failed: {e}"))),
        }
    }
}

/// A record as an observation shows it, in a few words.
fn shown(o: &Observed) -> String {
    if !o.exists {
        return "no such record".into();
    }
    let revision = o
        .revision
        .as_deref()
        .map(|r| format!(", revision {r}"))
        .unwrap_or_default();
    format!(
        "state {:?}{revision}, {} applied keys",
        o.state,
        o.applied_keys.len()
    )
}
