//! CPU and memory limits: an epoch deadline per call, and a resource limiter
//! per store that refuses growth past the granted memory.
//!
//! Exceeding a limit traps the instance (it cannot be trusted to continue);
//! the host classifies the trap and records the denial. A trapped instance
//! is dropped, never called again.

use super::decision::{DecisionLog, Surface};
use wasmtime::ResourceLimiter;

/// The engine's epoch advances this often; call deadlines are counted in
/// these ticks.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Epoch ticks for a call time limit (at least one).
pub fn deadline_ticks(call_timeout_ms: u64) -> u64 {
    (call_timeout_ms / EPOCH_TICK.as_millis() as u64).max(1)
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
        self.log.deny(
            Surface::Memory,
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
