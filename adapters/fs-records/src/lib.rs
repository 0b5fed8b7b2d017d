//! A record store kept as files: `/records/<kind>/<id>.json`, one JSON
//! object per record. It serves as a decision source (a review record's
//! state and fields) and as a closure target (checklists, trackers, queues,
//! channels) for the embedded default, where no servers run.
//!
//! A message published to a record (a `channel`) is appended to
//! `/records/<kind>/<id>.messages.jsonl` as one line that carries its key:
//! that line is the publish, whole or not at all. The key is then also put
//! in `<id>.sent` and its index (256 buckets, `<id>.index/`), so a publish
//! checks every key sent before in one bucket, not the whole log. A stop
//! between the line and the index leaves the newest line's key unindexed:
//! every publish first reads the channel's last line and indexes its key
//! if it is missing, and observe reports it among the keys, so the message
//! is never published twice. Observing a channel reports the keys of its
//! latest `observe-window` messages (config, default 100), as the mail and
//! webhook adapters do. A channel's history only grows at its end, so a
//! publish costs the same whatever came before. A newest line over 1 MiB is
//! no message this adapter wrote: the channel is refused as `invalid`
//! rather than read on.
//!
//! A record is written with `fs::replace`: a stop mid-write leaves the old
//! record or the new one whole, never a torn mix of the two. A change reads
//! the record and writes it back with no lock, so calls on one record must
//! take turns: the manifest declares `one-call-per-record`, and the host
//! gives each record one call at a time whatever an instance's
//! configuration says, across every process on one handoff store (a
//! service and `handoff run`, or runs started side by side). Two
//! deployments with stores of their own writing one directory of records
//! would not see each other's turns, and could each write over the other's
//! change, as a file offers no write conditional on what was read (the
//! `s3-archive` adapter's store does, and it uses it). Appends to the
//! journal and to channel logs are whole lines whoever else appends.
//!
//! Every write that changes something has exactly one line in
//! `/records/journal.jsonl` (kind, id, action, idempotency key), so tests
//! and operators can count what was really written, even across kills
//! ([`journal`] says how). Applying an action whose key the record already
//! carries changes nothing and journals nothing.
//!
//! Two behaviours of real record systems, on request:
//! - a file `/records/OFFLINE` means the store is down for maintenance:
//!   every call answers `transient` until it is removed;
//! - config `frozen-kinds` (comma-separated kinds) makes `set-state` on those
//!   kinds answer success without changing anything, as a tracker does when
//!   its workflow forbids a transition.

use handoff_sdk::{
    Action, AdapterError, Decision, Observed, RecordRef, Source, Target, action_name, export, fs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod channel;
mod journal;
use channel::{Channel, Published};
use journal::Entry;

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
    #[serde(deserialize_with = "fields_named_once")]
    fields: BTreeMap<String, String>,
    links: Vec<String>,
    notes: Vec<String>,
    applied_keys: Vec<String>,
    /// The last write this adapter made, and the journal's length just
    /// before it: where its journal line belongs.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_write: Option<LastWrite>,
}

/// A record's fields, each name once: a file naming one twice could be read
/// either way (`serde` would keep the last), so it is refused as unreadable.
fn fields_named_once<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Fields;
    impl<'de> serde::de::Visitor<'de> for Fields {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of text fields")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut fields = BTreeMap::new();
            while let Some((name, value)) = map.next_entry::<String, String>()? {
                if fields.contains_key(&name) {
                    return Err(serde::de::Error::custom(format_args!(
                        "field {name:?} is named twice"
                    )));
                }
                fields.insert(name, value);
            }
            Ok(fields)
        }
    }
    d.deserialize_map(Fields)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastWrite {
    action: String,
    key: String,
    journal_at: u64,
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

fn entry(record: &RecordRef, action: &str, key: &str, revision: Option<u64>) -> Entry {
    Entry {
        kind: record.kind.clone(),
        id: record.id.clone(),
        action: action.into(),
        key: key.into(),
        revision,
    }
}

/// Finish what a stop may have left of the record's last write: its one
/// journal line.
fn settle_record(record: &RecordRef, stored: &Record, writable: bool) -> Result<(), AdapterError> {
    let Some(last) = &stored.last_write else {
        return Ok(());
    };
    let entry = entry(record, &last.action, &last.key, Some(stored.revision));
    journal::settle(&entry, last.journal_at, writable)
}

/// What a look at a record may finish of what a stop left.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settling {
    /// An observe: what it can write, if its directory is writable.
    IfWritable,
    /// Right after this call's own publish, which left nothing to finish.
    Done,
}

/// A record as observed: its file, and the latest keys of any messages
/// published to it (the newest line's key among them, indexed or not).
fn look(record: &RecordRef, settling: Settling) -> Result<Observed, AdapterError> {
    let stored = load(record)?;
    if let Some(stored) = &stored
        && settling == Settling::IfWritable
    {
        settle_record(record, stored, false)?;
    }
    let channel = Channel::of(record)?;
    let newest = match settling {
        Settling::IfWritable => channel.settle(record, false)?,
        Settling::Done => channel.last()?.map(|l| l.key),
    };
    // A key goes into the sent log only after its message line: with no
    // line there is no key to report (and no log to open).
    let sent = match newest {
        None => Vec::new(),
        Some(key) => {
            let mut sent = channel
                .log
                .recent(handoff_sdk::observe_window()? as usize)?;
            if !sent.contains(&key) {
                sent.push(key);
            }
            sent
        }
    };
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

/// Publish a message once: the line that carries its key is the publish;
/// indexing the key and journaling it follow, and are finished by the
/// next call if a stop comes between.
fn publish(
    record: &RecordRef,
    message: &handoff_sdk::Message,
    key: &str,
) -> Result<(), AdapterError> {
    let channel = Channel::of(record)?;
    channel.settle(record, true)?;
    if channel.log.contains(key)? {
        return Ok(());
    }
    let line = serde_json::to_string(&Published {
        subject: message.subject.clone(),
        links: message.links.iter().map(|l| l.url.clone()).collect(),
        key: key.into(),
        journal_at: Some(journal::mark()?),
    })
    .map_err(|e| AdapterError::Invalid(format!("encode {}: {e}", channel.messages)))?;
    // The kind's directory is made by the first publish to it.
    fs::append_making_dir(&channel.messages, format!("{line}\n").as_bytes())?;
    // The publish is made; what follows is what the next call would finish
    // if a stop came now.
    channel.log.record(key)?;
    journal::record(&entry(record, "publish", key, None))
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
        look(&record, Settling::IfWritable)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        online()?;
        if let Action::Publish(message) = &action {
            publish(&record, message, &key)?;
            return look(&record, Settling::Done);
        }
        let existing = load(&record)?;
        if let Some(stored) = &existing {
            // The previous write's journal line first, so lines keep the
            // order of the writes.
            settle_record(&record, stored, true)?;
        }
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
        value.last_write = Some(LastWrite {
            action: name.into(),
            key: key.clone(),
            journal_at: journal::mark()?,
        });
        if value.state == "cleared" {
            // A cleared queue entry keeps no data, only its state and keys
            // (so a repeat is recognised).
            value.fields.clear();
        }
        store(&record, &value)?;
        journal::record(&entry(&record, name, &key, Some(value.revision)))?;
        Ok(observed(Some(&value)))
    }
}

export!(Records: source, target);

#[cfg(test)]
mod tests;
