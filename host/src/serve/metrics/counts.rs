//! The numbers `/metrics` reports of the store: runs by outcome, follow-ups
//! by reason, open and overdue, notices sent and failed, times to
//! acknowledge and resolve,
//! capability decisions, duplicates. They are the store's own counts
//! ([`Store::stats`]), kept by its triggers as changes happen.

use super::label;
use crate::store::Store;
use crate::store::stats::{Handoffs, Stats};
use std::fmt::Write as _;

/// What the store holds, as its own counts say.
pub(super) fn from_store(store: &Store) -> Result<String, crate::store::StoreError> {
    let Stats {
        counters,
        open,
        overdue,
    } = store.stats()?;
    let mut out = String::new();
    let grouped = |out: &mut String, name: &str, help: &str, prefix: &str, key_name: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (key, n) in counters.range(prefix.to_string()..) {
            let Some(value) = key.strip_prefix(prefix) else {
                break;
            };
            if *n > 0.0 {
                let _ = writeln!(out, "{name}{{{key_name}=\"{}\"}} {n}", label(value));
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
    let _ = writeln!(
        out,
        "# HELP handoff_notices Notices to people (opened, reminder, overdue, escalated) \
         delivered, or failed after their last try.\n# TYPE handoff_notices gauge"
    );
    for (key, n) in counters.range("notices/".to_string()..) {
        let Some((state, kind)) = key.strip_prefix("notices/").and_then(|k| k.split_once('/'))
        else {
            break;
        };
        let _ = writeln!(
            out,
            "handoff_notices{{state=\"{}\",kind=\"{}\"}} {n}",
            label(state),
            label(kind)
        );
    }
    grouped(
        &mut out,
        "handoff_capability_decisions",
        "Sandbox capability decisions by verdict.",
        "decisions/",
        "verdict",
    );
    let counted = |name: &str| counters.get(name).copied().unwrap_or(0.0);
    let duplicates = counted("duplicates");
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
    by_policy_and_role(&mut out, &crate::store::stats::handoffs(&counters));
    Ok(out)
}

/// One number of a [`Handoffs`] row.
type Of = fn(&Handoffs) -> f64;

/// The handoff to people per policy and role: volume, times to acknowledge
/// and resolve, rework and false positives.
fn by_policy_and_role(out: &mut String, rows: &[Handoffs]) {
    let labels = |h: &Handoffs| {
        format!(
            "policy=\"{}\",role=\"{}\"",
            label(&h.policy),
            label(&h.role)
        )
    };
    let gauges: [(&str, &str, Of); 3] = [
        (
            "handoff_handoffs",
            "Follow-up packets opened, by policy and the role they go to.",
            |h| h.volume,
        ),
        (
            "handoff_handoffs_rework",
            "Packets of runs a person had resumed before (the run halted again).",
            |h| h.rework,
        ),
        (
            "handoff_handoffs_unnecessary",
            "Packets resolved as needing no action (--verdict unnecessary): false positives.",
            |h| h.unnecessary,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for h in rows {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(h), value(h));
        }
    }
    for (name, help, count, secs) in [
        (
            "handoff_handoff_acknowledge_seconds",
            "From packet to a person taking it on, by policy and role (MTTA: sum / count).",
            (|h| h.acknowledged) as Of,
            (|h| h.acknowledge_seconds) as Of,
        ),
        (
            "handoff_handoff_resolve_seconds",
            "From packet to resolution, by policy and role (MTTR: sum / count).",
            |h| h.resolved,
            |h| h.resolve_seconds,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for h in rows {
            let l = labels(h);
            let _ = writeln!(
                out,
                "{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {}",
                secs(h),
                count(h)
            );
        }
    }
}
