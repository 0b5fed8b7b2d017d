//! Capability decisions: one record per check at a choke point, allowed or
//! denied, so a reviewer can audit which grants were used and which refused.

use std::sync::{Arc, Mutex};

/// The surface a decision was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Http,
    Files,
    Sockets,
    Nats,
    Smtp,
    Cpu,
    Memory,
    Action,
    Load,
}

impl Surface {
    pub fn name(self) -> &'static str {
        match self {
            Surface::Http => "http",
            Surface::Files => "files",
            Surface::Sockets => "sockets",
            Surface::Nats => "nats",
            Surface::Smtp => "smtp",
            Surface::Cpu => "cpu",
            Surface::Memory => "memory",
            Surface::Action => "action",
            Surface::Load => "load",
        }
    }

    /// What an operator does when a denial on this surface was legitimate.
    pub fn fix(self) -> &'static str {
        match self {
            Surface::Http => {
                "if the adapter should reach it, declare the origin and method under \
                 [[capabilities.http]] in its adapter.toml, then `handoff adapter approve` it again"
            }
            Surface::Files => {
                "if the adapter should see it, declare the directory under [[capabilities.files]] \
                 and bind it in handoff.toml [adapters.NAME.directories]"
            }
            Surface::Sockets => {
                "if the adapter should connect there, declare the address under \
                 [[capabilities.sockets]], then approve it again"
            }
            Surface::Nats => {
                "if the adapter should reach it, declare the server with the subject pattern or \
                 bucket under [[capabilities.nats]], then approve it again"
            }
            Surface::Smtp => {
                "if the adapter should send it, declare the server, sender and recipient domain \
                 under [[capabilities.smtp]], then approve it again"
            }
            Surface::Cpu => {
                "raise [limits] call-timeout-ms (and the host ceiling) if the work is legitimate"
            }
            Surface::Memory => {
                "raise [limits] memory-mib (and the host ceiling) if the work is legitimate"
            }
            Surface::Action => "add the action to adapter.actions, then approve the adapter again",
            Surface::Load => "see `handoff adapter inspect` for the package",
        }
    }
}

pub use crate::model::Verdict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityDecision {
    pub at: String,
    pub adapter: String,
    pub component_sha256: String,
    pub surface: Surface,
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

    pub fn record(&self, surface: Surface, target: String, verdict: Verdict, reason: String) {
        // A target (a URL, a subject) can come from the guest: what is
        // logged and kept of it is bounded.
        let target = crate::kept::render(&target, crate::kept::KEPT_STRING_BYTES);
        let reason = crate::kept::render(&reason, crate::kept::KEPT_STRING_BYTES);
        if verdict == Verdict::Denied {
            tracing::warn!(
                adapter = %self.ident.instance,
                surface = surface.name(),
                %target,
                %reason,
                fix = surface.fix(),
                "capability denied"
            );
        }
        let decision = CapabilityDecision {
            at: crate::store::now_rfc3339(),
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

    pub fn allow(&self, surface: Surface, target: String, reason: String) {
        self.record(surface, target, Verdict::Allowed, reason)
    }

    pub fn deny(&self, surface: Surface, target: String, reason: String) {
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
