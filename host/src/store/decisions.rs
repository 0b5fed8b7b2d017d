//! Capability decisions: every check the sandbox made at a choke point
//! (allowed or denied), attributed to the adapter and its component digest.

use super::{Store, StoreError};
use crate::sandbox::decision::{CapabilityDecision, Verdict};
use rusqlite::params;

impl Store {
    /// Append decisions in one transaction, each also as a row of the audit
    /// chain (kind `capability-decision`).
    pub fn record_decisions(&mut self, decisions: &[CapabilityDecision]) -> Result<(), StoreError> {
        self.record_run_decisions(decisions, None, None)
    }

    /// As [`Store::record_decisions`], attributed to a run and its event.
    pub fn record_run_decisions(
        &mut self,
        decisions: &[CapabilityDecision],
        run_id: Option<&str>,
        event_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO capability_decisions
                     (at, adapter, component_sha256, surface, target, verdict, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for d in decisions {
                stmt.execute(params![
                    d.at,
                    d.adapter,
                    d.component_sha256,
                    d.surface.name,
                    d.target,
                    d.verdict.name(),
                    d.reason
                ])?;
                super::audit::append(
                    &tx,
                    &crate::audit::Entry {
                        kind: "capability-decision".into(),
                        payload: serde_json::json!({
                            "adapter": d.adapter,
                            "surface": d.surface.name,
                            "target": d.target,
                            "verdict": d.verdict.name(),
                            "reason": d.reason,
                        }),
                        adapter_sha256: Some(d.component_sha256.clone()),
                        run_id: run_id.map(str::to_string),
                        event_id: event_id.map(str::to_string),
                        ..Default::default()
                    },
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Decisions recorded for an adapter, oldest first.
    pub fn decisions_for(
        &self,
        adapter: &str,
    ) -> Result<Vec<(String, String, Verdict, String)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT surface, target, verdict, reason FROM capability_decisions
             WHERE adapter = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([adapter], |r| {
            let verdict: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                if verdict == "allowed" {
                    Verdict::Allowed
                } else {
                    Verdict::Denied
                },
                r.get(3)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
