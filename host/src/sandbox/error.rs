//! Why an adapter was not loaded, and why a call produced no result: each
//! names the adapter and what to do.

use super::bounds::Oversize;
use super::decision::{self, CapabilityDecision, LOAD};
use super::package;
use super::surface::Change;
use thiserror::Error;

/// Why an adapter was not loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Package(#[from] package::PackageError),
    #[error("adapter {adapter}: {path} is not a valid component: {message}")]
    Compile {
        adapter: String,
        path: String,
        message: String,
    },
    #[error(
        "adapter {adapter}: component {digest} is not approved.\n  Review it: handoff adapter inspect {package}\n  Approve it: handoff adapter approve {package} --by NAME"
    )]
    NotApproved {
        adapter: String,
        digest: String,
        package: String,
    },
    #[error(
        "adapter {adapter}: its approval was revoked by {by} at {at}; approve the package again to load it"
    )]
    Revoked {
        adapter: String,
        by: String,
        at: String,
    },
    #[error(
        "adapter {adapter}: the component changed since it was approved (approved {approved}, found {actual}).\n  Review it: handoff adapter inspect {package}\n  Approve it again: handoff adapter approve {package} --by NAME"
    )]
    ComponentChanged {
        adapter: String,
        approved: String,
        actual: String,
        package: String,
    },
    #[error(
        "adapter {adapter}: the manifest asks for more than was approved:\n{}\n  Review it: handoff adapter inspect {package}\n  Approve it again: handoff adapter approve {package} --by NAME",
        changes.iter().map(|c| format!("    {c}")).collect::<Vec<_>>().join("\n")
    )]
    Widened {
        adapter: String,
        changes: Vec<Change>,
        package: String,
    },
    #[error(
        "adapter {adapter}: the component imports what its manifest does not declare:\n{}",
        imports.iter().map(|(n, why)| format!("    {n}: {why}")).collect::<Vec<_>>().join("\n")
    )]
    UncoveredImports {
        adapter: String,
        imports: Vec<(String, String)>,
    },
    #[error(
        "adapter {adapter}: its manifest says world {world}, but the component does not export {}",
        missing.join(", ")
    )]
    MissingExports {
        adapter: String,
        world: String,
        missing: Vec<String>,
    },
    #[error("adapter instance {instance}: {problem}")]
    Binding { instance: String, problem: String },
    #[error("cannot prepare the sandbox: {0}")]
    Host(String),
}

impl LoadError {
    /// The refusal as a capability decision, for the record.
    pub fn decision(&self, instance: &str, component_sha256: &str) -> CapabilityDecision {
        CapabilityDecision {
            at: crate::model::time::now_rfc3339(),
            adapter: instance.to_string(),
            component_sha256: component_sha256.to_string(),
            surface: LOAD,
            target: "load".into(),
            verdict: decision::Verdict::Denied,
            reason: self.to_string(),
        }
    }
}

/// Why a call produced no adapter result.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CallError {
    #[error(
        "adapter {adapter}: the call ran past its {ms} ms limit {} and was stopped (limits.call-timeout-ms)",
        if *waiting { "waiting for an answer (from a server it reached, or the host)" } else { "running its own code" }
    )]
    Timeout {
        adapter: String,
        ms: u64,
        /// Parked in a host call (a request, a connection) rather than
        /// running guest code when the limit came.
        waiting: bool,
    },
    #[error(
        "adapter {adapter}: memory limit exceeded (asked for {asked_mib} MiB, granted {granted_mib} MiB; limits.memory-mib)"
    )]
    Memory {
        adapter: String,
        asked_mib: usize,
        granted_mib: u32,
    },
    #[error(
        "adapter {adapter}: held more than {most} host resources at once (open files, streams, sockets, requests) and was stopped"
    )]
    Resources { adapter: String, most: usize },
    /// A surface's gate stopped the call at a bound it keeps per call
    /// (what the call wrote into its directories, say).
    #[error("adapter {adapter}: {why} and was stopped")]
    Stopped {
        adapter: String,
        surface: &'static str,
        why: String,
    },
    #[error("adapter {adapter}: trapped: {message}")]
    Trap { adapter: String, message: String },
    #[error(
        "adapter {adapter}: this instance trapped earlier and cannot be called again; instantiate a fresh one"
    )]
    Dead { adapter: String },
    #[error("adapter {adapter}: does not export the {interface} interface (world {world})")]
    NotExported {
        adapter: String,
        interface: &'static str,
        world: String,
    },
    #[error("adapter {adapter}: cannot instantiate: {message}")]
    Instantiate { adapter: String, message: String },
    #[error("adapter {adapter}: its {call} result was refused unread: {over}")]
    Oversize {
        adapter: String,
        call: &'static str,
        over: Oversize,
    },
}
