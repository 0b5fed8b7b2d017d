//! A log of idempotency keys already delivered, for targets that cannot be
//! read back (a mail server, a webhook receiver).
//!
//! One file per channel under a granted directory, one key per line. An
//! adapter delivers through [`SentLog::deliver`], which skips a key already
//! delivered, records the key once the target took it, and reports
//! [`SentLog::recent`] as the channel's applied keys.
//!
//! A delivery is marked before it goes out (`<channel>.sending/`, one small
//! file per key under way), so the one moment a log cannot record, after
//! the target took the key and before its line is written, is not taken
//! for "never sent": a process killed there, or a target that took the
//! message and never answered, leaves the mark, and no later try delivers
//! again. It answers `conflict` instead, saying the key may have been
//! delivered, and the run hands that to a person. Only a try in a step
//! that person resumed delivers it again ([`crate::person_resumed`], which
//! the host answers from its store: a retry or a resume after a crash is
//! not their decision). Each delivery therefore reaches its target at most
//! once unless a person decides otherwise.
//!
//! Beside the log, `<channel>.index/` spreads the same keys over 256
//! bucket files (`00`..`ff`, by a fixed hash of the key), so asking whether
//! a key was ever delivered reads one bucket, 1/256 of the history, instead
//! of the whole log (which made every delivery slower than the last). A log
//! written before the index existed is indexed once, on the first question;
//! `.complete` in the directory says that has been done. A key is logged
//! before it is indexed: a stop between the two leaves it in the log only,
//! where it still counts among the recent keys (the channel reads as
//! delivered, so the step is not applied again); asked about after it has
//! left that window, its delivery mark (removed only after both) still
//! keeps it from being delivered twice.

use crate::{AdapterError, fs};

mod deliver;

pub use deliver::Delivery;

/// The longest line (a key and its line break) a log holds; bounds how
/// much of its end [`SentLog::recent`] reads. The host's keys are 68 bytes.
const MAX_LINE: u64 = 256;
const TYPICAL_LINE: u64 = 72;

/// The delivered keys of one channel.
#[derive(Debug, Clone)]
pub struct SentLog {
    path: String,
    /// The directory of bucket files.
    index: String,
}

/// In the index directory: every key of the log is in its bucket.
const COMPLETE: &str = ".complete";

/// FNV-1a (64-bit) of a key's bytes. Part of the on-disk format:
/// changing it would hide indexed keys and delivery marks.
fn fnv1a(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The bucket a key belongs in: the low byte of its hash.
fn bucket_name(key: &str) -> String {
    format!("{:02x}", fnv1a(key) & 0xff)
}

/// A file's bytes, or none if it does not exist.
fn read_or_empty(path: &str) -> Result<Vec<u8>, AdapterError> {
    match fs::read(path) {
        Err(AdapterError::NotFound(_)) => Ok(Vec::new()),
        read => read,
    }
}

/// Whether `text`, a file of lines, has `key` as one of them.
fn has_line(text: &[u8], key: &str) -> bool {
    text.split(|b| *b == b'\n')
        .any(|line| line == key.as_bytes())
}

impl SentLog {
    /// The log for `channel` in the mounted directory `dir` (e.g. `/sent`).
    pub fn new(dir: &str, channel: &str) -> Result<SentLog, AdapterError> {
        let safe = !channel.is_empty()
            && !channel.starts_with('.')
            && channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            return Err(AdapterError::Invalid(format!(
                "channel {channel:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        Ok(SentLog {
            path: format!("{dir}/{channel}.sent"),
            index: format!("{dir}/{channel}.index"),
        })
    }

    /// Whether `key` was ever delivered on this channel (a delivery must
    /// never be repeated, however old).
    pub fn contains(&self, key: &str) -> Result<bool, AdapterError> {
        if has_line(&read_or_empty(&self.in_index(&bucket_name(key)))?, key) {
            return Ok(true);
        }
        if fs::try_exists(&self.in_index(COMPLETE))? {
            return Ok(false);
        }
        // A log from before the index: put each of its keys in its bucket,
        // then say so. A stop half-way only means doing it again (a key
        // twice in a bucket is still one key).
        let log = read_or_empty(&self.path)?;
        fs::create_dir_all(&self.index)?;
        for line in String::from_utf8_lossy(&log).lines() {
            if !line.is_empty() {
                self.add(&bucket_name(line), line)?;
            }
        }
        fs::write(&self.in_index(COMPLETE), b"")?;
        Ok(has_line(&log, key))
    }

    fn in_index(&self, name: &str) -> String {
        format!("{}/{name}", self.index)
    }

    /// Append `key` to its bucket: one line, one append, so a concurrent
    /// appender's line never lands inside it. The directory is made only
    /// when the append finds it missing, not looked for on every record.
    fn add(&self, bucket: &str, key: &str) -> Result<(), AdapterError> {
        fs::append_making_dir(&self.in_index(bucket), format!("{key}\n").as_bytes())
    }

    /// The latest `window` keys, oldest first. Only the end of the log is
    /// read, so a channel's history does not slow every call down.
    pub fn recent(&self, window: usize) -> Result<Vec<String>, AdapterError> {
        // Sized for the host's keys first; longer ones need a second read.
        for line in [TYPICAL_LINE, MAX_LINE] {
            let budget = (window as u64 + 1).saturating_mul(line);
            let tail = match fs::read_tail(&self.path, budget) {
                Ok(tail) => tail,
                Err(AdapterError::NotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&tail.bytes);
            let mut lines: Vec<&str> = text.lines().collect();
            if !tail.whole && !lines.is_empty() {
                // The read began inside the log: its first line may be cut.
                lines.remove(0);
            }
            if tail.whole || lines.len() >= window || line == MAX_LINE {
                let skip = lines.len().saturating_sub(window);
                return Ok(lines[skip..].iter().map(|k| k.to_string()).collect());
            }
        }
        unreachable!("the last pass returns")
    }

    /// Record a delivered key. [`SentLog::deliver`] does, once the target
    /// took it.
    pub fn record(&self, key: &str) -> Result<(), AdapterError> {
        fits_a_line(key)?;
        // The log first: a stop between the two leaves a key the log shows
        // as recent (so the channel reads as delivered) rather than an
        // indexed key the log never got.
        fs::append(&self.path, format!("{key}\n").as_bytes())?;
        self.add(&bucket_name(key), key)
    }
}

/// A key a log line can hold.
fn fits_a_line(key: &str) -> Result<(), AdapterError> {
    if key.contains(['\n', '\r']) {
        return Err(AdapterError::Invalid(
            "a key cannot contain a line break".into(),
        ));
    }
    if key.len() as u64 >= MAX_LINE {
        return Err(AdapterError::Invalid(format!(
            "a key of {} bytes is longer than a sent log keeps ({} at most)",
            key.len(),
            MAX_LINE - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
