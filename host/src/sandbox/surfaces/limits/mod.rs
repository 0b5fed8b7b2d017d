//! The limits: `[limits]` of a manifest (memory and time per call),
//! capped by the ceiling; enforced by an epoch deadline per call (CPU) and a
//! resource limiter per store that refuses growth past the granted memory.
//!
//! Also bounded: the host resources an instance holds at once (open files,
//! streams, sockets, HTTP requests), each of which lives in the host
//! process, outside the instance's memory.
//!
//! Exceeding a limit traps the instance (it cannot be trusted to continue);
//! the host classifies the trap and records the denial. A trapped instance
//! is dropped, never called again.

use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::surface::{Change, SurfaceId};
use serde::{Deserialize, Serialize};
use wasmtime::ResourceLimiter;
use wasmtime::component::{ResourceTable, ResourceTableError};

/// CPU: the time a call may run, spent running its own code.
pub const CPU: SurfaceId = SurfaceId {
    name: "cpu",
    fix: "raise [limits] call-timeout-ms (and the host ceiling) if the work is legitimate",
};

/// Time: the time a call may run, spent waiting for what it asked of the
/// host (a server's answer, a connection): the fault is most likely the
/// system it waited on, not the adapter.
pub const WAITING: SurfaceId = SurfaceId {
    name: "time",
    fix: "the system the adapter waited on did not answer within the call's limit: look at it \
          (raise [limits] call-timeout-ms only if it is slow by nature)",
};

/// Memory: how far an instance's memory may grow; also what a result may
/// weigh as it is lifted.
pub const MEMORY: SurfaceId = SurfaceId {
    name: "memory",
    fix: "raise [limits] memory-mib (and the host ceiling) if the work is legitimate",
};

/// Host resources: what an instance may hold open at once.
pub const RESOURCES: SurfaceId = SurfaceId {
    name: "resources",
    fix: "drop files, streams, sockets and requests when done with them: an adapter needs a few at a time",
};

/// The most host resources (open files and directories, streams, sockets,
/// HTTP requests and responses, pollables) one instance may hold at once.
/// Each open file or socket is a descriptor of the host process, shared
/// with the store and every other instance: one instance holding thousands
/// would leave none for the rest. An adapter's call holds a few at a time
/// (an HTTP exchange about a dozen).
pub const MOST_HOST_RESOURCES: usize = 256;

/// The table an instance's host resources live in, holding at most
/// [`MOST_HOST_RESOURCES`] at once: one more is refused, and wasmtime-wasi
/// traps the call.
pub fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MOST_HOST_RESOURCES);
    table
}

/// Whether a trapped call was stopped by a full resource table.
pub fn ran_out_of_resources(trap: &wasmtime::Error) -> bool {
    matches!(
        trap.downcast_ref::<ResourceTableError>(),
        Some(ResourceTableError::Full)
    )
}

/// Default memory limit when the manifest sets none.
pub const DEFAULT_MEMORY_MIB: u32 = 32;
/// Default per-call time limit when the manifest sets none.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mib: u32,
    pub call_timeout_ms: u64,
}

/// `[limits]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLimits {
    memory_mib: Option<u32>,
    call_timeout_ms: Option<u64>,
}

impl RawLimits {
    pub fn parse(self) -> Result<Limits, String> {
        let limits = Limits {
            memory_mib: self.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
            call_timeout_ms: self.call_timeout_ms.unwrap_or(DEFAULT_CALL_TIMEOUT_MS),
        };
        if limits.memory_mib == 0 || limits.call_timeout_ms == 0 {
            return Err("limits: memory-mib and call-timeout-ms must be above 0".into());
        }
        Ok(limits)
    }
}

impl Limits {
    /// Every difference between approved and declared limits.
    pub fn compare(approved: &Limits, declared: &Limits, out: &mut Vec<Change>) {
        change(
            "memory",
            "MiB",
            declared.memory_mib.into(),
            approved.memory_mib.into(),
            out,
        );
        change(
            "call timeout",
            "ms",
            declared.call_timeout_ms,
            approved.call_timeout_ms,
            out,
        );
    }

    /// The least of declared, approved and the ceiling.
    pub fn intersect(declared: &Limits, approved: &Limits, ceiling: &HostCeiling) -> Limits {
        Limits {
            memory_mib: declared
                .memory_mib
                .min(approved.memory_mib)
                .min(ceiling.max_memory_mib),
            call_timeout_ms: declared
                .call_timeout_ms
                .min(approved.call_timeout_ms)
                .min(ceiling.max_call_timeout_ms),
        }
    }

    /// The reviewer's line.
    pub fn line(&self) -> String {
        format!(
            "memory {} MiB, {} ms per call",
            self.memory_mib, self.call_timeout_ms
        )
    }
}

fn change(what: &str, unit: &str, declared: u64, approved: u64, out: &mut Vec<Change>) {
    let text = format!("{what} {declared} {unit} (approved: {approved} {unit})");
    match declared.cmp(&approved) {
        std::cmp::Ordering::Greater => out.push(Change::Widened(text)),
        std::cmp::Ordering::Less => out.push(Change::Narrowed(text)),
        std::cmp::Ordering::Equal => {}
    }
}

/// The engine's epoch advances this often: guest code still running at a
/// tick is asked whether its call is over time.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The time limit of the call an instance is in. At every epoch tick that
/// finds guest code running, the call traps if it ran past its limit and
/// otherwise yields its thread to the other tasks on it: runs share their
/// threads, and one adapter busy in its own code (a loop, a large hash)
/// must not stall the runs beside it until its call ends.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    started: std::time::Instant,
    limit: std::time::Duration,
}

impl CallClock {
    /// A call of at most `limit_ms`, starting now.
    pub fn start(limit_ms: u64) -> CallClock {
        CallClock {
            started: std::time::Instant::now(),
            limit: std::time::Duration::from_millis(limit_ms),
        }
    }

    /// What to do at an epoch tick: trap once past the limit, else yield
    /// and look again at the next tick.
    pub fn at_tick(&self) -> wasmtime::UpdateDeadline {
        if self.started.elapsed() >= self.limit {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        wasmtime::UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
    }
}

/// Refuses linear memory and table growth past the grant.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    log: DecisionLog,
    /// Set when a growth was refused: the trap that follows is ours.
    pub exceeded: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(memory_mib: u32, log: DecisionLog) -> Self {
        MemoryLimiter {
            max_bytes: memory_mib as usize * 1024 * 1024,
            log,
            exceeded: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.max_bytes {
            return Ok(true);
        }
        self.exceeded = Some(desired);
        self.log.deny_call(
            MEMORY,
            format!(
                "grow linear memory to {} MiB",
                desired.div_ceil(1024 * 1024)
            ),
            format!(
                "over the granted {} MiB (limits.memory-mib)",
                self.max_bytes / (1024 * 1024)
            ),
        );
        // An error here traps the guest instead of letting it see a failed
        // grow: Rust guests abort on allocation failure anyway, and a trap
        // names the cause.
        Err(wasmtime::format_err!(
            "memory limit exceeded: the adapter asked for {} bytes, granted {}",
            desired,
            self.max_bytes
        ))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a legitimate adapter needs few.
        Ok(desired <= 100_000)
    }
}
