//! A record store kept as files: `/records/<kind>/<id>.json`, one JSON
//! object per record. It serves as a decision source (a review record's
//! state and fields) and as a closure target (checklists, trackers, queues,
//! channels) for the embedded default, where no servers run.
//!
//! A message published to a record (a `channel`) is appended to
//! `/records/<kind>/<id>.messages.jsonl`, and its key to `<id>.sent`: a
//! channel's history only grows at its end, so a publish costs the same
//! whatever came before. Observing a channel reports the keys of its latest
//! `observe-window` messages (config, default 100), as the mail and webhook
//! adapters do; a publish checks every key sent before (in one of 256
//! index buckets, `<id>.index/`, not the whole log).
//!
//! A record is written with `fs::replace`: a stop mid-write leaves the old
//! record or the new one whole, never a torn mix of the two. A change reads
//! the record and writes it back with no lock, so an instance that takes
//! more than one call at once must take one per record
//! (`one-call-per-record = true` in `handoff.toml`); appends to the journal
//! and to channel logs are whole lines whoever else appends.
//!
//! Every write that changes something is appended to
//! `/records/journal.jsonl` (kind, id, action, idempotency key), so tests and
//! operators can count what was really written. Applying an action whose
//! key the record already carries changes nothing and journals nothing.
//!
//! Two behaviours of real record systems, on request:
//! - a file `/records/OFFLINE` means the store is down for maintenance:
//!   every call answers `transient` until it is removed;
//! - config `frozen-kinds` (comma-separated kinds) makes `set-state` on those
//!   kinds answer success without changing anything, as a tracker does when
//!   its workflow forbids a transition.

use handoff_sdk::sent::SentLog;
use handoff_sdk::{
    Action, AdapterError, Decision, Observed, RecordRef, Source, Target, action_name, export, fs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const JOURNAL: &str = "/records/journal.jsonl";
const OFFLINE: &str = "/records/OFFLINE";

fn online() -> Result<(), AdapterError> {
    if fs::exists(OFFLINE) {
        return Err(AdapterError::Transient(format!(
            "the record store is offline for maintenance ({OFFLINE} is present)"
        )));
    }
    Ok(())
}

/// Whether state changes on `kind` are acknowledged and ignored.
fn frozen(kind: &str) -> bool {
    handoff_sdk::config("frozen-kinds")
        .is_some_and(|list| list.split(',').any(|k| k.trim() == kind))
}

/// A record as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Record {
    state: String,
    revision: u64,
    fields: BTreeMap<String, String>,
    links: Vec<String>,
    notes: Vec<String>,
    applied_keys: Vec<String>,
}

/// One line of a channel's message log.
#[derive(Serialize)]
struct Published<'a> {
    subject: &'a str,
    links: Vec<&'a str>,
    key: &'a str,
}

#[derive(Serialize)]
struct JournalLine<'a> {
    kind: &'a str,
    id: &'a str,
    action: &'a str,
    key: &'a str,
    /// The record's revision after the write (none for a message).
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

fn path(record: &RecordRef) -> Result<String, AdapterError> {
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !s.starts_with('.')
    };
    if !safe(&record.kind) || !safe(&record.id) {
        return Err(AdapterError::Invalid(format!(
            "record {}/{}: kind and id use letters, digits, '-', '_' and '.'",
            record.kind, record.id
        )));
    }
    Ok(format!("/records/{}/{}.json", record.kind, record.id))
}

/// Where messages published to `record` go (its path is checked first).
fn channel(record: &RecordRef) -> Result<(String, SentLog), AdapterError> {
    path(record)?;
    Ok((
        format!("/records/{}/{}.messages.jsonl", record.kind, record.id),
        SentLog::new(&format!("/records/{}", record.kind), &record.id)?,
    ))
}

fn window() -> usize {
    handoff_sdk::config("observe-window")
        .and_then(|w| w.parse().ok())
        .unwrap_or(100)
}

/// A record as observed: its file, and the latest keys of any messages
/// published to it.
fn look(record: &RecordRef) -> Result<Observed, AdapterError> {
    let stored = load(record)?;
    let (_, log) = channel(record)?;
    let sent = log.recent(window())?;
    let mut seen = observed(stored.as_ref());
    if !sent.is_empty() {
        if !seen.exists {
            // A channel exists once something was published to it.
            seen.exists = true;
            seen.state = "open".into();
        }
        seen.applied_keys.extend(sent);
    }
    Ok(seen)
}

/// Append a message to the channel's log, then its key: a stop between the
/// two can publish it again (with the same key), never lose it.
fn publish(
    record: &RecordRef,
    message: &handoff_sdk::Message,
    key: &str,
) -> Result<(), AdapterError> {
    let (messages, log) = channel(record)?;
    let line = serde_json::to_string(&Published {
        subject: &message.subject,
        links: message.links.iter().map(|l| l.url.as_str()).collect(),
        key,
    })
    .map_err(|e| AdapterError::Invalid(format!("encode {messages}: {e}")))?;
    // The kind's directory is made by the first publish to it.
    fs::append_making_dir(&messages, format!("{line}\n").as_bytes())?;
    log.record(key)
}

/// Count a write that changed something.
fn journal(
    record: &RecordRef,
    action: &str,
    key: &str,
    revision: Option<u64>,
) -> Result<(), AdapterError> {
    let line = serde_json::to_string(&JournalLine {
        kind: &record.kind,
        id: &record.id,
        action,
        key,
        revision,
    })
    .map_err(|e| AdapterError::Invalid(format!("journal: {e}")))?;
    fs::append(JOURNAL, format!("{line}\n").as_bytes())
}

fn load(record: &RecordRef) -> Result<Option<Record>, AdapterError> {
    match fs::read(&path(record)?) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            AdapterError::Invalid(format!(
                "record {}/{} is not readable: {e}",
                record.kind, record.id
            ))
        }),
        Err(AdapterError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write back a record that was just read (so its directory exists).
fn store(record: &RecordRef, value: &Record) -> Result<(), AdapterError> {
    let path = path(record)?;
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| AdapterError::Invalid(format!("encode {path}: {e}")))?;
    fs::replace(&path, &json)
}

fn observed(record: Option<&Record>) -> Observed {
    match record {
        None => Observed::missing(),
        Some(r) => Observed {
            exists: true,
            state: r.state.clone(),
            revision: Some(r.revision.to_string()),
            fields: r
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            links: r.links.clone(),
            applied_keys: r.applied_keys.clone(),
        },
    }
}

struct Records;

impl Source for Records {
    fn read_decision(record: RecordRef) -> Result<Decision, AdapterError> {
        online()?;
        let found = load(&record)?.ok_or_else(|| {
            AdapterError::NotFound(format!("record {}/{}", record.kind, record.id))
        })?;
        Ok(Decision {
            state: found.state.clone(),
            revision: Some(found.revision.to_string()),
            fields: found.fields.into_iter().collect(),
            links: found.links,
            record,
        })
    }
}

impl Target for Records {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        online()?;
        look(&record)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        online()?;
        if let Action::Publish(message) = &action {
            let (_, log) = channel(&record)?;
            if !log.contains(&key)? {
                publish(&record, message, &key)?;
                journal(&record, action_name(&action), &key, None)?;
            }
            return look(&record);
        }
        let existing = load(&record)?;
        if matches!(action, Action::SetState(_)) && frozen(&record.kind) {
            return Ok(observed(existing.as_ref()));
        }
        if existing
            .as_ref()
            .is_some_and(|r| r.applied_keys.contains(&key))
        {
            return Ok(observed(existing.as_ref()));
        }
        let name = action_name(&action);
        let mut value = match (existing, &action) {
            (Some(r), _) => r,
            // Clearing an entry that is not there: already done.
            (None, Action::ClearEntry) => return Ok(Observed::missing()),
            (None, _) => {
                return Err(AdapterError::NotFound(format!(
                    "record {}/{}",
                    record.kind, record.id
                )));
            }
        };
        match action {
            Action::SetState(state) => value.state = state,
            Action::AttachLink(link) => {
                if !value.links.contains(&link.url) {
                    value.links.push(link.url);
                }
            }
            Action::Annotate(note) => value.notes.push(note),
            Action::ClearEntry => value.state = "cleared".into(),
            // Published above, without touching the record's file.
            Action::Publish(_) => unreachable!("a publish returns before this"),
        }
        value.revision += 1;
        value.applied_keys.push(key.clone());
        if value.state == "cleared" {
            // A cleared queue entry keeps no data, only its state and keys
            // (so a repeat is recognised).
            value.fields.clear();
        }
        store(&record, &value)?;
        journal(&record, name, &key, Some(value.revision))?;
        Ok(observed(Some(&value)))
    }
}

export!(Records: source, target);

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_sdk::testing::Harness;
    use handoff_sdk::{Link, Message};

    fn rec(kind: &str, id: &str) -> RecordRef {
        RecordRef {
            system: "records".into(),
            kind: kind.into(),
            id: id.into(),
        }
    }

    fn harness(name: &str) -> (Harness, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fs-records-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("checklist")).unwrap();
        std::fs::write(
            dir.join("checklist/CL-7.json"),
            r#"{"state":"open","revision":1,"fields":{"release_id":"R-42"}}"#,
        )
        .unwrap();
        (Harness::new().dir("records", &dir), dir)
    }

    fn journal(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_repeated_key_is_one_write() {
        let (h, dir) = harness("repeat");
        let close = || {
            Records::apply(
                rec("checklist", "CL-7"),
                Action::SetState("closed".into()),
                "k1".into(),
            )
        };
        let first = h.run(close).unwrap();
        let second = h.run(close).unwrap();
        assert_eq!(first.state, "closed");
        assert_eq!(second.revision.as_deref(), Some("2"));
        assert_eq!(journal(&dir).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_action_changes_what_observe_reports() {
        let (h, dir) = harness("actions");
        let r = rec("checklist", "CL-7");
        h.run(|| {
            Records::apply(
                r.clone(),
                Action::AttachLink(Link {
                    url: "https://e/1".into(),
                    title: "evidence".into(),
                }),
                "a".into(),
            )
        })
        .unwrap();
        h.run(|| {
            Records::apply(
                r.clone(),
                Action::Annotate("closed by handoff".into()),
                "b".into(),
            )
        })
        .unwrap();
        let msg = Message {
            subject: "R-42 ready".into(),
            body: String::new(),
            links: vec![],
        };
        h.run(|| {
            Records::apply(
                rec("channel", "coord"),
                Action::Publish(msg.clone()),
                "c".into(),
            )
        })
        .unwrap();
        let after = h.run(|| Records::observe(r.clone())).unwrap();
        assert_eq!(after.links, ["https://e/1"]);
        assert_eq!(after.field("release_id"), Some("R-42"));
        assert_eq!(after.applied_keys, ["a", "b"]);
        let channel = h.run(|| Records::observe(rec("channel", "coord"))).unwrap();
        assert!(channel.exists && channel.applied_keys == ["c"]);
        assert_eq!(journal(&dir).len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_channel_log_shows_its_latest_keys_and_never_repeats_an_old_one() {
        let (h, dir) = harness("channel");
        let h = h.config("observe-window", "2");
        let coord = rec("channel", "coord");
        let publish = |key: &str| {
            let msg = Message {
                subject: format!("message {key}"),
                body: String::new(),
                links: vec![Link {
                    url: format!("https://e/{key}"),
                    title: String::new(),
                }],
            };
            h.run(|| Records::apply(coord.clone(), Action::Publish(msg), key.into()))
                .unwrap()
        };
        for key in ["k1", "k2", "k3", "k4", "k5"] {
            publish(key);
        }
        let seen = h.run(|| Records::observe(coord.clone())).unwrap();
        assert!(seen.exists);
        assert_eq!(seen.applied_keys, ["k4", "k5"]);
        // k1 is outside the window, yet a repeat still publishes nothing.
        publish("k1");
        let log = std::fs::read_to_string(dir.join("channel/coord.messages.jsonl")).unwrap();
        let keys: Vec<String> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
            .collect();
        assert_eq!(
            keys,
            [r#""k1""#, r#""k2""#, r#""k3""#, r#""k4""#, r#""k5""#]
        );
        assert!(log.contains("https://e/k3"), "{log}");
        assert_eq!(journal(&dir).len(), 5);
        assert!(!dir.join("channel/coord.json").exists(), "no record file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offline_is_transient_and_frozen_kinds_ignore_state_changes() {
        let (h, dir) = harness("quirks");
        std::fs::write(dir.join("OFFLINE"), b"").unwrap();
        let e = h.run(|| Records::observe(rec("checklist", "CL-7")));
        assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
        std::fs::remove_file(dir.join("OFFLINE")).unwrap();
        let h = h.config("frozen-kinds", "milestone, checklist");
        let after = h
            .run(|| {
                Records::apply(
                    rec("checklist", "CL-7"),
                    Action::SetState("closed".into()),
                    "k".into(),
                )
            })
            .unwrap();
        assert_eq!(after.state, "open");
        assert!(journal(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_records_and_bad_ids_are_typed_errors() {
        let (h, dir) = harness("errors");
        let e = h.run(|| {
            Records::apply(
                rec("checklist", "none"),
                Action::SetState("closed".into()),
                "k".into(),
            )
        });
        assert!(matches!(e, Err(AdapterError::NotFound(_))), "{e:?}");
        let e = h.run(|| Records::observe(rec("checklist", "../../etc")));
        assert!(matches!(e, Err(AdapterError::Invalid(_))), "{e:?}");
        let d = h
            .run(|| Records::read_decision(rec("checklist", "CL-7")))
            .unwrap();
        assert_eq!(
            (d.state.as_str(), d.revision.as_deref()),
            ("open", Some("1"))
        );
        assert!(journal(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
