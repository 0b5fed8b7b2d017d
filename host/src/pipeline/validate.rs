//! Validate: before any write, every mapped record the policy checks must
//! exist and match (the milestone is the one for this release, the evidence
//! bundle is there with the approved digest). Missing or conflicting: stop.

use super::RunError;
use super::calls::view_of;
use super::driver::{Driver, Halt, Row};
use crate::follow_up::Reason;
use crate::policy::CheckKind;
use crate::policy::condition::{self, View};
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

pub async fn validate(d: &mut Driver<'_>) -> Result<Result<(), Halt>, RunError> {
    for check in d.policy.checks.clone() {
        let place = format!("check {:?}", check.name);
        let scope = d.scope();
        let record = check
            .record
            .render(&check.adapter, scope, &format!("{place} "))?;
        let expect = condition::render(&check.expect, scope, &format!("{place} expect"))?;
        let seen = match d.observe(&check.adapter, &record).await {
            Ok(o) => view_of(&o),
            Err(halt) => return Ok(Err(halt.about(&check.adapter, &record.kind, &record.id))),
        };
        let sha = d.adapter_sha(&check.adapter);
        match condition::check(&expect, &seen, None) {
            Ok(()) => {
                if check.guards == CheckKind::Evidence {
                    d.links.extend(seen.links.iter().cloned());
                }
                let payload = json!({
                    "check": check.name, "adapter": check.adapter,
                    "kind": record.kind, "id": record.id, "links": seen.links,
                });
                d.note(Row::new("check-passed", payload).by(sha));
            }
            Err(mismatch) => {
                // The packet links what the failed check saw (the bundle
                // whose digest did not match, say).
                d.links.extend(seen.links.iter().cloned());
                let reason = classify(check.guards, &seen);
                let payload = json!({
                    "check": check.name, "adapter": check.adapter,
                    "kind": record.kind, "id": record.id, "reason": reason.name(),
                    "path": mismatch.path, "expected": mismatch.expected, "found": mismatch.found,
                });
                d.note(Row::new("check-failed", payload).by(sha));
                return Ok(Err(Halt {
                    reason,
                    summary: format!(
                        "check {:?} failed on {}/{} ({}): {mismatch}",
                        check.name, record.kind, record.id, check.adapter
                    ),
                    mismatch: Some(mismatch),
                    record: None,
                }
                .about(&check.adapter, &record.kind, &record.id)));
            }
        }
    }
    Ok(Ok(()))
}
