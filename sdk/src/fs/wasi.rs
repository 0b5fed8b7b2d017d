//! In a component, whole-file reads and writes go through
//! `wasi:filesystem` descriptors (positional read and write), and appends
//! through an append stream (the one way to write at the end without
//! reading where it is first). handoff's host runs both on the calling
//! thread; a host that does not sends each through a thread pool.

use crate::AdapterError;
use std::path::{Path, PathBuf};
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

pub fn mounts() -> Vec<String> {
    wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .map(|(_, name)| name)
        .collect()
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
fn locate(p: &Path, op: &str, shown: &str) -> Result<(Descriptor, String), AdapterError> {
    let (dir, name) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .filter(|(_, name)| p.starts_with(name))
        .max_by_key(|(_, name)| name.len())
        .ok_or_else(|| error(op, shown, ErrorCode::NotPermitted))?;
    let rel = p
        .strip_prefix(&name)
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

/// Everything from byte `from` to the end.
fn read_from(file: &Descriptor, shown: &str, from: u64) -> Result<Vec<u8>, AdapterError> {
    let mut out = Vec::new();
    loop {
        let (chunk, end) = file
            .read(64 * 1024, from + out.len() as u64)
            .map_err(|c| error("read", shown, c))?;
        out.extend_from_slice(&chunk);
        if end || chunk.is_empty() {
            return Ok(out);
        }
    }
}

pub fn read(p: &Path, shown: &str) -> Result<Vec<u8>, AdapterError> {
    read_from(&open_to_read(p, shown)?, shown, 0)
}

pub fn read_tail(p: &Path, shown: &str, max: u64) -> Result<super::Tail, AdapterError> {
    let file = open_to_read(p, shown)?;
    let size = file.stat().map_err(|c| error("read", shown, c))?.size;
    let from = size.saturating_sub(max);
    Ok(super::Tail {
        bytes: read_from(&file, shown, from)?,
        whole: from == 0,
    })
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
            let old = file.stat().map_err(|c| error(op, shown, c))?.size;
            if let Some(padded) = super::over_in_place(bytes, old) {
                // One write, then the cut.
                write_from_start(&file, &padded, op, shown)?;
                return file
                    .set_size(bytes.len() as u64)
                    .map_err(|c| error(op, shown, c));
            }
        }
        Err(ErrorCode::NoEntry) => {}
        Err(c) => return Err(error(op, shown, c)),
    }
    write(&p.with_file_name(partial), shown, bytes, false)?;
    let from = Path::new(&rel).with_file_name(partial);
    dir.rename_at(&from.to_string_lossy(), &dir, &rel)
        .map_err(|c| error(op, shown, c))
}
