//! Files in the directories an adapter's grant mounts (`/<name>`).
//!
//! The host's sandbox is what enforces the grant: nothing but the mounted
//! directories exists for the component. These helpers add clear, typed
//! errors on top: a path outside every mount (absolute elsewhere, or `..`
//! climbing out) is [`AdapterError::Denied`] naming the mounts, a refused
//! write is `denied`, a missing file `not-found`. One call may write at
//! most 64 MiB into its directories and make at most 1,024 files,
//! directories and links there; past either the host stops the call.

use crate::AdapterError;
use std::path::{Component, Path, PathBuf};

/// Read a whole file.
pub fn read(path: &str) -> Result<Vec<u8>, AdapterError> {
    let p = inside_mounts(path)?;
    backend::read(&p, path)
}

/// Read a whole file as UTF-8.
pub fn read_to_string(path: &str) -> Result<String, AdapterError> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| AdapterError::Invalid(format!("read {path}: not UTF-8")))
}

/// The end of a file: at most `max` bytes, and whether they reach back to
/// its start (when not, the first line may be cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub bytes: Vec<u8>,
    pub whole: bool,
}

/// Read the last `max` bytes of a file: what an append-only log needs to
/// show its latest entries without reading its whole history.
pub fn read_tail(path: &str, max: u64) -> Result<Tail, AdapterError> {
    let p = inside_mounts(path)?;
    backend::read_tail(&p, path, max)
}

/// At most `max` bytes of a file from `offset` on (none when it is
/// shorter): what a log needs to look for a line it may have appended just
/// after a known point.
pub fn read_after(path: &str, offset: u64, max: u64) -> Result<Vec<u8>, AdapterError> {
    let p = inside_mounts(path)?;
    backend::read_after(&p, path, offset, max)
}

/// A file's length in bytes (`not-found` when it does not exist).
pub fn len(path: &str) -> Result<u64, AdapterError> {
    let p = inside_mounts(path)?;
    backend::len(&p, path)
}

/// Write a whole file (create or replace).
pub fn write(path: &str, contents: &[u8]) -> Result<(), AdapterError> {
    let p = inside_mounts(path)?;
    backend::write(&p, path, contents, false)
}

/// Write a whole file so that a stop at any point leaves all of its old
/// contents or all of its new ones, never a mix (for records).
///
/// A file that stays within one page (old and new contents both at most
/// [`IN_PLACE`] bytes) is changed where it lies: one write of the new
/// contents padded with spaces to the old length, then, when they are
/// shorter, a cut to their length. A stop between them leaves the new
/// contents followed by spaces, which a JSON or TOML reader ignores, and a
/// process killed during the one write of one page has written all of it
/// or none. A larger file (or a new one) is written to a hidden sibling
/// (`.<name>.partial`) and renamed over the old one, which also keeps the
/// old file whole for a reader that holds it open.
/// The two paths differ in cost, not in guarantee: on ext4 each rename
/// makes and drops an inode, which measured ~40% slower per pipeline run.
pub fn replace(path: &str, contents: &[u8]) -> Result<(), AdapterError> {
    let p = inside_mounts(path)?;
    let name = p
        .file_name()
        .ok_or_else(|| AdapterError::Invalid(format!("replace {path}: not a file name")))?;
    let partial = format!(".{}.partial", name.to_string_lossy());
    backend::replace(&p, &partial, path, contents)
}

/// The largest file [`replace`] changes in place: one page.
pub const IN_PLACE: u64 = 4096;

/// How [`replace`] changes a file of `old` bytes where it lies: one write
/// of the new contents padded with spaces to the old length, then a cut to
/// the new length when they are shorter (a file that grows or keeps its
/// length needs none: the write leaves it at the new length). `None` when
/// either side is larger than one page (then a new file is renamed over).
fn over_in_place(contents: &[u8], old: u64) -> Option<InPlace> {
    let len = contents.len() as u64;
    if len.max(old) > IN_PLACE {
        return None;
    }
    let mut write = contents.to_vec();
    write.resize(len.max(old) as usize, b' ');
    Some(InPlace {
        write,
        cut_to: (len < old).then_some(len),
    })
}

/// An in-place change: what to write at the start, and where to cut after.
#[derive(Debug, PartialEq, Eq)]
struct InPlace {
    write: Vec<u8>,
    cut_to: Option<u64>,
}

/// Append to a file, creating it if needed. Up to 4 KiB goes at the end
/// in one piece even while other instances append to the same file (a
/// journal line, a sent-log key is never overwritten by another's).
pub fn append(path: &str, contents: &[u8]) -> Result<(), AdapterError> {
    let p = inside_mounts(path)?;
    backend::write(&p, path, contents, true)
}

/// As [`append`], making the file's directory (and its parents) when the
/// append finds it missing: the directory is made by the first append, not
/// looked for on every one.
pub fn append_making_dir(path: &str, contents: &[u8]) -> Result<(), AdapterError> {
    match append(path, contents) {
        Err(AdapterError::NotFound(_)) => {
            let p = inside_mounts(path)?;
            let dir = p.parent().unwrap_or(&p).to_string_lossy().into_owned();
            create_dir_all(&dir)?;
            append(path, contents)
        }
        done => done,
    }
}

/// Remove a file; one that is not there is no error (what the caller
/// wanted holds).
pub fn remove_file(path: &str) -> Result<(), AdapterError> {
    let p = inside_mounts(path)?;
    match backend::remove_file(&p, path) {
        Err(AdapterError::NotFound(_)) => Ok(()),
        done => done,
    }
}

/// Create a directory and its parents (no error if it exists).
pub fn create_dir_all(path: &str) -> Result<(), AdapterError> {
    let p = inside_mounts(path)?;
    backend::create_dir_all(&p, path)
}

/// The names in a directory, sorted.
pub fn list(path: &str) -> Result<Vec<String>, AdapterError> {
    let p = inside_mounts(path)?;
    let entries =
        std::fs::read_dir(backend::host_path(&p)).map_err(|e| io_error("list", path, e))?;
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Whether a path exists (false outside the mounts, and on any error).
pub fn exists(path: &str) -> bool {
    try_exists(path).unwrap_or(false)
}

/// Whether a path exists, where an answer of "no" must be a real one: an
/// error other than "not found" is an error, not `false`.
pub fn try_exists(path: &str) -> Result<bool, AdapterError> {
    let p = inside_mounts(path)?;
    backend::try_exists(&p, path)
}

/// The mounted directories, as the guest sees them (`/evidence`...).
pub fn mounts() -> Vec<String> {
    backend::mounts()
}

/// Normalize `path` lexically and check it lies in a mount.
fn inside_mounts(path: &str) -> Result<PathBuf, AdapterError> {
    let mounts = backend::mounts();
    let denied = |why: &str| {
        AdapterError::Denied(format!(
            "{path}: {why}; this adapter's directories are: {}",
            if mounts.is_empty() {
                "(none)".to_string()
            } else {
                mounts.join(", ")
            }
        ))
    };
    if !path.starts_with('/') {
        return Err(denied("use an absolute path under a granted directory"));
    }
    let mut normal = PathBuf::from("/");
    for part in Path::new(path).components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(denied("climbs above the root"));
                }
            }
            Component::Normal(p) => normal.push(p),
            Component::Prefix(_) => return Err(denied("not a path this adapter can use")),
        }
    }
    let inside = mounts.iter().any(|m| normal.starts_with(Path::new(m)));
    if inside {
        Ok(normal)
    } else {
        Err(denied("outside the directories granted to this adapter"))
    }
}

fn io_error(op: &str, path: &str, e: std::io::Error) -> AdapterError {
    use std::io::ErrorKind;
    let message = format!("{op} {path}: {e}");
    // 63 is WASI's EPERM, 76 ENOTCAPABLE: refused by the sandbox.
    match (e.kind(), e.raw_os_error()) {
        (ErrorKind::PermissionDenied, _) | (_, Some(63 | 76)) => AdapterError::Denied(message),
        (ErrorKind::NotFound, _) => AdapterError::NotFound(message),
        (ErrorKind::ReadOnlyFilesystem, _) => AdapterError::Denied(message),
        // Asking again cannot help: the name or the path is wrong.
        (
            ErrorKind::InvalidFilename
            | ErrorKind::InvalidInput
            | ErrorKind::IsADirectory
            | ErrorKind::NotADirectory,
            _,
        ) => AdapterError::Invalid(message),
        _ => AdapterError::Transient(message),
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi;
#[cfg(target_arch = "wasm32")]
use wasi as backend;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
use native as backend;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[test]
    fn paths_outside_the_mounts_are_denied_with_the_mounts_named() {
        let dir = std::env::temp_dir();
        let h = Harness::new().dir("evidence", &dir);
        for path in [
            "/etc/passwd",
            "/evidence/../etc/passwd",
            "relative",
            "/evidencex/a",
        ] {
            let err = h.run(|| read(path)).unwrap_err();
            match err {
                AdapterError::Denied(m) => assert!(m.contains("/evidence"), "{m}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_name_no_file_system_takes_is_invalid_not_worth_another_try() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), b"x").unwrap();
        let h = Harness::new().dir("records", &dir);
        for path in [
            format!("/records/{}", "a".repeat(300)),
            "/records/file/under-a-file".to_string(),
        ] {
            match h.run(|| read(&path)) {
                Err(AdapterError::Invalid(m)) => assert!(m.contains("read /records/"), "{m}"),
                other => panic!("{path:.40}: {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_changed_in_place_is_whole_between_the_write_and_the_cut() {
        let old = br#"{"state":"open","fields":{"note":"a longer old value"}}"#;
        let new = br#"{"state":"cleared"}"#;
        // What a stop after the write and before the cut leaves.
        let shrink = over_in_place(new, old.len() as u64).unwrap();
        let between = &shrink.write;
        // The new record whole, then only spaces (which JSON ignores).
        assert_eq!(between.len(), old.len());
        assert_eq!(&between[..new.len()], new);
        assert!(between[new.len()..].iter().all(|b| *b == b' '));
        assert_eq!(shrink.cut_to, Some(new.len() as u64));
        // A growing record needs no padding and no cut; past one page, no
        // in-place write.
        let grow = over_in_place(old, new.len() as u64).unwrap();
        assert_eq!((grow.write.as_slice(), grow.cut_to), (&old[..], None));
        assert!(over_in_place(new, IN_PLACE + 1).is_none());
        assert!(over_in_place(&[b' '; IN_PLACE as usize + 1], 0).is_none());
    }

    #[test]
    fn files_under_a_mount_are_read_and_written_in_the_bound_directory() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Harness::new().dir("out", &dir);
        h.run(|| write("/out/./a.txt", b"one")).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"one");
        assert_eq!(h.run(|| read_to_string("/out/a.txt")).unwrap(), "one");
        assert_eq!(h.run(|| list("/out")).unwrap(), ["a.txt"]);
        h.run(|| append("/out/a.txt", b"\ntwo\nthree")).unwrap();
        let tail = h.run(|| read_tail("/out/a.txt", 7)).unwrap();
        assert_eq!(
            (tail.bytes.as_slice(), tail.whole),
            (&b"o\nthree"[..], false)
        );
        let all = h.run(|| read_tail("/out/a.txt", 100)).unwrap();
        assert_eq!(
            (all.bytes.as_slice(), all.whole),
            (&b"one\ntwo\nthree"[..], true)
        );
        // Larger than a page: a new file renamed over the old one, so a
        // reader that opened the old one still reads it whole.
        let mut held = std::fs::File::open(dir.join("a.txt")).unwrap();
        let big = vec![b'4'; IN_PLACE as usize + 1];
        h.run(|| replace("/out/a.txt", &big)).unwrap();
        let mut old = String::new();
        std::io::Read::read_to_string(&mut held, &mut old).unwrap();
        assert_eq!(old, "one\ntwo\nthree");
        // A new file appears whole, by the rename.
        h.run(|| replace("/out/b.txt", b"new")).unwrap();
        assert_eq!(std::fs::read(dir.join("b.txt")).unwrap(), b"new");
        std::fs::remove_file(dir.join("b.txt")).unwrap();
        // Within a page, changed in place to exactly the new contents.
        h.run(|| replace("/out/a.txt", b"five")).unwrap();
        h.run(|| replace("/out/a.txt", b"6")).unwrap();
        assert_eq!(h.run(|| read_to_string("/out/a.txt")).unwrap(), "6");
        assert_eq!(
            h.run(|| list("/out")).unwrap(),
            ["a.txt"],
            "no partial left"
        );
        let missing = h.run(|| read("/out/none")).unwrap_err();
        assert!(matches!(missing, AdapterError::NotFound(_)), "{missing:?}");
        // An append into a directory not made yet: refused as missing by
        // `append`, made on the way by `append_making_dir`.
        let gone = h.run(|| append("/out/new/deeper/log", b"x")).unwrap_err();
        assert!(matches!(gone, AdapterError::NotFound(_)), "{gone:?}");
        h.run(|| append_making_dir("/out/new/deeper/log", b"one\n"))
            .unwrap();
        h.run(|| append_making_dir("/out/new/deeper/log", b"two\n"))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("new/deeper/log")).unwrap(),
            "one\ntwo\n"
        );
        let outside = h.run(|| append_making_dir("/elsewhere/log", b"x"));
        assert!(
            matches!(outside, Err(AdapterError::Denied(_))),
            "{outside:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
