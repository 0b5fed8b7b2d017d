//! The on-disk cache of compiled components: native code that wasmtime
//! deserializes and runs, so what is in it is checked like code.
//!
//! The directory is opened once as a capability (`cap_std::fs::Dir`):
//! nothing is reached through it but its own plain files, and no symbolic
//! link is followed out of it. It is used only while neither it nor the
//! file being read is writable by anyone but its owner. Each artifact
//! (`<component sha256>-<engine key>.cwasm`) has beside it the sha256 of
//! its bytes as they were compiled (`.cwasm.sha256`), and is deserialized
//! only when its bytes still have that digest. Anything else (a symbolic
//! link planted in the cache, a file swapped or changed since, a cache
//! open to others) is said in a warning with its fix, and the component
//! is compiled afresh.
//!
//! Opening the cache clears out what no process of this build will read:
//! artifacts (and their digests) compiled by another engine, such as an
//! older handoff's or wasmtime's, and writes a stopped process never
//! renamed into place, once they are an hour old. A process of another
//! build sharing the directory then compiles its components again.

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, PermissionsExt};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Loaded,
    Compiled,
}

/// Compiled components on disk, one file per component digest and engine.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    /// None when the directory may not be trusted: every load compiles.
    dir: Option<Arc<Dir>>,
    shown: PathBuf,
    engine_key: String,
}

/// Write bits for group and others.
const OPEN_TO_OTHERS: u32 = 0o022;

impl ArtifactCache {
    /// The cache in `path`, made (for its owner only) when missing.
    pub fn new(path: &Path, engine: &Engine) -> std::io::Result<ArtifactCache> {
        if !path.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        let mode = dir.dir_metadata()?.permissions().mode();
        let dir = if mode & OPEN_TO_OTHERS != 0 {
            tracing::warn!(
                cache = %path.display(),
                "the artifact cache is writable by others (mode {:o}): not used, every \
                 component is compiled afresh; fix: chmod go-w {}",
                mode & 0o777,
                path.display()
            );
            None
        } else {
            let swept = sweep(&dir, &engine_key);
            if swept > 0 {
                tracing::info!(
                    cache = %path.display(),
                    files = swept,
                    "removed from the artifact cache what this build will not read"
                );
            }
            Some(Arc::new(dir))
        };
        Ok(ArtifactCache {
            dir,
            shown: path.to_path_buf(),
            engine_key,
        })
    }

    fn name_for(&self, component_sha256: &str) -> String {
        format!("{component_sha256}-{}.cwasm", self.engine_key)
    }

    /// The compiled component: from the cache when its artifact is there
    /// and intact, else compiled now and stored for next time.
    pub fn get(
        &self,
        engine: &Engine,
        component_sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let name = self.name_for(component_sha256);
        if let Some(dir) = &self.dir {
            match cached(dir, &name) {
                Ok(None) => {}
                Ok(Some(artifact)) => {
                    // SAFETY: deserializing runs native code. These bytes
                    // are a plain file of a directory only its owner may
                    // write, with the digest recorded when this cache
                    // compiled them, under the component's digest and the
                    // engine's compatibility hash. One that does not load
                    // is compiled again.
                    #[allow(unsafe_code)]
                    match unsafe { Component::deserialize(engine, &artifact) } {
                        Ok(c) => return Ok((c, CacheOutcome::Loaded)),
                        Err(e) => tracing::warn!(
                            artifact = %self.shown.join(&name).display(),
                            error = %e,
                            "a cached artifact does not load: compiled afresh"
                        ),
                    }
                }
                Err(problem) => tracing::warn!(
                    artifact = %self.shown.join(&name).display(),
                    "cached artifact refused: {problem}; compiled afresh and stored in its place"
                ),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Some(dir) = &self.dir
            && let Err(e) = store(dir, &name, &compiled)
        {
            tracing::warn!(cache = %self.shown.display(), error = %e, "could not store a compiled artifact");
        }
        #[allow(unsafe_code)]
        // SAFETY: the bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }
}

/// An artifact's bytes, when the cache holds it and it may be trusted;
/// none when it is not there; why not otherwise (with the fix).
fn cached(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>, String> {
    let meta = match dir.symlink_metadata(name) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot look at it: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err(
            "it is a symbolic link, and the cache holds only files it wrote \
                    (the link is replaced by the compiled file)"
                .into(),
        );
    }
    if !meta.is_file() {
        return Err("it is not a plain file; remove it".into());
    }
    if meta.permissions().mode() & OPEN_TO_OTHERS != 0 {
        return Err(format!(
            "it is writable by others (mode {:o}); it is replaced by a file for the owner only",
            meta.permissions().mode() & 0o777
        ));
    }
    let bytes = dir.read(name).map_err(|e| format!("cannot read it: {e}"))?;
    let recorded = dir
        .read_to_string(digest_name(name))
        .map_err(|_| "its recorded digest is missing".to_string())?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if recorded.trim() != actual {
        return Err(format!(
            "its bytes (sha256 {actual}) are not the ones compiled (sha256 {}): it was changed \
             or swapped since",
            recorded.trim()
        ));
    }
    Ok(Some(bytes))
}

/// How old a write that was never renamed into place must be before it is
/// taken for abandoned: a write in progress takes a second or two.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Remove the cache's plain files no process of this build will read:
/// artifacts and digests of another engine, and abandoned writes. How
/// many went; a file that cannot be looked at or removed is left.
fn sweep(dir: &Dir, engine_key: &str) -> usize {
    let Ok(entries) = dir.entries() else {
        return 0;
    };
    let ours = format!("-{engine_key}.cwasm");
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = dir.symlink_metadata(&name) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let abandoned = name.starts_with('.')
            && name.contains(".cwasm")
            && name.contains(".tmp")
            && meta
                .modified()
                .ok()
                .and_then(|at| SystemTime::now().duration_since(at.into_std()).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
        let another_engines = !name.starts_with('.')
            && (name.ends_with(".cwasm") || name.ends_with(".cwasm.sha256"))
            && !name.contains(&ours);
        if (abandoned || another_engines) && dir.remove_file(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn digest_name(name: &str) -> String {
    format!("{name}.sha256")
}

/// Put `bytes` in place as `name`, then their digest beside them, each
/// written to a file of its own first and renamed over (a stop leaves the
/// old file or the new one; an artifact without its digest is compiled
/// again).
fn store(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(dir, name, bytes)?;
    write_replacing(
        dir,
        &digest_name(name),
        hex::encode(Sha256::digest(bytes)).as_bytes(),
    )
}

fn write_replacing(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per write: threads of one process may compile the same
    // component at once, and each must rename its own file into place.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.tmp{}-{n}", std::process::id());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = dir.open_with(&tmp, &options)?;
    file.write_all(bytes)?;
    drop(file);
    dir.rename(&tmp, dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn opening_the_cache_removes_other_engines_artifacts_and_abandoned_writes_only() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cache");
        let cache = ArtifactCache::new(&path, &engine()).unwrap();
        let ours = cache.name_for("aa");
        let write = |name: &str| std::fs::write(path.join(name), b"x").unwrap();
        write(&ours);
        write(&digest_name(&ours));
        write("aa-0123456789abcdef.cwasm");
        write("aa-0123456789abcdef.cwasm.sha256");
        write(&format!(".{ours}.tmp1-0"));
        write(&format!(".{ours}.tmp2-0"));
        write("notes.txt");
        let hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
        for old in [format!(".{ours}.tmp1-0"), "notes.txt".to_string()] {
            std::fs::File::options()
                .write(true)
                .open(path.join(old))
                .unwrap()
                .set_modified(hours_ago)
                .unwrap();
        }

        ArtifactCache::new(&path, &engine()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            ours.clone(),
            digest_name(&ours),
            format!(".{ours}.tmp2-0"),
            "notes.txt".to_string(),
        ];
        expected.sort();
        assert_eq!(
            left, expected,
            "an hour-old write and another engine's files went"
        );
    }
}
