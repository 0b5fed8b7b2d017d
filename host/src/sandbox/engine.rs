//! The wasmtime engine: configuration, and the epoch ticker that enforces
//! call deadlines. (Compiled components are cached by [`super::artifacts`].)

use super::ceiling::HostCeiling;
use super::surfaces::limits::EPOCH_TICK;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Instances that can be alive at once by default (each run takes fresh
/// ones); a service sizes its pool by the runs it drives at once.
pub const POOL_INSTANCES: u32 = 128;

/// The most adapter instances one engine's pool may have room for. The pool
/// reserves the address space of every instance up front, about 8 GiB each
/// (two memory slots of 4 GiB and their guards, so that the compiled code
/// needs no bounds checks), and a process can reserve at most 128 TiB, less
/// whatever else it maps: measured here, room for 9,048 instances was made
/// and for 12,048 refused.
pub const MOST_INSTANCES: usize = 9216;

/// Room for `runs` runs in flight, each holding an instance of each of
/// `adapters` adapters, and for a service's other users (intake, the API,
/// delivery, reconciliation).
pub fn room_for_runs(runs: usize, adapters: usize) -> usize {
    runs.saturating_add(8)
        .saturating_mul(adapters.max(1))
        .max(POOL_INSTANCES as usize)
}

/// Bytes of each linear memory reset in place (only the pages an instance
/// touched, where the kernel can say which) instead of returned to the
/// kernel when an instance ends: the next instance in that slot starts with
/// zeroed, already-mapped pages instead of faulting each one in again.
const KEEP_RESIDENT: usize = 2 * 1024 * 1024;

/// The engine every adapter runs on, with room for `instances` adapter
/// instances alive at once.
pub fn new_engine(ceiling: &HostCeiling, instances: u32) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    // Deadlines: the ticker advances the epoch; each call sets its deadline.
    config.epoch_interruption(true);
    // The component-model async ABI costs 3-4x per call and adapters do not
    // use it; host calls are still async (wasi-http awaits the network).
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_core_instances_per_component(32)
        .max_memory_size(ceiling.max_memory_mib as usize * 1024 * 1024)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("handoff-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub use super::artifacts::{ArtifactCache, CacheOutcome};
