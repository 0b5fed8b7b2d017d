//! A log of idempotency keys already delivered, for targets that cannot be
//! read back (a mail server, a webhook receiver).
//!
//! One file per channel under a granted directory, one key per line. An
//! adapter checks [`SentLog::contains`] before delivering, records the key
//! right after the target accepted it, and reports [`SentLog::recent`] as the
//! channel's applied keys. A crash between the delivery and the record can
//! still deliver twice; the target receives the same key both times (a
//! `Message-ID`, a `webhook-id`), so it can recognise the repeat.

use crate::{AdapterError, fs};

/// The longest line (a key and its line break) a log holds; bounds how
/// much of its end [`SentLog::recent`] reads. The host's keys are 68 bytes.
const MAX_LINE: u64 = 256;
const TYPICAL_LINE: u64 = 72;

/// The delivered keys of one channel.
#[derive(Debug, Clone)]
pub struct SentLog {
    path: String,
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
        })
    }

    /// Whether `key` was delivered on this channel. The whole log is read
    /// (a delivery must never be repeated, however old), but scanned in
    /// place: a long history costs one read, not a string per key.
    pub fn contains(&self, key: &str) -> Result<bool, AdapterError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(bytes
                .split(|b| *b == b'\n')
                .any(|line| line == key.as_bytes())),
            Err(AdapterError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
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

    /// Record a delivered key.
    pub fn record(&self, key: &str) -> Result<(), AdapterError> {
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
        fs::append(&self.path, format!("{key}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[test]
    fn recent_reads_the_latest_keys_of_a_long_log_and_contains_sees_them_all() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-sent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Harness::new().dir("sent", &dir);
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            assert!(log.recent(5).unwrap().is_empty(), "no log yet");
            for i in 0..2_000 {
                log.record(&format!("hk1-{i:064}")).unwrap();
            }
            let recent = log.recent(3).unwrap();
            let expected: Vec<String> = (1_997..2_000).map(|i| format!("hk1-{i:064}")).collect();
            assert_eq!(recent, expected);
            assert_eq!(log.recent(5_000).unwrap().len(), 2_000);
            assert!(log.contains(&format!("hk1-{:064}", 0)).unwrap());
            let long = "k".repeat(300);
            assert!(matches!(log.record(&long), Err(AdapterError::Invalid(_))));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
