//! Capability decisions: one record per check at a choke point, allowed or
//! denied, so a reviewer can audit which grants were used and which refused.

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

/// Decisions collected during one instance's life. Shared with the hooks,
/// which may run inside futures that outlive a borrow of the store.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    ident: Arc<AdapterIdent>,
    entries: Arc<Mutex<Vec<CapabilityDecision>>>,
}

impl DecisionLog {
    pub fn new(ident: Arc<AdapterIdent>) -> Self {
        DecisionLog {
            ident,
            entries: Arc::default(),
        }
    }

    pub fn ident(&self) -> &AdapterIdent {
        &self.ident
    }

    pub fn record(&self, surface: SurfaceId, target: String, verdict: Verdict, reason: String) {
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
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(decision);
    }

    pub fn allow(&self, surface: SurfaceId, target: String, reason: String) {
        self.record(surface, target, Verdict::Allowed, reason)
    }

    pub fn deny(&self, surface: SurfaceId, target: String, reason: String) {
        self.record(surface, target, Verdict::Denied, reason)
    }

    /// Take every decision recorded so far.
    pub fn drain(&self) -> Vec<CapabilityDecision> {
        std::mem::take(
            &mut *self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}
