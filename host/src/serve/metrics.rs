//! `/metrics` in the Prometheus text format.
//!
//! Two kinds of numbers. What happened at the door (requests refused and
//! why, events accepted, time from request to durable acknowledgement, runs
//! in flight) is counted in memory by this process. What the store knows
//! (runs by outcome, duplicates suppressed, follow-ups by reason, open, and
//! how long they took to be acknowledged and resolved, capability denials)
//! is kept by the store's own triggers as it happens (its `counters`
//! table), so it survives restarts, matches `handoff runs list`, and a
//! scrape reads a few rows instead of scanning the store's history.

use crate::pipeline::Timed;
use crate::store::Store;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets: from half a
/// millisecond (a local file call) up to the ceiling's largest call
/// timeout (`max-call-timeout-ms`, 60 s by default), so a call that ran to
/// its limit lands in a bucket of its own rather than only in `+Inf`.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    total: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            braces(labels),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {total}", braces(labels));
    }
}

/// The in-memory counters of one `handoff serve` process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Refused requests by reason (`signature-mismatch`, `too-large`...).
    refused: Mutex<BTreeMap<String, u64>>,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    /// Runs created by reconciliation (decisions no event brought).
    pub reconciled: AtomicU64,
    /// From the request's arrival to the durable store's commit.
    pub intake_latency: Histogram,
    /// Per adapter: one step, observe to confirmed.
    steps: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// Per adapter and call: a fresh instance, or one call into it.
    calls: Mutex<BTreeMap<(String, &'static str), std::sync::Arc<Histogram>>>,
    /// The per-adapter limits shared by the workers (`[adapters.X]
    /// concurrency`) and the calls waiting at them.
    throttle: std::sync::Arc<crate::pipeline::throttle::Throttle>,
}

impl Metrics {
    /// Counters at zero, reporting the limits of `throttle`.
    pub fn with_throttle(throttle: std::sync::Arc<crate::pipeline::throttle::Throttle>) -> Metrics {
        Metrics {
            throttle,
            ..Metrics::default()
        }
    }

    pub fn refuse(&self, reason: &str) {
        *self
            .refused
            .lock()
            .unwrap()
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub fn refused(&self, reason: &str) -> u64 {
        self.refused
            .lock()
            .unwrap()
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// Count one timing the engine took.
    pub fn timed(&self, what: Timed<'_>, took: Duration) {
        let histogram = match what {
            Timed::Step { adapter } => self
                .steps
                .lock()
                .unwrap()
                .entry(adapter.to_string())
                .or_default()
                .clone(),
            Timed::Call { adapter, call } => self
                .calls
                .lock()
                .unwrap()
                .entry((adapter.to_string(), call))
                .or_default()
                .clone(),
        };
        histogram.observe(took);
    }

    /// The whole exposition: this process's counters, then the store's.
    pub fn render(&self, store: &Store) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "handoff_build_info",
            "gauge",
            "The running handoff: its version, and the adapter contract it speaks.",
        );
        let _ = writeln!(
            out,
            "handoff_build_info{{version=\"{}\",wit=\"{}@{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::model::contract::WIT_PACKAGE,
            crate::model::WIT_VERSION,
        );
        process_metrics(&mut out);
        family(
            &mut out,
            "handoff_requests_refused_total",
            "counter",
            "Requests refused at intake, by reason.",
        );
        for (reason, n) in self.refused.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "handoff_requests_refused_total{{reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        let gauges: [(&str, &str, &str, &AtomicU64); 5] = [
            (
                "handoff_events_accepted_total",
                "counter",
                "Events stored with a new run by this process.",
                &self.accepted,
            ),
            (
                "handoff_events_duplicate_total",
                "counter",
                "Deliveries recognised as duplicates by this process.",
                &self.duplicates,
            ),
            (
                "handoff_runs_queued",
                "gauge",
                "Accepted runs waiting for a worker.",
                &self.queued,
            ),
            (
                "handoff_runs_in_flight",
                "gauge",
                "Runs being driven now.",
                &self.in_flight,
            ),
            (
                "handoff_reconciled_runs_total",
                "counter",
                "Runs created by reconciliation polling.",
                &self.reconciled,
            ),
        ];
        for (name, kind, help, value) in gauges {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        family(
            &mut out,
            "handoff_intake_seconds",
            "histogram",
            "From request to durable acknowledgement.",
        );
        self.intake_latency
            .render(&mut out, "handoff_intake_seconds", "");
        family(
            &mut out,
            "handoff_step_seconds",
            "histogram",
            "One step (observe, apply, confirm), by adapter.",
        );
        for (adapter, h) in self.steps.lock().unwrap().iter() {
            h.render(
                &mut out,
                "handoff_step_seconds",
                &format!("adapter=\"{}\"", label(adapter)),
            );
        }
        family(
            &mut out,
            "handoff_adapter_call_seconds",
            "histogram",
            "A fresh instance for a run (call=\"instantiate\"), or one call into it, by adapter.",
        );
        for ((adapter, call), h) in self.calls.lock().unwrap().iter() {
            h.render(
                &mut out,
                "handoff_adapter_call_seconds",
                &format!("adapter=\"{}\",call=\"{}\"", label(adapter), label(call)),
            );
        }
        family(
            &mut out,
            "handoff_adapter_concurrency_limit",
            "gauge",
            "Calls an adapter instance may have in flight at once ([adapters.X] concurrency).",
        );
        for (adapter, limit, _) in self.throttle.limits() {
            let _ = writeln!(
                out,
                "handoff_adapter_concurrency_limit{{adapter=\"{}\"}} {limit}",
                label(adapter)
            );
        }
        family(
            &mut out,
            "handoff_adapter_calls_peak",
            "gauge",
            "The most calls an adapter instance with a limit had in flight at once since the start.",
        );
        for (adapter, peak) in self.throttle.peaks() {
            let _ = writeln!(
                out,
                "handoff_adapter_calls_peak{{adapter=\"{}\"}} {peak}",
                label(adapter)
            );
        }
        family(
            &mut out,
            "handoff_adapter_calls_waiting",
            "gauge",
            "Calls waiting for room at an adapter's concurrency limit now.",
        );
        for (adapter, _, waiting) in self.throttle.limits() {
            let _ = writeln!(
                out,
                "handoff_adapter_calls_waiting{{adapter=\"{}\"}} {waiting}",
                label(adapter)
            );
        }
        family(
            &mut out,
            "handoff_adapter_calls_waiting_for_record",
            "gauge",
            "Calls waiting for their record's turn now ([adapters.X] one-call-per-record).",
        );
        for (adapter, waiting) in self.throttle.record_waits() {
            let _ = writeln!(
                out,
                "handoff_adapter_calls_waiting_for_record{{adapter=\"{}\"}} {waiting}",
                label(adapter)
            );
        }
        family(
            &mut out,
            "handoff_adapter_log_lines_dropped_total",
            "counter",
            "Lines adapters logged over their budget per call (ceiling.log-lines-per-call, log-bytes-per-call), dropped.",
        );
        for (adapter, n) in crate::sandbox::guest_log::dropped_totals() {
            let _ = writeln!(
                out,
                "handoff_adapter_log_lines_dropped_total{{adapter=\"{}\"}} {n}",
                label(&adapter)
            );
        }
        family(
            &mut out,
            "handoff_store_write_held_seconds_total",
            "counter",
            "Time this process's writers held the store's one turn to write (SQLite lets one writer in at a time): a rate near 1 means the store, not the workers, sets the pace.",
        );
        let _ = writeln!(
            out,
            "handoff_store_write_held_seconds_total {:.6}",
            store.writing_held().as_secs_f64()
        );
        match from_store(store) {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                let _ = writeln!(out, "# the store could not be read: {e}");
            }
        }
        out
    }
}

fn from_store(store: &Store) -> Result<String, crate::store::StoreError> {
    let conn = store.conn()?;
    let mut out = String::new();
    // Kept as they happen, by the store's own triggers (migration 9): one
    // small table, however long the store's history.
    let mut counters: BTreeMap<String, f64> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached("SELECT name, n FROM counters ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        for row in rows {
            let (name, n) = row?;
            counters.insert(name, n);
        }
    }
    let grouped = |out: &mut String, name: &str, help: &str, prefix: &str, label: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (key, n) in counters.range(prefix.to_string()..) {
            let Some(value) = key.strip_prefix(prefix) else {
                break;
            };
            if *n > 0.0 {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", self::label(value));
            }
        }
    };
    grouped(
        &mut out,
        "handoff_runs",
        "Runs in the store by outcome (unfinished: running).",
        "runs/",
        "outcome",
    );
    grouped(
        &mut out,
        "handoff_follow_ups",
        "Follow-up packets by reason (stale-approval, revoked, superseded... are suppressed propagations).",
        "follow-ups/",
        "reason",
    );
    grouped(
        &mut out,
        "handoff_capability_decisions",
        "Sandbox capability decisions by verdict.",
        "decisions/",
        "verdict",
    );
    let counted = |name: &str| counters.get(name).copied().unwrap_or(0.0);
    let duplicates = counted("duplicates");
    // Open ones have an index of their own; the overdue are among them.
    let open: f64 = conn.query_row(
        "SELECT COUNT(*) FROM follow_ups WHERE resolution IS NULL",
        [],
        |r| r.get(0),
    )?;
    let overdue = crate::store::follow_ups::overdue(&conn, &crate::store::now_rfc3339())?;
    let summary = |out: &mut String, name: &str, help: &str, count: f64, secs: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} summary\n\
             {name}_sum {secs}\n{name}_count {count}"
        );
    };
    summary(
        &mut out,
        "handoff_follow_up_acknowledge_seconds",
        "From packet to a person taking it on \
         (handoff follow-ups ack, or the resolution when there was none).",
        counted("acknowledged"),
        counted("acknowledged-seconds"),
    );
    let _ = writeln!(
        out,
        "# HELP handoff_duplicates_suppressed Deliveries recognised as duplicates, all time.\n\
         # TYPE handoff_duplicates_suppressed gauge\nhandoff_duplicates_suppressed {duplicates}\n\
         # HELP handoff_follow_ups_open Follow-up packets waiting for a person.\n\
         # TYPE handoff_follow_ups_open gauge\nhandoff_follow_ups_open {open}\n\
         # HELP handoff_follow_ups_overdue Open follow-up packets past their due time (sla-hours).\n\
         # TYPE handoff_follow_ups_overdue gauge\nhandoff_follow_ups_overdue {overdue}"
    );
    summary(
        &mut out,
        "handoff_follow_up_resolve_seconds",
        "From packet to resolution.",
        counted("resolved"),
        counted("resolved-seconds"),
    );
    Ok(out)
}

/// The standard `process_*` metrics, read from `/proc` (Linux; elsewhere
/// they are left out). CPU time is in the kernel's clock ticks, 100 a
/// second on Linux.
fn process_metrics(out: &mut String) {
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The fields after the command name (which may hold spaces) in
    // parentheses: utime is the 14th field of the line, so the 12th here.
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|k| k * 1024.0)
    };
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .ok();
    let metrics = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            field(11)
                .zip(field(12))
                .map(|(u, s)| (u + s) / TICKS_PER_SECOND),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kib("VmRSS:"),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            kib("VmSize:"),
        ),
        ("process_open_fds", "gauge", "Open file descriptors.", fds),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            boot.zip(field(19)).map(|(b, t)| b + t / TICKS_PER_SECOND),
        ),
    ];
    for (name, kind, help, value) in metrics {
        if let Some(v) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// A label value as the Prometheus text format writes it: `\`, `"` and
/// line breaks escaped, so no value can end its label or its line.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdapterInstance;
    use crate::pipeline::throttle::Throttle;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn a_label_value_cannot_end_its_label_or_its_line() {
        assert_eq!(label("plain"), "plain");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_call_near_the_largest_timeout_lands_in_a_bucket_of_its_own() {
        let h = Histogram::default();
        h.observe(Duration::from_secs(45));
        let mut out = String::new();
        h.render(&mut out, "t", "");
        assert!(out.contains("t_bucket{le=\"30\"} 0"), "{out}");
        assert!(out.contains("t_bucket{le=\"60\"} 1"), "{out}");
    }

    #[test]
    fn an_adapter_limit_and_the_calls_waiting_at_it_are_exposed() {
        let mut tracker = AdapterInstance::new("tracker", std::path::Path::new("p"));
        tracker.concurrency = Some(1);
        let mut records = AdapterInstance::new("records", std::path::Path::new("p"));
        records.one_call_per_record = true;
        let throttle = std::sync::Arc::new(Throttle::new([&tracker, &records]));
        let metrics = Metrics::with_throttle(throttle.clone());
        let store = Store::in_memory().unwrap();
        fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
            f.poll(&mut Context::from_waker(Waker::noop()))
        }
        let first = pin!(throttle.acquire("tracker"));
        let held = match poll(first) {
            std::task::Poll::Ready(permit) => permit,
            std::task::Poll::Pending => panic!("the first call has room"),
        };
        let mut second = pin!(throttle.acquire("tracker"));
        assert!(poll(second.as_mut()).is_pending());
        let record_turn = match poll(pin!(throttle.turn("records", "r/queue/Q-1"))) {
            std::task::Poll::Ready(turn) => turn,
            std::task::Poll::Pending => panic!("the first call on the record has its turn"),
        };
        let mut same_record = pin!(throttle.turn("records", "r/queue/Q-1"));
        assert!(poll(same_record.as_mut()).is_pending());
        let text = metrics.render(&store);
        for line in [
            "handoff_adapter_concurrency_limit{adapter=\"tracker\"} 1",
            "handoff_adapter_calls_waiting{adapter=\"tracker\"} 1",
            "handoff_adapter_calls_waiting_for_record{adapter=\"records\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        drop(held);
        assert!(poll(second.as_mut()).is_ready());
        drop(record_turn);
        assert!(poll(same_record.as_mut()).is_ready());
        let text = metrics.render(&store);
        for line in [
            "handoff_adapter_calls_waiting{adapter=\"tracker\"} 0",
            "handoff_adapter_calls_waiting_for_record{adapter=\"records\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }
}
