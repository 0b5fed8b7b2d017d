//! The backend outside a component: `std::fs` on the directories a
//! test harness mounts (`crate::testing`), for adapters' native tests.

use crate::AdapterError;
use std::path::{Path, PathBuf};

pub fn mounts() -> Vec<String> {
    crate::testing::with_current(|h| h.mount_names())
}

pub fn host_path(p: &Path) -> PathBuf {
    crate::testing::with_current(|h| h.resolve_mount(p))
}

pub fn try_exists(p: &Path, shown: &str) -> Result<bool, AdapterError> {
    std::fs::exists(host_path(p)).map_err(|e| super::io_error("look up", shown, e))
}

pub fn remove_file(p: &Path, shown: &str) -> Result<(), AdapterError> {
    std::fs::remove_file(host_path(p)).map_err(|e| super::io_error("remove", shown, e))
}

pub fn create_dir_all(p: &Path, shown: &str) -> Result<(), AdapterError> {
    std::fs::create_dir_all(host_path(p)).map_err(|e| super::io_error("create", shown, e))
}

pub fn read(p: &Path, shown: &str) -> Result<Vec<u8>, AdapterError> {
    std::fs::read(host_path(p)).map_err(|e| super::io_error("read", shown, e))
}

pub fn read_tail(p: &Path, shown: &str, max: u64) -> Result<super::Tail, AdapterError> {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |e| super::io_error("read", shown, e);
    let mut file = std::fs::File::open(host_path(p)).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let from = size.saturating_sub(max);
    file.seek(SeekFrom::Start(from)).map_err(fail)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(fail)?;
    Ok(super::Tail {
        bytes,
        whole: from == 0,
    })
}

pub fn read_after(p: &Path, shown: &str, offset: u64, max: u64) -> Result<Vec<u8>, AdapterError> {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |e| super::io_error("read", shown, e);
    let mut file = std::fs::File::open(host_path(p)).map_err(fail)?;
    file.seek(SeekFrom::Start(offset)).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).map_err(fail)?;
    Ok(bytes)
}

pub fn len(p: &Path, shown: &str) -> Result<u64, AdapterError> {
    Ok(std::fs::metadata(host_path(p))
        .map_err(|e| super::io_error("look up", shown, e))?
        .len())
}

pub fn write(p: &Path, shown: &str, bytes: &[u8], append: bool) -> Result<(), AdapterError> {
    use std::io::Write;
    let op = if append { "append" } else { "write" };
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(host_path(p))
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| super::io_error(op, shown, e))
}

pub fn replace(p: &Path, partial: &str, shown: &str, bytes: &[u8]) -> Result<(), AdapterError> {
    use std::os::unix::fs::FileExt;
    let fail = |e| super::io_error("replace", shown, e);
    match std::fs::OpenOptions::new().write(true).open(host_path(p)) {
        Ok(file) => {
            let old = file.metadata().map_err(fail)?.len();
            if let Some(change) = super::over_in_place(bytes, old) {
                file.write_all_at(&change.write, 0).map_err(fail)?;
                if let Some(len) = change.cut_to {
                    file.set_len(len).map_err(fail)?;
                }
                return Ok(());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let partial = host_path(&p.with_file_name(partial));
    std::fs::write(&partial, bytes).map_err(fail)?;
    std::fs::rename(&partial, host_path(p)).map_err(fail)
}
