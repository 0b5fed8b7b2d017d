//! `/records/journal.jsonl`: one line for every write that changed
//! something, exactly one, whatever point a process was killed at.
//!
//! A write and its journal line are two files, and no file system makes
//! two appends one. So the write is the fact, and it says where its line
//! belongs: each record (and each message line) carries the journal's
//! length just before it was written (`journal_at`). After the write comes
//! the line, then a marker (`<id>.journaled`, `<id>.messages.journaled`)
//! naming the last write that is journaled. Whoever touches the record
//! next settles it first: a marker that names its last write means done
//! (one small read); any other means a stop came between the write and the
//! marker, and the journal from `journal_at` on is searched for the line,
//! which is appended only if it is not there. So a line is never missing
//! once the record is touched again (the resumed run always observes it),
//! and never written twice.

use handoff_sdk::{AdapterError, fs};
use serde::{Deserialize, Serialize};

pub const JOURNAL: &str = "/records/journal.jsonl";

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

impl Entry {
    /// What the marker holds once this entry is journaled.
    fn token(&self) -> String {
        match self.revision {
            Some(r) => format!("{} {r}", self.key),
            None => self.key.clone(),
        }
    }
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

/// Make sure `entry`, a write already made whose mark was `at`, has its
/// one line in the journal; `marker` is the file that remembers it has.
pub fn settle(entry: &Entry, at: u64, marker: &str) -> Result<(), AdapterError> {
    let token = entry.token();
    match fs::read(marker) {
        Ok(held) if held == token.as_bytes() => return Ok(()),
        Ok(_) | Err(AdapterError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let after = match fs::read_after(JOURNAL, at) {
        Ok(bytes) => bytes,
        Err(AdapterError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let journaled = after
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Entry>(line).ok())
        .any(|line| line == *entry);
    if !journaled {
        let line = serde_json::to_string(entry)
            .map_err(|e| AdapterError::Invalid(format!("journal: {e}")))?;
        fs::append(JOURNAL, format!("{line}\n").as_bytes())?;
    }
    fs::write(marker, token.as_bytes())
}

/// As [`settle`], for a call that only reads: an instance whose directory
/// is mounted read-only cannot write the journal, and leaves the settling
/// to the next instance that can.
pub fn settle_if_writable(entry: &Entry, at: u64, marker: &str) -> Result<(), AdapterError> {
    match settle(entry, at, marker) {
        Err(AdapterError::Denied(_)) => Ok(()),
        done => done,
    }
}
