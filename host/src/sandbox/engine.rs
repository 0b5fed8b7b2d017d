//! The wasmtime engine: configuration, the epoch ticker that enforces call
//! deadlines, and the on-disk cache of compiled components keyed by digest.

use super::limits::EPOCH_TICK;
use crate::config::HostCeiling;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Instances that can be alive at once (each run takes fresh ones).
pub const POOL_INSTANCES: u32 = 128;

/// Bytes of each linear memory reset in place (only the pages an instance
/// touched, where the kernel can say which) instead of returned to the
/// kernel when an instance ends: the next instance in that slot starts with
/// zeroed, already-mapped pages instead of faulting each one in again.
const KEEP_RESIDENT: usize = 2 * 1024 * 1024;

/// The engine every adapter runs on.
pub fn new_engine(ceiling: &HostCeiling) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    // Deadlines: the ticker advances the epoch; each call sets its deadline.
    config.epoch_interruption(true);
    // The component-model async ABI costs 3-4x per call and adapters do not
    // use it; host calls are still async (wasi-http awaits the network).
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
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

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Loaded,
    Compiled,
}

/// Compiled components on disk, one file per component digest and engine.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<ArtifactCache> {
        std::fs::create_dir_all(dir)?;
        restrict_to_owner(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path_for(&self, component_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{component_sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component: from the cache when present, else compiled
    /// now and stored (atomically) for next time.
    pub fn get(
        &self,
        engine: &Engine,
        component_sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(component_sha256);
        if path.is_file() {
            // SAFETY: deserializing runs native code produced by
            // `precompile_component`. Only this cache writes these files, in
            // a directory restricted to the owner, named by the digest of the
            // component they were compiled from and by the engine's
            // compatibility hash. A file that does not load is recompiled.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(c) => return Ok((c, CacheOutcome::Loaded)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "recompiling a cached artifact that does not load")
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        // Unique per write: threads of one process may compile the same
        // component at once, and each must rename its own file into place.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)?;
        #[allow(unsafe_code)]
        // SAFETY: the bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }
}

#[cfg(unix)]
fn restrict_to_owner(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_to_owner(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
