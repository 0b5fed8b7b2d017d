//! How a command that failed says so: the error and its causes, bounded
//! and inert, with what to do where handoff knows it (a full disk, a
//! damaged store); the parser's own refusals printed the same way; and
//! nothing at all when the reader of the output went away.

use super::exit;
use std::process::ExitCode;

/// `err` told on standard error, and the exit code it ends with.
pub(super) fn told(err: &anyhow::Error) -> ExitCode {
    // The reader of the output went away (`audit export | head`): as for
    // `say!`, nothing to report.
    if reader_gone(err) {
        return ExitCode::from(exit::OK);
    }
    let mut lines = told_lines(err).into_iter();
    if let Some(first) = lines.next() {
        eprintln!("error: {first}");
    }
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
    if out_of_space(err) {
        eprintln!(
            "  what to do: the file system holding the store (or its log) is full; free \
             space there, then `handoff resume` finishes any run this one left unfinished \
             (nothing past its last commit was written)"
        );
    }
    if damaged(err) {
        eprintln!(
            "  what to do: the file at the store's path is damaged, or not a store: check \
             the path (--store, HANDOFF_STORE, [store] path); if it is the store, move it \
             (with its -wal and -shm files) aside to keep for inspection, then `handoff \
             store restore BACKUP` from the newest backup"
        );
    }
    ExitCode::from(exit::ERROR)
}

/// The error, then each cause that what was said before it does not
/// already quote (many errors end with their source's text, as
/// "cannot open the store at X: unable to open database file" does),
/// each bounded and inert.
fn told_lines(err: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !lines.iter().any(|line| line.contains(&text)) {
            lines.push(text);
        }
    }
    lines.iter().map(|line| said(line)).collect()
}

/// A command line clap could not take, or a request for help or the
/// version. Its error repeats what it was given (`invalid value '…' for
/// '--by'`), so it is printed as every error is: plain, bounded, inert.
pub(super) fn usage(wrong: &clap::Error) -> ExitCode {
    if !wrong.use_stderr() {
        // `--help`, `--version`: the text is ours.
        let _ = wrong.print();
        return ExitCode::from(exit::OK);
    }
    let mut rendered = wrong.render().to_string();
    // A long value given (a name, a path) is shown by its start, so that
    // what is wrong with it, which clap writes after it, is still read.
    if let Some(clap::error::ContextValue::String(value)) =
        wrong.get(clap::error::ContextKind::InvalidValue)
        && value.len() > SHOWN_VALUE_BYTES
    {
        rendered = rendered.replace(
            value.as_str(),
            &crate::kept::shortened(value, SHOWN_VALUE_BYTES),
        );
    }
    eprint!("{}", said(&rendered));
    ExitCode::from(u8::try_from(wrong.exit_code()).unwrap_or(exit::USAGE))
}

/// Whether `err` is the broken pipe of output nobody reads any more.
fn reader_gone(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Whether `err` comes of a database file SQLite found damaged (or never
/// a database at all).
fn damaged(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    })
}

/// The most of a value given on the command line that a usage error
/// repeats.
const SHOWN_VALUE_BYTES: usize = 256;

/// The most of one error (or cause) printed. Ours are a few lines; one
/// that repeats what it was given (a run id, a value from a file) is cut.
const SAID_BYTES: usize = 4096;

/// An error as printed at a terminal: at most [`SAID_BYTES`], its lines
/// kept and anything else that would drive the terminal (an escape
/// sequence, a bidirectional override from an id or a file) written out.
fn said(error: &str) -> String {
    crate::kept::inert_lines(&crate::kept::shortened(error, SAID_BYTES))
}

/// Whether `err` comes of a full disk: SQLite's "full", the shared-memory
/// file it could not grow (which a full disk is why of), or the file
/// system's own.
fn out_of_space(err: &anyhow::Error) -> bool {
    use rusqlite::ffi;
    err.chain().any(|cause| {
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>()
        {
            return e.code == rusqlite::ErrorCode::DiskFull
                || e.extended_code == ffi::SQLITE_IOERR_SHMSIZE;
        }
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> anyhow::Error {
        let e = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        anyhow::Error::from(crate::store::StoreError::Sql(e)).context("opening the store")
    }

    #[test]
    fn a_cause_its_error_already_quotes_is_not_said_again() {
        let inner = anyhow::anyhow!("unable to open database file: /tmp");
        let err = inner
            .context("cannot open the store at /tmp: unable to open database file: /tmp")
            .context("opening the store at /tmp");
        assert_eq!(
            told_lines(&err),
            [
                "opening the store at /tmp",
                "cannot open the store at /tmp: unable to open database file: /tmp"
            ]
        );
        // A cause that says something new is kept.
        let err = anyhow::anyhow!("disk I/O error").context("reading the run's steps");
        assert_eq!(told_lines(&err).len(), 2);
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_store_errors() {
        assert!(out_of_space(&sqlite(ffi::SQLITE_FULL)));
        assert!(out_of_space(&sqlite(ffi::SQLITE_IOERR_SHMSIZE)));
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(out_of_space(&anyhow::Error::from(io).context("writing")));
        assert!(!out_of_space(&sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE)));
        assert!(!out_of_space(&sqlite(ffi::SQLITE_IOERR_WRITE)));
        assert!(!out_of_space(&anyhow::anyhow!("database or disk is full")));
    }
}
