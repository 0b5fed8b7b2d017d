//! Revalidate: read the decision again from its source of truth and check
//! that it still authorizes the work (state, version...). The event said
//! "accepted"; only the source can say it still is. Stale, revoked,
//! superseded or a different version: stop before any write.

use super::RunError;
use super::calls::AdapterCalls;
use super::halt::Halt;
use super::record::Row;
use super::stage::Reading;
use crate::model::Reason;
use crate::policy::Policy;
use crate::policy::condition::{self, Mismatch, View};
use crate::policy::template::Scope;
use serde_json::json;

/// Decision states that mean it was taken back.
const REVOKED_STATES: [&str; 3] = ["revoked", "rejected", "withdrawn"];

/// Why a decision that no longer matches stopped the run.
pub fn classify(mismatch: &Mismatch, seen: &View) -> Reason {
    if seen
        .fields
        .get("superseded_by")
        .is_some_and(|s| !s.is_empty())
    {
        return Reason::Superseded;
    }
    match mismatch.path.as_str() {
        "state" if REVOKED_STATES.contains(&seen.state.as_str()) => Reason::Revoked,
        "revision" => Reason::VersionMismatch,
        path if path.starts_with("fields.") && path.contains("version") => Reason::VersionMismatch,
        _ => Reason::StaleApproval,
    }
}

/// Read the source and check it.
pub async fn revalidate(
    calls: &mut AdapterCalls,
    policy: &Policy,
    scope: Scope<'_>,
) -> Result<Reading, RunError> {
    let spec = &policy.source;
    let record = spec.record.render(&spec.adapter, scope, "source.")?;
    let must = condition::render(&spec.must_match, scope, "source.must-match")?;
    let decision = match calls.read_decision(&spec.adapter, &record).await? {
        Ok(decision) => decision,
        Err(mut halt) => {
            if halt.reason == Reason::MappingMissing {
                // The decision record itself is gone.
                halt.reason = Reason::StaleApproval;
            }
            return Ok(Reading {
                halt: Some(halt.about(&spec.adapter, &record.kind, &record.id)),
                ..Reading::default()
            });
        }
    };
    let seen = View::from(&decision);
    // Only what must match goes into the audit row: identifiers and states.
    let matched: serde_json::Map<String, serde_json::Value> = must
        .keys()
        .filter_map(|path| {
            let name = path.strip_prefix("fields.")?;
            Some((path.clone(), json!(seen.fields.get(name))))
        })
        .collect();
    let verdict = condition::check(&must, &seen, None);
    let row = Row::new(
        "revalidated",
        json!({
            "adapter": spec.adapter, "kind": record.kind, "id": record.id,
            "state": seen.state, "revision": seen.revision, "fields": matched,
            "still-authorized": verdict.is_ok(),
        }),
    )
    .by(calls.adapter_sha(&spec.adapter));
    let halt = verdict.err().map(|mismatch| {
        let reason = classify(&mismatch, &seen);
        Halt {
            reason,
            summary: format!(
                "the decision {}/{} no longer authorizes this work: {mismatch}",
                record.kind, record.id
            ),
            mismatch: Some(mismatch),
            record: None,
        }
        .about(&spec.adapter, &record.kind, &record.id)
    });
    Ok(Reading {
        rows: vec![row],
        snapshot: Some(seen),
        links: Vec::new(),
        halt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: &str, fields: &[(&str, &str)]) -> View {
        View {
            exists: true,
            state: state.into(),
            revision: Some("2".into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            links: vec![],
            applied_keys: vec![],
        }
    }

    fn at(path: &str) -> Mismatch {
        Mismatch {
            path: path.into(),
            expected: "x".into(),
            found: "y".into(),
        }
    }

    #[test]
    fn reasons_follow_what_changed_in_the_source() {
        assert_eq!(
            classify(&at("state"), &seen("withdrawn", &[])),
            Reason::Revoked
        );
        assert_eq!(
            classify(&at("state"), &seen("reopened", &[])),
            Reason::StaleApproval
        );
        assert_eq!(
            classify(&at("fields.review_version"), &seen("accepted", &[])),
            Reason::VersionMismatch
        );
        assert_eq!(
            classify(
                &at("state"),
                &seen("accepted", &[("superseded_by", "RV-10")])
            ),
            Reason::Superseded
        );
    }
}
