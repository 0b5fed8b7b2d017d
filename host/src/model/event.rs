//! CloudEvents 1.0 in structured JSON mode, validated at the edge: the one
//! form in which a decision enters, from a webhook, NATS, the command line
//! or reconciliation.

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("{origin}: not JSON handoff can read (line {line}, column {column}): {message}")]
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
    #[error(
        "{origin}: member {name:?} is no CloudEvents attribute: an attribute's name is lower-case \
         letters and digits, and its value a string, a number or a boolean"
    )]
    NotAnAttribute { origin: String, name: String },
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
        let raw = super::json::from_slice(bytes).map_err(|e| EventError::Json {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        CloudEvent::from_value(raw, origin)
    }

    /// Validate an event already read as JSON (a verified request body,
    /// an event reconciliation made), without writing and reading it again.
    pub fn from_value(raw: Value, origin: &str) -> Result<CloudEvent, EventError> {
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
                    why: format!(
                        "must be a string, found {}",
                        crate::kept::render(&other.to_string(), 64)
                    ),
                }),
            }
        };
        let required = |field: &'static str| -> Result<String, EventError> {
            text(field)?.ok_or(EventError::Missing {
                origin: origin.to_string(),
                field,
            })
        };
        // Every other member is an attribute (an extension's included), named
        // and valued as CloudEvents 1.0 says; `data` and `data_base64` are
        // the JSON format's own.
        let attribute = |name: &str, value: &Value| {
            is_attribute_name(name)
                && matches!(
                    value,
                    Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
                )
        };
        if let Some((name, _)) = object.iter().find(|(name, value)| {
            !matches!(name.as_str(), "data" | "data_base64") && !attribute(name, value)
        }) {
            return Err(EventError::NotAnAttribute {
                origin: origin.to_string(),
                name: crate::kept::render(name, 64),
            });
        }
        let spec = required("specversion")?;
        if spec != "1.0" {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "specversion",
                why: format!(
                    "is {:?}; handoff reads CloudEvents 1.0",
                    crate::kept::render(&spec, 64)
                ),
            });
        }
        let time = text("time")?;
        if let Some(t) = &time
            && let Err(why) = crate::model::time::parse_rfc3339(t)
        {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "time",
                why: format!("{:?} {why}", crate::kept::render(t, 64)),
            });
        }
        let (id, source, event_type) = (required("id")?, required("source")?, required("type")?);
        let subject = text("subject")?;
        for (field, value) in [
            ("id", Some(&id)),
            ("source", Some(&source)),
            ("type", Some(&event_type)),
            ("subject", subject.as_ref()),
        ] {
            if let Some(why) = value.and_then(|v| unfit_attribute(v)) {
                return Err(EventError::Invalid {
                    origin: origin.to_string(),
                    field,
                    why,
                });
            }
        }
        // A decision is JSON in `data`; binary data is not read, and an
        // event with both is not a CloudEvent (the JSON format forbids it).
        if object.contains_key("data_base64") {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "data_base64",
                why: "is not read: send the decision as JSON in \"data\"".into(),
            });
        }
        // `data` is read as JSON: a content type that says it is something
        // else is refused rather than guessed at.
        if let Some(kind) = text("datacontenttype")?
            && !is_json_media_type(&kind)
        {
            return Err(EventError::Invalid {
                origin: origin.to_string(),
                field: "datacontenttype",
                why: format!(
                    "is {:?}; handoff reads a decision as JSON (application/json, or a type ending in +json)",
                    crate::kept::render(&kind, 64)
                ),
            });
        }
        let data = object.get("data").cloned().unwrap_or(Value::Null);
        Ok(CloudEvent {
            id,
            source,
            event_type,
            subject,
            time,
            data,
            raw,
        })
    }
}

/// The most bytes an identifying attribute (`id`, `source`, `type`,
/// `subject`) may have: each is stored with every audit row of its run and
/// named in log lines.
pub const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// A CloudEvents attribute name: lower-case ASCII letters and digits.
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Why an identifying attribute cannot be taken, if it cannot: too long,
/// holding a control character (which CloudEvents strings may not hold),
/// or a bidirectional formatting one (the id would show in another order
/// than it is read, wherever people see it: runs, packets, the audit).
pub fn unfit_attribute(value: &str) -> Option<String> {
    if value.len() > MAX_ATTRIBUTE_BYTES {
        return Some(format!(
            "is {} bytes; at most {MAX_ATTRIBUTE_BYTES}",
            value.len()
        ));
    }
    value.char_indices().find_map(|(at, c)| {
        let code = u32::from(c);
        if c.is_control() {
            Some(format!(
                "holds the control character U+{code:04X} at byte {at}; CloudEvents strings may not"
            ))
        } else if crate::plain::is_bidi_control(c) {
            Some(format!(
                "holds U+{code:04X} at byte {at}, which shows the text around it in another \
                 order than it is read"
            ))
        } else {
            None
        }
    })
}

/// A media type without its parameters (`; charset=…`), lower-cased:
/// `type/subtype` as it is compared.
pub fn media_essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a media type (parameters such as `charset` aside) is JSON:
/// `application/json`, `text/json`, or a structured `+json` suffix.
fn is_json_media_type(kind: &str) -> bool {
    let essence = media_essence(kind);
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    matches!(top, "application" | "text")
        && (sub == "json" || (sub.ends_with("+json") && sub.len() > "+json".len()))
}

/// Why a delivery was recognised as already received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateOf {
    /// The same (source, id).
    EventId,
    /// A different event for the same decision (business key).
    BusinessKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn every_other_member_is_an_attribute_named_and_valued_as_cloudevents_says() {
        let with = |name: &str, value: Value| {
            let mut v: Value = serde_json::from_str(OK).unwrap();
            v[name] = value;
            CloudEvent::from_value(v, "event.json")
        };
        // Extensions: lower-case letters and digits, scalar values.
        for (name, value) in [
            (
                "traceparent",
                json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ),
            ("sequence2", json!(7)),
            ("urgent", json!(true)),
        ] {
            assert!(with(name, value).is_ok(), "{name}");
        }
        for (name, value) in [
            ("Bad-Ext", json!("x")),
            ("review_id", json!("x")),
            ("", json!("x")),
            ("nested", json!({ "state": "accepted" })),
            ("list", json!(["a"])),
        ] {
            let err = with(name, value).unwrap_err();
            assert!(
                matches!(&err, EventError::NotAnAttribute { name: n, .. } if n == name),
                "{name}: {err}"
            );
            assert!(
                err.to_string().contains("no CloudEvents attribute"),
                "{err}"
            );
        }
    }

    #[test]
    fn binary_data_is_refused_not_ignored() {
        let mut v: Value = serde_json::from_str(OK).unwrap();
        v["data_base64"] = Value::String("AAAA".into());
        let err = CloudEvent::from_value(v, "event.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_base64") && err.contains("\"data\""),
            "{err}"
        );
    }

    #[test]
    fn data_is_read_only_under_a_json_content_type() {
        let typed = |kind: Value| {
            let mut v: Value = serde_json::from_str(OK).unwrap();
            v["datacontenttype"] = kind;
            CloudEvent::from_value(v, "event.json")
        };
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.review+json",
            "text/json",
        ] {
            assert!(typed(json.into()).is_ok(), "{json}");
        }
        for other in [
            "text/plain",
            "application/xml",
            "application/+json",
            "json",
            "",
        ] {
            let refused = typed(other.into());
            if other.is_empty() {
                // An empty attribute is an absent one, as for `subject`.
                assert!(refused.is_ok());
                continue;
            }
            let err = refused.unwrap_err().to_string();
            assert!(
                err.contains("\"datacontenttype\"") && err.contains(&format!("{other:?}")),
                "{other}: {err}"
            );
        }
        let err = typed(Value::from(3)).unwrap_err().to_string();
        assert!(err.contains("must be a string"), "{err}");
        let long = format!("text/{}", "x".repeat(5000));
        let err = typed(long.into()).unwrap_err().to_string();
        assert!(err.len() < 400, "the echo is bounded: {} bytes", err.len());
    }

    #[test]
    fn identifying_attributes_are_bounded_and_free_of_control_characters() {
        let with = |field: &str, value: &str| {
            let mut v: Value = serde_json::from_str(OK).unwrap();
            v[field] = Value::String(value.to_string());
            CloudEvent::from_value(v, "event.json")
        };
        let longest = "x".repeat(MAX_ATTRIBUTE_BYTES);
        assert!(with("id", &longest).is_ok());
        let err = with("id", &format!("{longest}x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event.json: attribute \"id\" is 1025 bytes; at most 1024"
        );
        let err = with("subject", "RV-9\nINFO forged line").unwrap_err();
        assert_eq!(
            err.to_string(),
            "event.json: attribute \"subject\" holds the control character U+000A at byte 4; \
             CloudEvents strings may not"
        );
        assert!(with("source", "a\u{85}b").is_err(), "C1 controls too");
        assert!(with("type", "release.revue.décidée").is_ok());
        // An id that would show as "evt-1-ver" but reads "evt-1-rev".
        let err = with("id", "evt-1-\u{202e}rev").unwrap_err();
        assert!(
            err.to_string()
                .contains("holds U+202E at byte 6, which shows the text"),
            "{err}"
        );
        assert!(with("subject", "RV\u{2066}-1").is_err());
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
        // ISO 8601 forms RFC 3339 does not have, and an offset past 23:59.
        for time in ["2026-11-22T04:00Z", "2026-11-22T04:00:00+25:00"] {
            let err = parse(&OK.replace("2026-11-22T04:00:00Z", time)).unwrap_err();
            assert!(err.to_string().contains("RFC 3339"), "{time}: {err}");
        }
        assert!(matches!(parse("[1]"), Err(EventError::NotObject { .. })));
    }

    /// An error names what it refuses without repeating all of it: the
    /// message goes back to the sender and into the service's log.
    #[test]
    fn a_refusal_quotes_a_bounded_part_of_what_it_refuses() {
        let long = "9".repeat(100_000);
        let event = OK.replace("\"1.0\"", &format!("\"{long}\""));
        let err = parse(&event).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..200]);
        assert!(err.contains("100000 bytes in all, sha256 "), "{err}");
    }
}
