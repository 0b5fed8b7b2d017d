//! Retention: the bulky rows of old finished runs pruned, the audit chain
//! kept whole.
//!
//! A run is pruned once it has an outcome, no follow-up of it is open, and
//! it last changed before the cutoff (`[store] retain-days`). Its event
//! keeps its identity (source, id, business key: what makes a decision
//! sent again a duplicate, however old) and loses its body; the run keeps
//! its row and outcome and loses its workflow context; its steps' rows go.
//! Capability decisions older than the cutoff go too: each is also a row of
//! the audit chain.
//!
//! The chain rows stay, every one. They are small (identifiers, states and
//! links; values from outside in bounded form), and keeping them is what
//! lets `audit verify` still recompute the chain from its first row and
//! anchors kept outside still check. The alternative, pruning behind a
//! signed checkpoint, needs a signing key the store's owner cannot forge
//! the signature of, which handoff does not hold today.

use super::{Store, StoreError, now_rfc3339};

/// What one pruning took away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub runs: usize,
    pub steps: usize,
    pub decisions: usize,
}

/// The body a pruned event or run keeps: a note of when it was pruned.
fn tombstone() -> String {
    serde_json::json!({ "pruned_at": now_rfc3339() }).to_string()
}

impl Store {
    /// Prune what finished before `cutoff` (RFC 3339, as the store writes
    /// times), in one transaction with its audit row.
    pub fn prune_before(&mut self, cutoff: &str) -> Result<Pruned, StoreError> {
        let tx = self.write()?;
        let mark = tombstone();
        // Runs to prune: finished, nothing open for a person, quiet since
        // the cutoff, and not pruned already.
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS prune_runs (run_id TEXT PRIMARY KEY, event_seq INTEGER)",
            [],
        )?;
        tx.execute("DELETE FROM prune_runs", [])?;
        let runs = tx.execute(
            "INSERT INTO prune_runs (run_id, event_seq)
             SELECT r.run_id, r.event_seq FROM runs r
             WHERE r.outcome IS NOT NULL AND r.updated_at < ?1
               AND r.context NOT LIKE '{\"pruned_at\":%'
               AND NOT EXISTS (SELECT 1 FROM follow_ups f
                               WHERE f.run_id = r.run_id AND f.resolution IS NULL)",
            [cutoff],
        )?;
        let steps = tx.execute(
            "DELETE FROM steps WHERE run_id IN (SELECT run_id FROM prune_runs)",
            [],
        )?;
        tx.execute(
            "UPDATE runs SET context = ?1 WHERE run_id IN (SELECT run_id FROM prune_runs)",
            [&mark],
        )?;
        tx.execute(
            "UPDATE events SET raw = ?1 WHERE seq IN (SELECT event_seq FROM prune_runs)",
            [&mark],
        )?;
        let decisions = tx.execute("DELETE FROM capability_decisions WHERE at < ?1", [cutoff])?;
        tx.execute("DELETE FROM prune_runs", [])?;
        let pruned = Pruned {
            runs,
            steps,
            decisions,
        };
        super::audit::append(
            &tx,
            &crate::audit::Entry {
                kind: "store-pruned".into(),
                payload: serde_json::json!({
                    "before": cutoff, "runs": runs, "steps": steps, "decisions": decisions,
                }),
                ..Default::default()
            },
        )?;
        tx.commit()?;
        Ok(pruned)
    }

    /// Prune what finished more than `days` ago.
    pub fn prune_older_than(&mut self, days: u32) -> Result<Pruned, StoreError> {
        let span = jiff::SignedDuration::from_hours(i64::from(days) * 24);
        let cutoff = jiff::Timestamp::now()
            .checked_sub(span)
            .unwrap_or(jiff::Timestamp::MIN);
        self.prune_before(&super::rfc3339(cutoff))
    }
}
