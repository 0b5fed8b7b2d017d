//! A channel: a record messages are published to. Its message log holds
//! one line per message, each with its key; its sent log indexes the keys
//! (see the crate's documentation for how a stop between the two is
//! finished).

use super::{entry, journal, path};
use handoff_sdk::sent::SentLog;
use handoff_sdk::{AdapterError, RecordRef, fs};
use serde::{Deserialize, Serialize};

/// One line of a channel's message log.
#[derive(Serialize, Deserialize)]
pub(crate) struct Published {
    pub subject: String,
    pub links: Vec<String>,
    pub key: String,
    /// The journal's length just before the line was written (absent in
    /// lines written before the journal was made exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_at: Option<u64>,
}

/// The longest message line read back (the first read is 4 KiB, and each
/// next one four times as long, up to this).
const MAX_LINE: u64 = 1024 * 1024;

/// A channel: where messages published to a record go.
pub(crate) struct Channel {
    pub messages: String,
    pub log: SentLog,
}

impl Channel {
    /// The channel of `record` (its path is checked first).
    pub fn of(record: &RecordRef) -> Result<Channel, AdapterError> {
        path(record)?;
        let stem = format!("/records/{}/{}", record.kind, record.id);
        Ok(Channel {
            messages: format!("{stem}.messages.jsonl"),
            log: SentLog::new(&format!("/records/{}", record.kind), &record.id)?,
        })
    }

    /// The newest message line, if any.
    pub fn last(&self) -> Result<Option<Published>, AdapterError> {
        let mut budget = 4096;
        loop {
            let tail = match fs::read_tail(&self.messages, budget) {
                Ok(tail) => tail,
                Err(AdapterError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let text = tail.bytes.strip_suffix(b"\n").unwrap_or(&tail.bytes);
            match text.iter().rposition(|b| *b == b'\n') {
                Some(at) => return Ok(parse_line(&text[at + 1..])),
                None if tail.whole => return Ok(parse_line(text)),
                // A line this adapter writes is a few KiB: this one is not
                // a message, and reading on would only fill the memory.
                None if budget >= MAX_LINE => {
                    return Err(AdapterError::Invalid(format!(
                        "{}: its newest line is over {MAX_LINE} bytes, not a message line \
                         this adapter wrote; a person must look at the log",
                        self.messages
                    )));
                }
                // The read began inside the last line: read more.
                None => budget *= 4,
            }
        }
    }

    /// Finish what a stop may have left of the newest publish: its key
    /// indexed, its journal line written. `writable` is false for a call
    /// that only reads (it settles only when it may write).
    pub fn settle(
        &self,
        record: &RecordRef,
        writable: bool,
    ) -> Result<Option<String>, AdapterError> {
        let Some(last) = self.last()? else {
            return Ok(None);
        };
        if writable && !self.log.contains(&last.key)? {
            self.log.record(&last.key)?;
        }
        if let Some(at) = last.journal_at {
            let entry = entry(record, "publish", &last.key, None);
            journal::settle(&entry, at, writable)?;
        }
        Ok(Some(last.key))
    }
}

fn parse_line(line: &[u8]) -> Option<Published> {
    serde_json::from_slice(line).ok()
}
