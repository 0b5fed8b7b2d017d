//! Intake: parse a CloudEvents 1.0 event at the edge, and record it exactly
//! once. A delivery whose (source, id) or business key is already stored is
//! a duplicate: no new run. The event row and its audit row commit together.

use crate::audit::Entry;
use crate::store::runs::{self, NewRun};
use crate::store::{Store, StoreError};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("{origin}: not JSON (line {line}, column {column}): {message}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: a CloudEvent is a JSON object")]
    NotObject { origin: String },
    #[error("{origin}: required attribute {field:?} is missing or empty")]
    Missing { origin: String, field: &'static str },
    #[error("{origin}: attribute {field:?} {why}")]
    Invalid {
        origin: String,
        field: &'static str,
        why: String,
    },
}

/// A validated CloudEvent (structured JSON mode).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub data: Value,
    /// The whole event as received: the template scope `event.*`.
    pub raw: Value,
}

impl CloudEvent {
    /// Parse an event; `origin` names where it came from in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<CloudEvent, EventError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| EventError::Json {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let object = raw.as_object().ok_or_else(|| EventError::NotObject {
            origin: origin.to_string(),
        })?;
        let text = |field: &'static str| -> Result<Option<String>, EventError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
                Some(other) => Err(EventError::Invalid {
                    origin: origin.to_string(),
                    field,
                    why: format!("must be a string, found {other}"),
                }),
            }
        };
        let required = |field: &'static str| -> Result<String, EventError> {
            text(field)?.ok_or(EventError::Missing {
                origin: origin.to_string(),
                field,
            })
        };
        let spec = required("specversion")?;
        if spec != "1.0" {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "specversion",
                why: format!("is {spec:?}; handoff reads CloudEvents 1.0"),
            });
        }
        let time = text("time")?;
        if let Some(t) = &time
            && t.parse::<jiff::Timestamp>().is_err()
        {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "time",
                why: format!("{t:?} is not an RFC 3339 timestamp"),
            });
        }
        Ok(CloudEvent {
            id: required("id")?,
            source: required("source")?,
            event_type: required("type")?,
            subject: text("subject")?,
            time,
            data: object.get("data").cloned().unwrap_or(Value::Null),
            raw,
        })
    }
}

/// Why a delivery was recognised as already received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateOf {
    /// The same (source, id).
    EventId,
    /// A different event for the same decision (business key).
    BusinessKey,
}

/// What intake did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// First delivery: stored as event `seq`, with its run when one was asked for.
    New { seq: i64, run_id: Option<String> },
    /// Already stored as event `seq`: suppressed, no new run. `run_id` is
    /// the run the first delivery started, if any.
    Duplicate {
        seq: i64,
        of: DuplicateOf,
        run_id: Option<String>,
    },
}

impl Store {
    /// Record a delivery once. Concurrent deliveries of one event, from any
    /// number of connections or processes, yield exactly one `New`.
    pub fn intake(
        &mut self,
        event: &CloudEvent,
        business_key: Option<&str>,
    ) -> Result<Intake, StoreError> {
        self.intake_run(event, business_key, None)
    }

    /// Record a delivery once and, when it is new, create its run in the
    /// same transaction: an event is never stored without the run it
    /// starts, nor a run without its event.
    pub fn intake_run(
        &mut self,
        event: &CloudEvent,
        business_key: Option<&str>,
        run: Option<&NewRun<'_>>,
    ) -> Result<Intake, StoreError> {
        let tx = self.write()?;
        let outcome = record(&tx, event, business_key, run)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Record several deliveries, each with its run, in one transaction
    /// (group commit: the service's intake takes whatever arrived while the
    /// previous commit was being written). Deliveries in one batch are
    /// recognised as duplicates of each other exactly as across batches.
    /// When any of them fails, the whole transaction is rolled back and each
    /// is tried again in its own, so one bad delivery costs the others
    /// nothing but time.
    pub fn intake_batch(&mut self, deliveries: &[Delivery<'_>]) -> Vec<Result<Intake, StoreError>> {
        let together = (|| {
            let tx = self.write()?;
            let outcomes = deliveries
                .iter()
                .map(|d| record(&tx, d.event, d.business_key, d.run.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok::<_, StoreError>(outcomes)
        })();
        match together {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(_) if deliveries.len() > 1 => deliveries
                .iter()
                .map(|d| self.intake_run(d.event, d.business_key, d.run.as_ref()))
                .collect(),
            Err(e) => vec![Err(e)],
        }
    }
}

/// One delivery for [`Store::intake_batch`].
pub struct Delivery<'a> {
    pub event: &'a CloudEvent,
    pub business_key: Option<&'a str>,
    pub run: Option<NewRun<'a>>,
}

/// The event, its run and the audit row, inside the caller's transaction.
fn record(
    conn: &crate::store::Write<'_>,
    event: &CloudEvent,
    business_key: Option<&str>,
    run: Option<&NewRun<'_>>,
) -> Result<Intake, StoreError> {
    let existing = crate::store::events::find(conn, &event.source, &event.id, business_key)?;
    let (outcome, kind) = match existing {
        Some((seq, of)) => {
            let run_id = runs::for_event(conn, seq)?;
            (
                Intake::Duplicate { seq, of, run_id },
                "duplicate-suppressed",
            )
        }
        None => {
            let seq = crate::store::events::insert(conn, event, business_key)?;
            let run_id = run
                .map(|new| runs::insert(conn, seq, &event.id, new))
                .transpose()?;
            (Intake::New { seq, run_id }, "event-received")
        }
    };
    let (seq, run_id) = match &outcome {
        Intake::New { seq, run_id } | Intake::Duplicate { seq, run_id, .. } => (*seq, run_id),
    };
    crate::store::audit::append(
        conn,
        &Entry {
            run_id: run_id.clone(),
            event_id: Some(event.id.clone()),
            kind: kind.into(),
            payload: serde_json::json!({
                "source": event.source,
                "type": event.event_type,
                "business_key": business_key,
                "event_seq": seq,
            }),
            policy_sha256: run.map(|r| r.policy_sha256.to_string()),
            ..Default::default()
        },
    )?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CloudEvent, EventError> {
        CloudEvent::parse(text.as_bytes(), "event.json")
    }

    const OK: &str = r#"{"specversion":"1.0","id":"e1","source":"governance","type":"release.review.decided","time":"2026-11-22T04:00:00Z","data":{"review_id":"RV-9"}}"#;

    #[test]
    fn a_valid_event_keeps_its_attributes_and_data() {
        let e = parse(OK).unwrap();
        assert_eq!((e.id.as_str(), e.source.as_str()), ("e1", "governance"));
        assert_eq!(e.data["review_id"], "RV-9");
        assert_eq!(e.raw["type"], "release.review.decided");
    }

    #[test]
    fn malformed_events_say_what_and_where() {
        let err = parse("{\"id\": \n 1,,}").unwrap_err();
        assert!(matches!(err, EventError::Json { line: 2, .. }), "{err}");
        assert_eq!(
            parse(&OK.replace("\"id\":\"e1\",", ""))
                .unwrap_err()
                .to_string(),
            "event.json: required attribute \"id\" is missing or empty"
        );
        let err = parse(&OK.replace("\"1.0\"", "\"0.3\"")).unwrap_err();
        assert!(err.to_string().contains("CloudEvents 1.0"), "{err}");
        let err = parse(&OK.replace("2026-11-22T04:00:00Z", "yesterday")).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        assert!(matches!(parse("[1]"), Err(EventError::NotObject { .. })));
    }
}
