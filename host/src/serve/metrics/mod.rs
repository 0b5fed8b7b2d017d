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

mod counts;
mod histogram;
mod process;

pub use histogram::Histogram;

use crate::pipeline::Timed;
use crate::store::Store;
use crate::store::group::GroupCounts;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Decisions reconciliation listed that can never be taken in.
    pub reconcile_passed_over: AtomicU64,
    /// Reconciliation passes that failed (to be tried again).
    pub reconcile_failed: AtomicU64,
    /// Notice deliveries that failed and were put off for another try.
    pub notice_retries: AtomicU64,
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
    pub fn render(&self, store: &Store, groups: Option<GroupCounts>) -> String {
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
        process::process_metrics(&mut out);
        family(
            &mut out,
            "handoff_outbound_requests_total",
            "counter",
            "Adapters' HTTP(S) requests answered, by whether they went on a new connection \
             or on one kept from an earlier request of the same adapter instance.",
        );
        let (on_new, on_kept) = crate::sandbox::net::pool::request_counts();
        let _ = writeln!(
            out,
            "handoff_outbound_requests_total{{connection=\"new\"}} {on_new}\n\
             handoff_outbound_requests_total{{connection=\"kept\"}} {on_kept}"
        );
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
        let gauges: [(&str, &str, &str, &AtomicU64); 8] = [
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
            (
                "handoff_reconcile_passed_over_total",
                "counter",
                "Decisions reconciliation listed that can never be taken in: logged and passed over.",
                &self.reconcile_passed_over,
            ),
            (
                "handoff_reconcile_failed_passes_total",
                "counter",
                "Reconciliation passes that failed; the next reads from the same cursor.",
                &self.reconcile_failed,
            ),
            (
                "handoff_notice_retries_total",
                "counter",
                "Notice deliveries that failed and were put off for another try.",
                &self.notice_retries,
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
            "Calls waiting for their record's turn now ([adapters.X] one-call-per-record), held in this process or another on the store.",
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
            "handoff_steps_waiting_for_record",
            "gauge",
            "Steps waiting for another run's step on their record to end now, in this process or another on the store.",
        );
        let _ = writeln!(
            out,
            "handoff_steps_waiting_for_record {}",
            self.throttle.steps_waiting()
        );
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
        // The write-ahead log's file: copied back in the background and
        // started over past its threshold (store/checkpoint.rs), so under
        // load it stays bounded; a figure that only grows says it does not.
        let mut log = store.path().as_os_str().to_owned();
        log.push("-wal");
        if let Ok(meta) = std::fs::metadata(&log) {
            family(
                &mut out,
                "handoff_store_log_bytes",
                "gauge",
                "Size of the store's write-ahead log file (started over once past 32 MiB of frames, cut back past 64 MiB).",
            );
            let _ = writeln!(out, "handoff_store_log_bytes {}", meta.len());
        }
        if let Some(groups) = groups {
            for (name, help, n) in [
                (
                    "handoff_store_writes_total",
                    "Writes (a run's transition with its audit rows, an intake burst, an API action) made on the service's shared connection.",
                    groups.writes,
                ),
                (
                    "handoff_store_commits_total",
                    "Commits that carried them, each a group of writes (writes / commits: how many writes a commit carries).",
                    groups.commits,
                ),
                (
                    "handoff_store_syncs_total",
                    "Syncs of the store's log that made the commits durable (durability = \"power\"; commits / syncs per sync).",
                    groups.syncs,
                ),
            ] {
                family(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {n}");
            }
        }
        match counts::from_store(store) {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                let _ = writeln!(out, "# the store could not be read: {e}");
            }
        }
        out
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
mod tests;
