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

    fn keys(&self) -> Result<Vec<String>, AdapterError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().map(str::to_string).collect()),
            Err(AdapterError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` was delivered on this channel.
    pub fn contains(&self, key: &str) -> Result<bool, AdapterError> {
        Ok(self.keys()?.iter().any(|k| k == key))
    }

    /// The latest `window` keys, oldest first.
    pub fn recent(&self, window: usize) -> Result<Vec<String>, AdapterError> {
        let mut keys = self.keys()?;
        let skip = keys.len().saturating_sub(window);
        Ok(keys.split_off(skip))
    }

    /// Record a delivered key.
    pub fn record(&self, key: &str) -> Result<(), AdapterError> {
        if key.contains(['\n', '\r']) {
            return Err(AdapterError::Invalid(
                "a key cannot contain a line break".into(),
            ));
        }
        fs::append(&self.path, format!("{key}\n").as_bytes())
    }
}
