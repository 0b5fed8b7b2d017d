//! Capability decisions: one record per check at a choke point, allowed or
//! denied, so a reviewer can audit which grants were used and which refused.
//!
//! A call's decisions are kept one by one up to [`MOST_DECISIONS_PER_CALL`];
//! past it they are counted, and told as one more decision per surface and
//! verdict when the call's decisions are taken. A guest asking thousands of
//! times in one call (a refused request in a loop) leaves a bounded trace
//! in the store and the log, and the count says it happened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use super::surface::SurfaceId;

/// The action check: `apply` with an action outside the approved set.
pub const ACTION: SurfaceId = SurfaceId {
    name: "action",
    fix: "add the action to adapter.actions, then approve the adapter again",
};

/// A load refused.
pub const LOAD: SurfaceId = SurfaceId {
    name: "load",
    fix: "see `handoff adapter inspect` for the package",
};

pub use crate::model::Verdict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityDecision {
    pub at: String,
    pub adapter: String,
    pub component_sha256: String,
    pub surface: SurfaceId,
    /// What was asked for: `GET http://127.0.0.1:3000/issues/1.json`,
    /// `tcp 127.0.0.1:4222`, `set-state`...
    pub target: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// Who the decisions are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterIdent {
    /// The operator's name for the instance.
    pub instance: String,
    pub component_sha256: String,
}

/// The most decisions kept one by one between two takings (one call's, or
/// an instantiation's).
pub const MOST_DECISIONS_PER_CALL: usize = 100;

/// Decisions collected during one instance's life. Shared with the hooks,
/// which may run inside futures that outlive a borrow of the store.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    ident: Arc<AdapterIdent>,
    entries: Arc<Mutex<Kept>>,
}

/// What was decided since the decisions were last taken.
#[derive(Debug, Default)]
struct Kept {
    one_by_one: Vec<CapabilityDecision>,
    /// Past the bound: how many more, by surface and verdict.
    more: BTreeMap<(&'static str, Verdict), (SurfaceId, u64)>,
}

impl DecisionLog {
    pub fn new(ident: Arc<AdapterIdent>) -> Self {
        DecisionLog {
            ident,
            entries: Arc::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn ident(&self) -> &AdapterIdent {
        &self.ident
    }

    /// A decision, kept one by one while the call has made fewer than
    /// [`MOST_DECISIONS_PER_CALL`], else counted.
    pub fn record(&self, surface: SurfaceId, target: String, verdict: Verdict, reason: String) {
        {
            let mut kept = self.kept();
            if kept.one_by_one.len() >= MOST_DECISIONS_PER_CALL {
                kept.more
                    .entry((surface.name, verdict))
                    .or_insert((surface, 0))
                    .1 += 1;
                return;
            }
        }
        self.keep(surface, target, verdict, reason);
    }

    /// A decision kept one by one, logged when it is a denial.
    fn keep(&self, surface: SurfaceId, target: String, verdict: Verdict, reason: String) {
        // A target (a URL, a subject) can come from the guest: what is
        // logged and kept of it is bounded.
        let target = crate::kept::render(&target, crate::kept::KEPT_STRING_BYTES);
        let reason = crate::kept::render(&reason, crate::kept::KEPT_STRING_BYTES);
        if verdict == Verdict::Denied {
            tracing::warn!(
                adapter = %self.ident.instance,
                surface = surface.name,
                %target,
                %reason,
                fix = surface.fix,
                "capability denied"
            );
        }
        let decision = CapabilityDecision {
            at: crate::model::time::now_rfc3339(),
            adapter: self.ident.instance.clone(),
            component_sha256: self.ident.component_sha256.clone(),
            surface,
            target,
            verdict,
            reason,
        };
        self.kept().one_by_one.push(decision);
    }

    pub fn allow(&self, surface: SurfaceId, target: String, reason: String) {
        self.record(surface, target, Verdict::Allowed, reason)
    }

    pub fn deny(&self, surface: SurfaceId, target: String, reason: String) {
        self.record(surface, target, Verdict::Denied, reason)
    }

    /// A denial that ends the call (a limit passed, an action refused):
    /// there is at most one a call, and it is always kept one by one.
    pub fn deny_call(&self, surface: SurfaceId, target: String, reason: String) {
        self.keep(surface, target, Verdict::Denied, reason)
    }

    /// Take every decision recorded so far: those kept one by one, then one
    /// for each surface and verdict counted past the bound.
    pub fn drain(&self) -> Vec<CapabilityDecision> {
        let Kept {
            mut one_by_one,
            more,
        } = std::mem::take(&mut *self.kept());
        for ((_, verdict), (surface, count)) in more {
            let reason = format!(
                "{count} more {verdict} {} decisions in this call were counted, not kept one by \
                 one (at most {MOST_DECISIONS_PER_CALL} a call are)",
                surface.name
            );
            if verdict == Verdict::Denied {
                tracing::warn!(
                    adapter = %self.ident.instance,
                    surface = surface.name,
                    count,
                    fix = surface.fix,
                    "capability denied, many more times"
                );
            }
            one_by_one.push(CapabilityDecision {
                at: crate::model::time::now_rfc3339(),
                adapter: self.ident.instance.clone(),
                component_sha256: self.ident.component_sha256.clone(),
                surface,
                target: format!("({count} more)"),
                verdict,
                reason,
            });
        }
        one_by_one
    }
}
