//! Files: the only files an adapter sees are the directories its grant
//! names, preopened at `/<name>` with the granted mode, bound by the operator
//! to real directories. Nothing else is mounted, so `..`, absolute paths and
//! symlinks pointing out resolve to nothing (enforced by the preopen's
//! capability-based resolution); writes to a read-only preopen fail.
//!
//! A declared directory the operator did not bind is not mounted.

use super::manifest::{Capabilities, FileMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// A directory to preopen for each instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub name: String,
    pub host_path: PathBuf,
    pub mode: FileMode,
}

impl Mount {
    pub fn guest_path(&self) -> String {
        format!("/{}", self.name)
    }
}

/// The mounts of an effective grant, and the declared names left unbound.
pub fn mounts(
    caps: &Capabilities,
    bindings: &BTreeMap<String, PathBuf>,
) -> (Vec<Mount>, Vec<String>) {
    let mut mounts = Vec::new();
    let mut unbound = Vec::new();
    for (name, mode) in &caps.files {
        match bindings.get(name) {
            Some(path) => mounts.push(Mount {
                name: name.clone(),
                host_path: path.clone(),
                mode: *mode,
            }),
            None => unbound.push(name.clone()),
        }
    }
    (mounts, unbound)
}

/// Check that every bound directory exists, before any instance needs it.
pub fn check_mounts(mounts: &[Mount]) -> Result<(), String> {
    for m in mounts {
        if !Path::new(&m.host_path).is_dir() {
            return Err(format!(
                "directory {:?} is bound to {}, which is not a directory",
                m.name,
                m.host_path.display()
            ));
        }
    }
    Ok(())
}

/// Preopen the mounts in a WASI context.
pub fn preopen(builder: &mut WasiCtxBuilder, mounts: &[Mount]) -> wasmtime::Result<()> {
    // File operations run on the calling thread instead of a round trip
    // through tokio's blocking pool for each open, read and write: a local
    // file operation is shorter than the thread hand-off (measured: the
    // pipeline benchmark spent most of its time waking pool threads). It
    // must be set before the directories are preopened, which capture it.
    builder.allow_blocking_current_thread(true);
    for m in mounts {
        let perms = match m.mode {
            FileMode::ReadOnly => FsPerms::ReadOnly,
            FileMode::ReadWrite => FsPerms::ReadWrite,
        };
        builder.preopened_dir(&m.host_path, m.guest_path(), perms)?;
    }
    Ok(())
}
