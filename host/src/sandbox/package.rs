//! An adapter package on disk: `adapter.toml` beside `<name>.wasm`, and the
//! sha256 digests that approvals are keyed on.

use super::manifest::{MANIFEST_FILE, Manifest, ManifestError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PackageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "{dir}: no {MANIFEST_FILE} here; a package is a directory holding {MANIFEST_FILE} and <name>.wasm"
    )]
    NoManifest { dir: PathBuf },
    #[error(
        "{path}: no such file or directory, so no {MANIFEST_FILE} here; a package is a directory holding {MANIFEST_FILE} and <name>.wasm"
    )]
    Missing { path: PathBuf },
    #[error(
        "{path}: cannot read the component: {source}; build it, or point at the package that holds it"
    )]
    Component {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A package read from disk, with its digests.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub component_path: PathBuf,
    pub component_sha256: String,
    pub component: Vec<u8>,
}

impl Package {
    /// Where the package at `path` (its directory, or its manifest) has its
    /// directory and manifest; an error when there is no manifest there.
    /// Cheap (no file is read): for checking a configuration at startup.
    pub fn find(path: &Path) -> Result<(PathBuf, PathBuf), PackageError> {
        if !path.exists() {
            return Err(PackageError::Missing {
                path: path.to_path_buf(),
            });
        }
        let (dir, manifest_path) = if path.is_dir() {
            (path.to_path_buf(), path.join(MANIFEST_FILE))
        } else {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir, path.to_path_buf())
        };
        if !manifest_path.is_file() {
            return Err(PackageError::NoManifest { dir });
        }
        Ok((dir, manifest_path))
    }

    /// Read a package from its directory (or from the path of its manifest).
    /// The directory is opened once as a capability, and both files are
    /// read through it: a symbolic link out of the package (to a component
    /// elsewhere) is refused, not followed.
    pub fn read(path: &Path) -> Result<Package, PackageError> {
        let (dir, manifest_path) = Package::find(path)?;
        let files = cap_std::fs::Dir::open_ambient_dir(&dir, cap_std::ambient_authority())
            .map_err(|e| ManifestError {
                path: dir.clone(),
                problem: format!("cannot open the package directory: {e}"),
            })?;
        let manifest_name = manifest_path
            .file_name()
            .map(Path::new)
            .unwrap_or(Path::new(MANIFEST_FILE));
        let read = |name: &Path, max: u64| {
            let file = files.open(name)?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            crate::files::read_from_at_most(file, size, max)
        };
        let manifest_text =
            read(manifest_name, crate::files::SETTINGS_BYTES).map_err(|e| ManifestError {
                path: manifest_path.clone(),
                problem: format!("cannot read: {e}"),
            })?;
        let text = std::str::from_utf8(&manifest_text).map_err(|e| ManifestError {
            path: manifest_path.clone(),
            problem: format!("is not UTF-8 text ({e})"),
        })?;
        let manifest = Manifest::parse(text, &manifest_path)?;
        let component_name = format!("{}.wasm", manifest.name);
        let component_path = dir.join(&component_name);
        let component =
            read(Path::new(&component_name), crate::files::COMPONENT_BYTES).map_err(|source| {
                PackageError::Component {
                    path: component_path.clone(),
                    source,
                }
            })?;
        Ok(Package {
            dir,
            manifest_sha256: sha256_hex(&manifest_text),
            component_sha256: sha256_hex(&component),
            manifest,
            component_path,
            component,
        })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
