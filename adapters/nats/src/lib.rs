//! Queues on NATS JetStream.
//!
//! Two kinds of record:
//! - a **channel** (`kind = "channel"`, id `scheduler-intake`) is the subject
//!   `<subject-prefix>.<id>`. `publish` sends one JSON message there with
//!   `Nats-Msg-Id` set to the idempotency key, so JetStream stores a repeat
//!   inside its duplicate window once; `observe` reports the msg-ids of the
//!   latest `observe-window` messages on the subject as applied keys, so the
//!   host skips a publish that already happened.
//! - a **queue entry** (a kind listed in `bucket-kinds`, id = the key) is a
//!   key in the key-value bucket named like the kind. It is `queued` while
//!   it holds a value and `cleared` once deleted (the delete marker stays);
//!   `clear-entry` deletes it, the marker carrying the idempotency key as
//!   its `Nats-Msg-Id`, which `observe` reports as applied.
//!
//! Config: `server` (`IP:port`, required), `subject-prefix` (default
//! `handoff`), `bucket-kinds` (comma-separated, default `review-queue`),
//! `observe-window` (default 100).
//!
//! Crash window: none for a channel while the repeat comes within the
//! stream's duplicate window. The key travels in the message itself
//! (`Nats-Msg-Id`): a process killed after JetStream stored it and before
//! the host recorded the step finds it on observe, and a publish sent again
//! is dropped by JetStream as a duplicate. Past the duplicate window (the
//! stream's `duplicate_window`, two minutes by default) and outside the
//! `observe-window` latest messages, a resumed run would publish again,
//! with the same msg-id: the server cannot recognise a key it has
//! forgotten. A queue entry's delete is idempotent (deleting it twice is
//! one delete marker's effect), and its marker carries its key: a process
//! killed after the delete and before the host recorded it finds the key
//! on observe, and the step counts as done by this run, not skipped.

use handoff_sdk::{
    Action, AdapterError, Message, Observed, RecordRef, Target, action_name, export, nats,
};

struct Nats;

fn server() -> Result<String, AdapterError> {
    handoff_sdk::config("server")
        .ok_or_else(|| AdapterError::Invalid("config `server` (IP:port of NATS) is not set".into()))
}

fn subject(channel: &str) -> Result<String, AdapterError> {
    if channel.is_empty() || channel.contains(['.', '*', '>', ' ']) {
        return Err(AdapterError::Invalid(format!(
            "channel id {channel:?} must be one subject token (no '.', '*', '>' or spaces)"
        )));
    }
    let prefix = handoff_sdk::config("subject-prefix").unwrap_or_else(|| "handoff".into());
    Ok(format!("{prefix}.{channel}"))
}

fn is_bucket_kind(kind: &str) -> bool {
    handoff_sdk::config("bucket-kinds")
        .unwrap_or_else(|| "review-queue".into())
        .split(',')
        .any(|k| k.trim() == kind)
}

enum Kind {
    Channel(String),
    Entry { bucket: String, key: String },
}

fn kind(record: &RecordRef) -> Result<Kind, AdapterError> {
    if record.kind == "channel" {
        Ok(Kind::Channel(subject(&record.id)?))
    } else if is_bucket_kind(&record.kind) {
        Ok(Kind::Entry {
            bucket: record.kind.clone(),
            key: record.id.clone(),
        })
    } else {
        Err(AdapterError::Unsupported(format!(
            "record kind {:?}: this adapter knows `channel` and the bucket kinds in config `bucket-kinds`",
            record.kind
        )))
    }
}

fn observe_channel(subject: &str) -> Result<Observed, AdapterError> {
    let keys = nats::recent_msg_ids(&server()?, subject, handoff_sdk::observe_window()?)?;
    Ok(Observed {
        exists: true,
        state: "open".into(),
        revision: None,
        fields: vec![("subject".into(), subject.to_string())],
        links: Vec::new(),
        applied_keys: keys,
    })
}

fn observe_entry(bucket: &str, key: &str) -> Result<Observed, AdapterError> {
    let Some(entry) = nats::kv_get(&server()?, bucket, key)? else {
        return Ok(Observed::missing());
    };
    let mut fields = vec![("bucket".to_string(), bucket.to_string())];
    // A JSON object's string values are fields the policy may test.
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&entry.value) {
        for (k, v) in map {
            if let serde_json::Value::String(v) = v {
                fields.push((k, v));
            }
        }
    }
    // A delete marker carries the key of the step that cleared the entry
    // (none when it was cleared some other way).
    let applied_keys = match entry.deleted {
        true => nats::kv_msg_id(&server()?, bucket, key)?
            .into_iter()
            .collect(),
        false => Vec::new(),
    };
    Ok(Observed {
        exists: true,
        state: if entry.deleted { "cleared" } else { "queued" }.into(),
        revision: Some(entry.revision.to_string()),
        fields,
        links: Vec::new(),
        applied_keys,
    })
}

/// The message as published: identifiers, states and links only, as the
/// policy wrote them, plus the key it was sent under.
fn payload(message: &Message, key: &str) -> Vec<u8> {
    serde_json::json!({
        "subject": message.subject,
        "body": message.body,
        "links": message.links.iter().map(|l| serde_json::json!({"url": l.url, "title": l.title})).collect::<Vec<_>>(),
        "idempotency_key": key,
    })
    .to_string()
    .into_bytes()
}

impl Target for Nats {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        match kind(&record)? {
            Kind::Channel(subject) => observe_channel(&subject),
            Kind::Entry { bucket, key } => observe_entry(&bucket, &key),
        }
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        match (kind(&record)?, &action) {
            (Kind::Channel(subject), Action::Publish(message)) => {
                let ack = nats::publish(&server()?, &subject, &key, &payload(message, &key))?;
                if ack.duplicate {
                    handoff_sdk::log(
                        handoff_sdk::Level::Info,
                        &format!(
                            "{subject}: {key} was already stored (sequence {}); nothing sent",
                            ack.sequence
                        ),
                    );
                }
                observe_channel(&subject)
            }
            (Kind::Entry { bucket, key: entry }, Action::ClearEntry) => {
                let server = server()?;
                match nats::kv_get(&server, &bucket, &entry)? {
                    None => {
                        return Err(AdapterError::NotFound(format!(
                            "{bucket}/{entry}: no such entry to clear"
                        )));
                    }
                    Some(e) if e.deleted => {}
                    Some(_) => nats::kv_delete_keyed(&server, &bucket, &entry, &key)?,
                }
                observe_entry(&bucket, &entry)
            }
            (_, action) => Err(AdapterError::Unsupported(format!(
                "{} on a {} record",
                action_name(action),
                record.kind
            ))),
        }
    }
}

export!(Nats: target);
