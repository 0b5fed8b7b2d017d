//! In a component, every file operation goes through `wasi:filesystem`
//! descriptors: whole-file reads and writes are positional, appends go
//! through an append stream (the one way to write at the end without
//! reading where it is first). handoff's host runs them on the calling
//! thread; a host that does not sends each through a thread pool.
//!
//! Each operation here is as few host calls as it can be, as an instance
//! makes dozens per run: the mounts are asked for once, a lookup is one
//! `stat` (`std` also asks for the file's identity), and a read asks for
//! exactly what a `stat` of the open file says is there.

use crate::AdapterError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

/// The mounts and their names, asked of the host once: they are fixed when
/// the instance is made.
fn preopens() -> &'static [(Descriptor, String)] {
    static PREOPENS: OnceLock<Vec<(Descriptor, String)>> = OnceLock::new();
    PREOPENS.get_or_init(wasip2::filesystem::preopens::get_directories)
}

pub fn mounts() -> Vec<String> {
    preopens().iter().map(|(_, name)| name.clone()).collect()
}

pub fn host_path(p: &Path) -> PathBuf {
    p.to_path_buf()
}

fn error(op: &str, path: &str, code: ErrorCode) -> AdapterError {
    let message = format!("{op} {path}: {}", code.message());
    match code {
        ErrorCode::NoEntry => AdapterError::NotFound(message),
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            AdapterError::Denied(message)
        }
        // Asking again cannot help: the name or the path is wrong.
        ErrorCode::NameTooLong
        | ErrorCode::Invalid
        | ErrorCode::IllegalByteSequence
        | ErrorCode::IsDirectory
        | ErrorCode::NotDirectory
        | ErrorCode::Loop => AdapterError::Invalid(message),
        _ => AdapterError::Transient(message),
    }
}

/// The most one blocking write may carry (WASI's streams promise 4 KiB).
const APPEND_PIECE: usize = 4096;

fn stream_error(op: &str, path: &str, e: wasip2::io::streams::StreamError) -> AdapterError {
    use wasip2::io::streams::StreamError;
    match e {
        StreamError::LastOperationFailed(err) => {
            match wasip2::filesystem::types::filesystem_error_code(&err) {
                Some(code) => error(op, path, code),
                None => AdapterError::Transient(format!("{op} {path}: {}", err.to_debug_string())),
            }
        }
        StreamError::Closed => AdapterError::Transient(format!("{op} {path}: the file closed")),
    }
}

// Symlinks are followed as `std::fs` follows them; the host resolves
// them beneath the mount and refuses one that leads out (`denied`).

/// The mount holding `p` (the longest matching one) and the path inside it.
fn locate(p: &Path, op: &str, shown: &str) -> Result<(&'static Descriptor, String), AdapterError> {
    let (dir, name) = preopens()
        .iter()
        .filter(|(_, name)| p.starts_with(name))
        .max_by_key(|(_, name)| name.len())
        .ok_or_else(|| error(op, shown, ErrorCode::NotPermitted))?;
    let rel = p
        .strip_prefix(name)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((dir, if rel.is_empty() { ".".into() } else { rel }))
}

fn open_to_read(p: &Path, shown: &str) -> Result<Descriptor, AdapterError> {
    let (dir, rel) = locate(p, "read", shown)?;
    dir.open_at(
        PathFlags::SYMLINK_FOLLOW,
        &rel,
        OpenFlags::empty(),
        DescriptorFlags::READ,
    )
    .map_err(|c| error("read", shown, c))
}

/// The bytes from `from` to the end as `stat` found it a moment before:
/// one read of exactly that size. Reading until the host says "end"
/// instead cost a second read, and each read has the host zero a buffer of
/// the size asked for (64 KiB to be sure of a record).
fn read_from(
    file: &Descriptor,
    shown: &str,
    from: u64,
    size: u64,
) -> Result<Vec<u8>, AdapterError> {
    let want = size.saturating_sub(from);
    let mut out = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    while (out.len() as u64) < want {
        let ask = (want - out.len() as u64).min(MAX_READ);
        let (chunk, end) = file
            .read(ask, from + out.len() as u64)
            .map_err(|c| error("read", shown, c))?;
        out.extend_from_slice(&chunk);
        // Cut shorter since the stat: what is there is all there is.
        if end || chunk.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// The most one read asks for (handoff's host gives at most 64 KiB).
const MAX_READ: u64 = 64 * 1024;

fn size_of(file: &Descriptor, op: &str, shown: &str) -> Result<u64, AdapterError> {
    Ok(file.stat().map_err(|c| error(op, shown, c))?.size)
}

pub fn read(p: &Path, shown: &str) -> Result<Vec<u8>, AdapterError> {
    let file = open_to_read(p, shown)?;
    read_from(&file, shown, 0, size_of(&file, "read", shown)?)
}

pub fn read_tail(p: &Path, shown: &str, max: u64) -> Result<super::Tail, AdapterError> {
    let file = open_to_read(p, shown)?;
    let size = size_of(&file, "read", shown)?;
    let from = size.saturating_sub(max);
    Ok(super::Tail {
        bytes: read_from(&file, shown, from, size)?,
        whole: from == 0,
    })
}

pub fn read_after(p: &Path, shown: &str, offset: u64, max: u64) -> Result<Vec<u8>, AdapterError> {
    let file = open_to_read(p, shown)?;
    let size = size_of(&file, "read", shown)?;
    let from = offset.min(size);
    read_from(&file, shown, from, size.min(from.saturating_add(max)))
}

pub fn len(p: &Path, shown: &str) -> Result<u64, AdapterError> {
    let (dir, rel) = locate(p, "look up", shown)?;
    Ok(dir
        .stat_at(PathFlags::SYMLINK_FOLLOW, &rel)
        .map_err(|c| error("look up", shown, c))?
        .size)
}

/// Whether `p` exists. Asked without following a symlink first: the host
/// answers that with one `stat`, where following costs an open beneath
/// the mount, a `stat` and a close. Only a symlink is asked again,
/// followed.
pub fn try_exists(p: &Path, shown: &str) -> Result<bool, AdapterError> {
    let (dir, rel) = locate(p, "look up", shown)?;
    match kind_at(dir, &rel) {
        Ok(_) => Ok(true),
        Err(ErrorCode::NoEntry) => Ok(false),
        Err(c) => Err(error("look up", shown, c)),
    }
}

/// What `rel` is, a symlink followed (beneath the mount).
fn kind_at(dir: &Descriptor, rel: &str) -> Result<DescriptorType, ErrorCode> {
    match dir.stat_at(PathFlags::empty(), rel)?.type_ {
        DescriptorType::SymbolicLink => Ok(dir.stat_at(PathFlags::SYMLINK_FOLLOW, rel)?.type_),
        kind => Ok(kind),
    }
}

pub fn remove_file(p: &Path, shown: &str) -> Result<(), AdapterError> {
    let (dir, rel) = locate(p, "remove", shown)?;
    dir.unlink_file_at(&rel)
        .map_err(|c| error("remove", shown, c))
}

/// Create `p` and its missing parents; one existing already as a
/// directory is no error.
pub fn create_dir_all(p: &Path, shown: &str) -> Result<(), AdapterError> {
    let (dir, rel) = locate(p, "create", shown)?;
    make_dirs(dir, Path::new(&rel), shown)
}

fn make_dirs(dir: &Descriptor, rel: &Path, shown: &str) -> Result<(), AdapterError> {
    let fail = |c| error("create", shown, c);
    let name = rel.to_string_lossy();
    match dir.create_directory_at(&name) {
        Ok(()) => Ok(()),
        Err(ErrorCode::Exist) => match kind_at(dir, &name) {
            Ok(DescriptorType::Directory) => Ok(()),
            Ok(_) => Err(fail(ErrorCode::Exist)),
            Err(c) => Err(fail(c)),
        },
        Err(ErrorCode::NoEntry) => match rel.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                make_dirs(dir, parent, shown)?;
                match dir.create_directory_at(&name) {
                    // Made by another instance in between.
                    Ok(()) | Err(ErrorCode::Exist) => Ok(()),
                    Err(c) => Err(fail(c)),
                }
            }
            _ => Err(fail(ErrorCode::NoEntry)),
        },
        Err(c) => Err(fail(c)),
    }
}

pub fn write(p: &Path, shown: &str, bytes: &[u8], append: bool) -> Result<(), AdapterError> {
    let op = if append { "append" } else { "write" };
    let (dir, rel) = locate(p, op, shown)?;
    // Not opened with TRUNCATE: a file cut to zero length is flushed to
    // disk when it is closed (ext4's auto_da_alloc), which made every
    // record write ~3x slower. A whole write goes over the old bytes
    // from the start and then cuts the file to its new length.
    let file = dir
        .open_at(
            PathFlags::SYMLINK_FOLLOW,
            &rel,
            OpenFlags::CREATE,
            DescriptorFlags::WRITE,
        )
        .map_err(|c| error(op, shown, c))?;
    if append {
        // Each piece is one write at the file's end, wherever another
        // instance (another run) left it a moment ago: the host appends
        // with RWF_APPEND, so concurrent appends never overwrite each
        // other. A position read first (stat, then write) could.
        let stream = file.append_via_stream().map_err(|c| error(op, shown, c))?;
        for piece in bytes.chunks(APPEND_PIECE) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| stream_error(op, shown, e))?;
        }
        return Ok(());
    }
    write_from_start(&file, bytes, op, shown)?;
    file.set_size(bytes.len() as u64)
        .map_err(|c| error(op, shown, c))
}

/// Write `bytes` over the file from its first byte (the host makes it
/// one pwrite; the loop is for a short one).
fn write_from_start(
    file: &Descriptor,
    bytes: &[u8],
    op: &str,
    shown: &str,
) -> Result<(), AdapterError> {
    let mut done = 0;
    while done < bytes.len() {
        let n = file
            .write(&bytes[done..], done as u64)
            .map_err(|c| error(op, shown, c))?;
        done += n as usize;
    }
    Ok(())
}

/// `partial` is the name of the sibling a new file is written to.
pub fn replace(p: &Path, partial: &str, shown: &str, bytes: &[u8]) -> Result<(), AdapterError> {
    let op = "replace";
    let (dir, rel) = locate(p, op, shown)?;
    // Not created here: a new file appears only by the rename, whole.
    match dir.open_at(
        PathFlags::SYMLINK_FOLLOW,
        &rel,
        OpenFlags::empty(),
        DescriptorFlags::WRITE,
    ) {
        Ok(file) => {
            let old = size_of(&file, op, shown)?;
            if let Some(change) = super::over_in_place(bytes, old) {
                // One write, then the cut (if it shrank).
                write_from_start(&file, &change.write, op, shown)?;
                if let Some(len) = change.cut_to {
                    file.set_size(len).map_err(|c| error(op, shown, c))?;
                }
                return Ok(());
            }
        }
        Err(ErrorCode::NoEntry) => {}
        Err(c) => return Err(error(op, shown, c)),
    }
    write(&p.with_file_name(partial), shown, bytes, false)?;
    let from = Path::new(&rel).with_file_name(partial);
    dir.rename_at(&from.to_string_lossy(), dir, &rel)
        .map_err(|c| error(op, shown, c))
}
