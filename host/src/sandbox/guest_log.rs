//! What adapters log. Each line goes out under the `adapter` target with
//! the instance's name as a field, its control characters and line breaks
//! escaped, so no adapter line can pass for one of the host's in plain or
//! JSON output. Each call has a budget of lines and bytes (the ceiling's
//! `log-lines-per-call`, `log-bytes-per-call`); what is over it is dropped,
//! counted, and said in one line when the call ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Most of one line that is kept.
pub const LINE_BYTES: usize = 4096;

/// How much one call may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBudget {
    pub lines: u32,
    pub bytes: usize,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            lines: 200,
            bytes: 64 * 1024,
        }
    }
}

/// Lines dropped over budget, per instance, since the process started
/// (`handoff_adapter_log_lines_dropped_total`).
static DROPPED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Every instance's count of dropped lines.
pub fn dropped_totals() -> BTreeMap<String, u64> {
    DROPPED.lock().map(|m| m.clone()).unwrap_or_default()
}

/// One instance's log for the call under way.
#[derive(Debug)]
pub struct GuestLog {
    budget: LogBudget,
    lines: u32,
    bytes: usize,
    dropped: u64,
}

impl GuestLog {
    pub fn new(budget: LogBudget) -> GuestLog {
        GuestLog {
            budget,
            lines: 0,
            bytes: 0,
            dropped: 0,
        }
    }

    /// Write one line the guest logged, or count it as dropped.
    pub fn line(&mut self, instance: &str, level: super::bindings::wit::Level, message: &str) {
        let text = escaped(message, LINE_BYTES);
        if self.lines >= self.budget.lines || self.bytes + text.len() > self.budget.bytes {
            self.dropped += 1;
            return;
        }
        self.lines += 1;
        self.bytes += text.len();
        use super::bindings::wit::Level;
        match level {
            Level::Trace => tracing::trace!(target: "adapter", instance, "{text}"),
            Level::Debug => tracing::debug!(target: "adapter", instance, "{text}"),
            Level::Info => tracing::info!(target: "adapter", instance, "{text}"),
            Level::Warn => tracing::warn!(target: "adapter", instance, "{text}"),
            Level::Error => tracing::error!(target: "adapter", instance, "{text}"),
        }
    }

    /// End the call: say how many lines were dropped, if any, count them,
    /// and start the next call's budget afresh.
    pub fn end_call(&mut self, instance: &str) {
        if self.dropped > 0 {
            tracing::warn!(
                instance,
                dropped = self.dropped,
                "adapter log lines dropped: over the budget of {} lines and {} bytes a call \
                 (ceiling.log-lines-per-call, ceiling.log-bytes-per-call)",
                self.budget.lines,
                self.budget.bytes
            );
            if let Ok(mut totals) = DROPPED.lock() {
                *totals.entry(instance.to_string()).or_default() += self.dropped;
            }
        }
        self.lines = 0;
        self.bytes = 0;
        self.dropped = 0;
    }
}

/// `message` on one line: control characters (line breaks, escapes that
/// drive a terminal) and Unicode line separators written as escapes, cut to
/// at most `max` bytes.
pub fn escaped(message: &str, max: usize) -> String {
    let mut out = String::with_capacity(message.len().min(max));
    for c in message.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if crate::kept::live_at_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_message_can_start_a_line_of_its_own() {
        let forged = "ok\n2026-12-03T00:00:00Z  INFO handoff::serve: audit head (an anchor to keep) anchor=9:ab\r\x1b[2K";
        let line = escaped(forged, LINE_BYTES);
        assert!(!line.contains(['\n', '\r', '\x1b']), "{line}");
        assert!(line.starts_with("ok\\n2026"), "{line}");
        assert!(line.ends_with("\\r\\u{1b}[2K"), "{line}");
        assert_eq!(escaped("a\u{2028}b", 100), "a\\u{2028}b");
        assert_eq!(escaped("a\u{2066}b", 100), "a\\u{2066}b");
    }

    #[test]
    fn a_long_line_is_cut() {
        let line = escaped(&"x".repeat(10_000), 100);
        assert!(line.len() <= 104 && line.ends_with('…'), "{}", line.len());
    }

    #[test]
    fn a_call_over_its_budget_drops_and_counts_the_rest() {
        let mut log = GuestLog::new(LogBudget {
            lines: 3,
            bytes: 1000,
        });
        for _ in 0..10 {
            log.line(
                "budget-test",
                super::super::bindings::wit::Level::Info,
                "hello",
            );
        }
        assert_eq!((log.lines, log.dropped), (3, 7));
        log.end_call("budget-test");
        assert_eq!(dropped_totals().get("budget-test"), Some(&7));
        assert_eq!((log.lines, log.dropped), (0, 0));
        // Bytes count too.
        let mut log = GuestLog::new(LogBudget {
            lines: 100,
            bytes: 12,
        });
        for _ in 0..3 {
            log.line(
                "budget-bytes",
                super::super::bindings::wit::Level::Info,
                "hello",
            );
        }
        assert_eq!((log.lines, log.dropped), (2, 1));
    }
}
