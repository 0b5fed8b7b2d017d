//! Files handoff reads whole (configuration, policies, manifests,
//! components, events, contexts, secrets, certificates, anchors), read
//! with a bound (events and contexts at the service's `max-body-bytes`): a file past it is refused with its limit named, before
//! more than the limit is read, so a wrong path (`/dev/zero`, a disk image)
//! or a hostile file cannot take the process's memory.

use std::io::{self, Read};
use std::path::Path;

/// The most a text file of settings may hold: `handoff.toml`, a policy,
/// an `adapter.toml`.
pub const SETTINGS_BYTES: u64 = 1024 * 1024;

/// The most an adapter's component may be.
pub const COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// The most a secret read from a file may be (a token, a password, a key).
pub const SECRET_BYTES: u64 = 64 * 1024;

/// The most a PEM file of CA certificates may be.
pub const CERTIFICATES_BYTES: u64 = 4 * 1024 * 1024;

/// The most a file of audit anchors may be (a line of ~80 bytes each).
pub const ANCHORS_BYTES: u64 = 64 * 1024 * 1024;

/// `path`'s bytes, if it holds at most `max`; else an error of kind
/// [`io::ErrorKind::FileTooLarge`] that names the limit.
pub fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_from_at_most(file, size, max)
}

/// `path` opened to be read. A named pipe that no one writes to would hold
/// the open forever: it is opened without waiting, so it reads as empty,
/// and then read as any file (a pipe being written, as a shell's `<(...)`
/// gives, is read to its end).
fn open(path: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

/// What `reader` holds (about `size` bytes, as its metadata says), if at
/// most `max`; else [`too_large`].
pub fn read_from_at_most(reader: impl Read, size: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(max)).unwrap_or(0));
    reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(bytes)
}

/// [`read_at_most`], as UTF-8 text.
pub fn read_text_at_most(path: &Path, max: u64) -> io::Result<String> {
    as_text(read_at_most(path, max)?)
}

/// [`read_input_at_most`], as UTF-8 text.
pub fn read_text_input_at_most(path: &Path, max: u64) -> io::Result<String> {
    as_text(read_input_at_most(path, max)?)
}

fn as_text(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The path that names standard input, for an event, a context or anchors.
pub const STANDARD_INPUT: &str = "-";

/// [`read_at_most`] of `path`, or of standard input when it is `-`.
pub fn read_input_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    if path == Path::new(STANDARD_INPUT) {
        read_from_at_most(io::stdin().lock(), 0, max)
    } else {
        read_at_most(path, max)
    }
}

/// An input path as messages name it: `-` is standard input.
pub fn input_name(path: &Path) -> String {
    if path == Path::new(STANDARD_INPUT) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// An event or context file (or standard input, for `-`), at most `max`
/// bytes: the service's `max-body-bytes`, so that a file is refused where
/// the service would refuse the same body.
pub fn read_input(path: &Path, what: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    read_input_at_most(path, max as u64).with_context(|| {
        format!(
            "reading the {what} from {} (at most serve.max-body-bytes = {max})",
            input_name(path)
        )
    })
}

/// [`read_input`], parsed as JSON (a context), its error naming where the
/// JSON breaks.
pub fn read_json(path: &Path, what: &str, max: usize) -> anyhow::Result<serde_json::Value> {
    let bytes = read_input(path, what, max)?;
    crate::model::json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: the {what} is not JSON handoff can read (line {}, column {}): {e}",
            input_name(path),
            e.line(),
            e.column()
        )
    })
}

/// The error for a file past `max` bytes.
fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than {max} bytes, the most it may be"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_up_to_the_limit_is_read_and_one_past_it_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_at_most(&path, 5).unwrap(), b"12345");
        let e = read_at_most(&path, 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 4 bytes, the most it may be");
    }

    #[test]
    fn an_endless_file_is_refused_after_the_limit() {
        let e = read_at_most(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn a_named_pipe_no_one_writes_to_reads_as_empty_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("p");
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mkfifoat(rustix::fs::CWD, &pipe, mode).unwrap();
        // Before, the open waited for a writer that never came: the bound
        // here is that failure's, not a wait for the answer.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(read_at_most(&pipe, 1024).unwrap()));
        let read = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(read, Ok(Vec::new()));
    }

    #[test]
    fn a_pipe_being_written_is_read_to_its_end() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // What a shell's `<(...)` names: /dev/fd/N of a pipe.
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"one line\n").unwrap();
        drop(writer);
        let path = format!("/proc/self/fd/{}", reader.as_raw_fd());
        assert_eq!(read_at_most(Path::new(&path), 1024).unwrap(), b"one line\n");
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let e = read_text_at_most(&path, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
