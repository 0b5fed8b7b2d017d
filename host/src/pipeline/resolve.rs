//! A person's answer to a follow-up: recorded (who, what, when) with its
//! audit row in one transaction; `resume` then revalidates and carries out
//! only the unfinished steps.

use super::{Engine, Report, RunError};
use crate::audit::Entry;
use crate::follow_up::Resolution;
use crate::model::ResolutionVerdict;
use crate::store::{StoreError, follow_ups, runs};

impl Engine {
    /// Record that `by` has taken follow-up `id` on (time to acknowledge),
    /// with its audit row, in one transaction. Nothing else changes: the
    /// run stays halted until the follow-up is resolved.
    pub fn acknowledge(&mut self, id: i64, by: &str) -> Result<(), RunError> {
        plain_text("role", by, false)?;
        // Read inside the write transaction: what it shows cannot change
        // before the update, so the refusal names what really happened.
        let tx = self.store.write()?;
        let follow_up = follow_ups::get(&tx, id)?.ok_or(RunError::NoSuchFollowUp(id))?;
        if !follow_up.is_open() {
            return Err(RunError::AlreadyResolved(id));
        }
        if let (Some(by), Some(at)) = (follow_up.acknowledged_by, follow_up.acknowledged_at) {
            return Err(RunError::AlreadyAcknowledged { id, by, at });
        }
        if !follow_ups::acknowledge(&tx, id, by)? {
            return Err(RunError::Store(StoreError::Corrupt(format!(
                "follow-up {id} was open and unacknowledged but could not be updated"
            ))));
        }
        crate::store::audit::append(
            &tx,
            &Entry {
                run_id: Some(follow_up.packet.run_id.clone()),
                event_id: Some(follow_up.packet.event_id.clone()),
                kind: "follow-up-acknowledged".into(),
                payload: serde_json::json!({ "follow_up": id, "by": by }),
                policy_sha256: Some(follow_up.packet.policy_sha256.clone()),
                adapter_sha256: None,
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Resolve follow-up `id`. For `resume`, the run is driven again and
    /// its report returned.
    pub async fn resolve(
        &mut self,
        id: i64,
        resolution: Resolution,
        by: &str,
        note: &str,
        verdict: Option<ResolutionVerdict>,
    ) -> Result<Option<Report>, RunError> {
        let (run_id, _) = self.decide(id, resolution, by, note, verdict)?;
        if resolution == Resolution::Resume {
            self.reload_adapters();
            return Ok(Some(self.drive(&run_id).await?));
        }
        Ok(None)
    }

    /// Record a resolution of follow-up `id` with its audit row, in one
    /// transaction; for `resume` the run is left unfinished, to be driven
    /// (by the caller, or the next `resume`). `verdict` says whether the
    /// packet was needed at all (`unnecessary`: a false positive). The
    /// run's and event's ids.
    pub fn decide(
        &mut self,
        id: i64,
        resolution: Resolution,
        by: &str,
        note: &str,
        verdict: Option<ResolutionVerdict>,
    ) -> Result<(String, String), RunError> {
        if note.len() > crate::follow_up::MAX_NOTE_BYTES {
            return Err(RunError::NoteTooLong(note.len()));
        }
        plain_text("role", by, false)?;
        plain_text("note", note, true)?;
        let tx = self.store.write()?;
        let follow_up = follow_ups::get(&tx, id)?.ok_or(RunError::NoSuchFollowUp(id))?;
        if !follow_up.is_open() {
            return Err(RunError::AlreadyResolved(id));
        }
        let run_id = follow_up.packet.run_id.clone();
        if !follow_ups::resolve(&tx, id, resolution, by, note, verdict)? {
            return Err(RunError::AlreadyResolved(id));
        }
        if resolution == Resolution::Resume {
            runs::set_outcome(&tx, &run_id, None)?;
        }
        // The note stays in the follow-up record: the chain keeps
        // identifiers and decisions, not narrative.
        crate::store::audit::append(
            &tx,
            &Entry {
                run_id: Some(run_id.clone()),
                event_id: Some(follow_up.packet.event_id.clone()),
                kind: "follow-up-resolved".into(),
                payload: serde_json::json!({
                    "follow_up": id, "action": resolution.name(), "by": by,
                    "verdict": verdict.map(|v| v.name()),
                }),
                policy_sha256: Some(follow_up.packet.policy_sha256.clone()),
                adapter_sha256: None,
            },
        )?;
        tx.commit()?;
        Ok((run_id, follow_up.packet.event_id))
    }
}

/// What a person typed, as it is kept and shown again (in packets, the
/// audit trail, a terminal): no control characters, which could drive the
/// terminal of whoever reads it; a note may have line breaks and tabs.
fn plain_text(what: &'static str, text: &str, lines: bool) -> Result<(), RunError> {
    match crate::plain::control_character(text, lines) {
        Some(c) => Err(RunError::NotPlainText(what, c)),
        None => Ok(()),
    }
}
