//! Paths compared as where they really are, however each is spelt: the
//! store's own files, and what no adapter's directory may reach
//! ([`crate::config::protected`]).

use std::path::{Component, Path, PathBuf};

/// `path` as the file system resolves it: its nearest existing ancestor
/// with symbolic links followed, the rest as written (`.` and `..` taken
/// lexically). A binding and a protected path are compared as where they
/// really are, however each is spelt.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            let mut real = found;
            for part in rest.iter().rev() {
                real.push(part);
            }
            return lexical(&real);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical(&absolute),
        }
    }
}

/// `.` dropped and `..` taken back one part, without asking the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
