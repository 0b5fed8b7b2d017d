//! Validate: before any write, every mapped record the policy checks must
//! exist and match (the milestone is the one for this release, the evidence
//! bundle is there with the approved digest). Missing or conflicting: stop.

use super::RunError;
use super::calls::AdapterCalls;
use super::halt::Halt;
use super::record::Row;
use super::stage::Reading;
use crate::model::Reason;
use crate::policy::condition::{self, View};
use crate::policy::template::Scope;
use crate::policy::{CheckKind, Policy};
use serde_json::json;

/// Why a failed check stopped the run.
pub fn classify(guards: CheckKind, seen: &View) -> Reason {
    match (guards, seen.exists) {
        (CheckKind::Mapping, false) => Reason::MappingMissing,
        (CheckKind::Mapping, true) => Reason::MappingConflict,
        (CheckKind::Evidence, false) => Reason::EvidenceMissing,
        (CheckKind::Evidence, true) => Reason::EvidenceHashMismatch,
    }
}

/// Every check of the policy, in order, up to the first that fails.
pub async fn validate(
    calls: &mut AdapterCalls,
    policy: &Policy,
    scope: Scope<'_>,
) -> Result<Reading, RunError> {
    let mut reading = Reading::default();
    for check in &policy.checks {
        let place = format!("check {:?}", check.name);
        let record = check
            .record
            .render(&check.adapter, scope, &format!("{place} "))?;
        let expect = condition::render(&check.expect, scope, &format!("{place} expect"))?;
        let seen = match calls.observe(&check.adapter, &record).await? {
            Ok(o) => View::from(&o),
            Err(halt) => {
                reading.halt = Some(halt.about(&check.adapter, &record.kind, &record.id));
                return Ok(reading);
            }
        };
        let sha = calls.adapter_sha(&check.adapter);
        match condition::check(&expect, &seen, None) {
            Ok(()) => {
                if check.guards == CheckKind::Evidence {
                    reading.links.extend(seen.links.iter().cloned());
                }
                let payload = json!({
                    "check": check.name, "adapter": check.adapter,
                    "kind": record.kind, "id": record.id, "links": seen.links,
                });
                reading.rows.push(Row::new("check-passed", payload).by(sha));
            }
            Err(mismatch) => {
                // The packet links what the failed check saw (the bundle
                // whose digest did not match, say).
                reading.links.extend(seen.links.iter().cloned());
                let reason = classify(check.guards, &seen);
                let payload = json!({
                    "check": check.name, "adapter": check.adapter,
                    "kind": record.kind, "id": record.id, "reason": reason.name(),
                    "path": mismatch.path, "expected": mismatch.expected, "found": mismatch.found,
                });
                reading.rows.push(Row::new("check-failed", payload).by(sha));
                reading.halt = Some(
                    Halt {
                        reason,
                        summary: format!(
                            "check {:?} failed on {}/{} ({}): {mismatch}",
                            check.name, record.kind, record.id, check.adapter
                        ),
                        mismatch: Some(mismatch),
                        record: None,
                    }
                    .about(&check.adapter, &record.kind, &record.id),
                );
                return Ok(reading);
            }
        }
    }
    Ok(reading)
}
