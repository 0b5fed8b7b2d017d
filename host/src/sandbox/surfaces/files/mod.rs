//! The files surface: `[[capabilities.files]]` grants directories by
//! logical name and mode. The operator binds each to a real directory
//! (`directories` in `[adapters.X]`), and may mount some read-only
//! (`read-only`). The only files an adapter sees are those directories,
//! preopened at `/<name>` with the granted mode, so `..`, absolute paths and
//! symlinks pointing out resolve to nothing (enforced by the preopen's
//! capability-based resolution), and writes to a read-only preopen fail. A
//! declared directory the operator did not bind is not mounted. What one
//! call may write and make there is bounded ([`writes`]).

#[cfg(test)]
mod tests;
pub mod writes;

use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::manifest::MAX_NAME_CHARS;
use crate::sandbox::surface::{Change, HasGate, LoadContext, Surface, SurfaceId};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The files surface.
pub struct Files;

crate::closed_enum! {
    /// How a granted directory is mounted.
    pub enum FileMode {
        ReadOnly = "read-only",
        ReadWrite = "read-write",
    }
}

/// The files grant: directory name → mode.
pub type FileGrants = BTreeMap<String, FileMode>;

/// One `[[capabilities.files]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFiles {
    name: String,
    mode: String,
}

/// `directories` and `read-only` of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesBinding {
    /// Logical directory name (as declared) → real directory.
    #[serde(default)]
    pub directories: BTreeMap<String, PathBuf>,
    /// Granted directories mounted read-only for this instance, whatever
    /// mode the grant allows.
    #[serde(default)]
    pub read_only: BTreeSet<String>,
}

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

/// The mounts of a loaded instance.
#[derive(Debug, Clone, Default)]
pub struct Mounts(pub Vec<Mount>);

impl Surface for Files {
    const ID: SurfaceId = SurfaceId {
        name: "files",
        fix: "if the adapter should see it, declare the directory under [[capabilities.files]] \
              and bind it in handoff.toml [adapters.NAME.directories]",
    };
    const IMPORTS: &'static [&'static str] = &["wasi:filesystem/types", "wasi:filesystem/preopens"];
    const UNDECLARED: &'static str = "declare [[capabilities.files]] or remove the file access";
    const BINDING_KEYS: &'static [&'static str] = &["directories", "read-only"];

    type Entry = RawFiles;
    type Grant = FileGrants;
    type Binding = FilesBinding;
    type Shared = ();
    type Policy = Mounts;
    type Gate = writes::Writes;

    fn parse(entries: Vec<RawFiles>) -> Result<FileGrants, String> {
        let mut grants = BTreeMap::new();
        for (i, files) in entries.into_iter().enumerate() {
            let at = format!("[{i}]");
            if files.name.is_empty()
                || files.name.len() > MAX_NAME_CHARS
                || !files
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{at}.name {:?}: a logical directory name (at most {MAX_NAME_CHARS} letters, \
                     digits, '-', '_'), not a path",
                    files.name
                ));
            }
            let mode = FileMode::parse(&files.mode).ok_or_else(|| {
                format!(
                    "{at}.mode {:?}: use \"read-only\" or \"read-write\"",
                    files.mode
                )
            })?;
            if grants.insert(files.name.clone(), mode).is_some() {
                return Err(format!(
                    "{at}: directory {:?} is declared twice",
                    files.name
                ));
            }
        }
        Ok(grants)
    }

    fn is_empty(grant: &FileGrants) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &FileGrants, declared: &FileGrants, out: &mut Vec<Change>) {
        for (name, mode) in declared {
            match approved.get(name) {
                None => out.push(Change::Widened(format!("files {name} {mode}"))),
                Some(FileMode::ReadOnly) if *mode == FileMode::ReadWrite => out.push(
                    Change::Widened(format!("files {name} read-write (approved: read-only)")),
                ),
                Some(FileMode::ReadWrite) if *mode == FileMode::ReadOnly => out.push(
                    Change::Narrowed(format!("files {name} read-only (approved: read-write)")),
                ),
                Some(_) => {}
            }
        }
        for (name, mode) in approved {
            if !declared.contains_key(name) {
                out.push(Change::Narrowed(format!("files {name} {mode}")));
            }
        }
    }

    fn intersect(declared: &FileGrants, approved: &FileGrants, _: &HostCeiling) -> FileGrants {
        declared
            .iter()
            .filter_map(|(name, mode)| {
                let approved_mode = approved.get(name)?;
                let both_write =
                    *mode == FileMode::ReadWrite && *approved_mode == FileMode::ReadWrite;
                Some((
                    name.clone(),
                    if both_write {
                        FileMode::ReadWrite
                    } else {
                        FileMode::ReadOnly
                    },
                ))
            })
            .collect()
    }

    fn read_only(grant: &mut FileGrants) {
        for mode in grant.values_mut() {
            *mode = FileMode::ReadOnly;
        }
    }

    fn narrow(grant: &mut FileGrants, binding: &FilesBinding) -> Result<(), String> {
        for name in &binding.read_only {
            let Some(mode) = grant.get_mut(name) else {
                let held: Vec<&str> = grant.keys().map(String::as_str).collect();
                return Err(format!(
                    "read-only: {name:?} is not a directory its grant holds ({})",
                    if held.is_empty() {
                        "none".into()
                    } else {
                        held.join(", ")
                    }
                ));
            };
            *mode = FileMode::ReadOnly;
        }
        Ok(())
    }

    fn resolve_paths(binding: &mut FilesBinding, resolve: &dyn Fn(&Path) -> PathBuf) {
        for path in binding.directories.values_mut() {
            *path = resolve(path);
        }
    }

    fn lines(grant: &FileGrants, binding: Option<&FilesBinding>) -> Vec<String> {
        grant
            .iter()
            .map(|(name, mode)| match binding {
                None => format!("/{name}  {mode}"),
                Some(b) => match b.directories.get(name) {
                    Some(path) => format!("/{name} = {}  {mode}", path.display()),
                    None => format!("/{name}  {mode}  (not bound: not mounted)"),
                },
            })
            .collect()
    }

    fn load(
        grant: &FileGrants,
        binding: &FilesBinding,
        _: &Arc<()>,
        cx: &LoadContext<'_>,
    ) -> Result<Mounts, String> {
        let mut mounts = Vec::new();
        for (name, mode) in grant {
            let Some(path) = binding.directories.get(name) else {
                tracing::warn!(instance = %cx.instance, directory = %name, "declared directory not bound by the operator; it is not mounted");
                continue;
            };
            // Checked before any instance needs it.
            if !path.is_dir() {
                return Err(format!(
                    "directory {name:?} is bound to {}, which is not a directory",
                    path.display()
                ));
            }
            mounts.push(Mount {
                name: name.clone(),
                host_path: path.clone(),
                mode: *mode,
            });
        }
        Ok(Mounts(mounts))
    }

    fn gate(
        mounts: &Arc<Mounts>,
        wasi: &mut WasiCtxBuilder,
        _: &DecisionLog,
    ) -> wasmtime::Result<writes::Writes> {
        // File operations run on the calling thread instead of a round trip
        // through tokio's blocking pool for each open, read and write: a
        // local file operation is shorter than the thread hand-off. It must
        // be set before the directories are preopened, which capture it.
        wasi.allow_blocking_current_thread(true);
        for m in &mounts.0 {
            let perms = match m.mode {
                FileMode::ReadOnly => FsPerms::ReadOnly,
                FileMode::ReadWrite => FsPerms::ReadWrite,
            };
            wasi.preopened_dir(&m.host_path, m.guest_path(), perms)?;
        }
        Ok(writes::Writes::default())
    }

    fn per_call(grant: &FileGrants) -> Option<String> {
        grant.values().any(|m| *m == FileMode::ReadWrite).then(|| {
            format!(
                "{} MiB written, {} entries made",
                writes::MOST_BYTES_PER_CALL >> 20,
                writes::MOST_ENTRIES_PER_CALL
            )
        })
    }

    fn begin_call(gate: &mut writes::Writes) {
        gate.begin_call();
    }

    fn stopped_call(trap: &wasmtime::Error) -> Option<(SurfaceId, String)> {
        trap.downcast_ref::<writes::WriteBound>()
            .map(|bound| (writes::WRITES, bound.to_string()))
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        // wasi:filesystem is linked for every instance with WASI; what an
        // instance can open is only what was preopened, and what one call
        // may write there is bounded.
        writes::add_to_linker(linker)
    }
}
