//! `/records/journal.jsonl`: one line for every write that changed
//! something, exactly one, whatever point a process was killed at.
//!
//! A write and its journal line are two files, and no file system makes
//! two appends one. So the write is the fact, and it says where its line
//! belongs: each record (and each message line) carries the journal's
//! length taken just before it was written (`journal_at`), and its line is
//! appended right after it. The line therefore lies just past that point,
//! behind at most the lines other instances appended during that one call.
//! Whoever touches the record next settles it first: the [`WINDOW`] of the
//! journal from `journal_at` on is searched for the line, which is
//! appended only when it is not there (a stop came between the write and
//! its line). So a line is never missing once the record is touched again
//! (a resumed run always observes it), and never written twice.

use handoff_sdk::{AdapterError, fs};
use serde::{Deserialize, Serialize};

pub const JOURNAL: &str = "/records/journal.jsonl";

/// How much of the journal after a write's mark is searched for its line:
/// far more than other instances can append during one call (a line is
/// about 150 bytes), and a bounded read however long the journal grew
/// since.
const WINDOW: u64 = 256 * 1024;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    pub id: String,
    pub action: String,
    pub key: String,
    /// The record's revision after the write (none for a message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// Where the next write's line will be: at or after the journal's length
/// now. Taken before the write.
pub fn mark() -> Result<u64, AdapterError> {
    match fs::len(JOURNAL) {
        Ok(n) => Ok(n),
        Err(AdapterError::NotFound(_)) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Journal `entry`, a write this call has just made (one call per record
/// at a time, so no line of it can be there yet).
pub fn record(entry: &Entry) -> Result<(), AdapterError> {
    let line =
        serde_json::to_string(entry).map_err(|e| AdapterError::Invalid(format!("journal: {e}")))?;
    fs::append(JOURNAL, format!("{line}\n").as_bytes())
}

/// Make sure `entry`, a write made earlier whose mark was `at`, has its
/// one line in the journal. A call that only reads (`writable` false) may
/// find its directory mounted read-only: it then leaves the settling to
/// the next instance that can write.
pub fn settle(entry: &Entry, at: u64, writable: bool) -> Result<(), AdapterError> {
    let after = match fs::read_after(JOURNAL, at, WINDOW) {
        Ok(bytes) => bytes,
        Err(AdapterError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    // Only a line holding the key can be the one: the others are not
    // parsed (most of the window, for a record written long ago).
    let key = entry.key.as_bytes();
    let journaled = after
        .split(|b| *b == b'\n')
        .filter(|line| key.is_empty() || line.windows(key.len()).any(|w| w == key))
        .filter_map(|line| serde_json::from_slice::<Entry>(line).ok())
        .any(|line| line == *entry);
    if journaled {
        return Ok(());
    }
    match record(entry) {
        Err(AdapterError::Denied(_)) if !writable => Ok(()),
        done => done,
    }
}
