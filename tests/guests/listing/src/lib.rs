//! A test source adapter. `list-changes` pages through the changes
//! `/records/changes.json` lists (`[{"kind", "id", "state"}]`; the cursor is
//! the index of the next one), so a test can make a source list anything,
//! names no real system would give included; with `/records/ENDLESS` the
//! list never ends. `read-decision` reads
//! `/records/<kind>/<id>.json` as `fs-records` stores a record, with the
//! SDK's errors (a record with no file is `not-found`).

use handoff_sdk::{AdapterError, Change, ChangePage, Decision, RecordRef, Source, export, fs};
use serde::Deserialize;
use std::collections::BTreeMap;

struct Listing;

#[derive(Deserialize)]
struct Listed {
    kind: String,
    id: String,
    state: String,
}

#[derive(Deserialize)]
struct Stored {
    state: String,
    revision: u64,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

fn json<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, AdapterError> {
    serde_json::from_slice(&fs::read(path)?)
        .map_err(|e| AdapterError::Invalid(format!("{path}: {e}")))
}

impl Source for Listing {
    fn read_decision(record: RecordRef) -> Result<Decision, AdapterError> {
        let path = format!("/records/{}/{}.json", record.kind, record.id);
        let stored: Stored = json(&path)?;
        Ok(Decision {
            state: stored.state,
            revision: Some(stored.revision.to_string()),
            fields: stored.fields.into_iter().collect(),
            links: Vec::new(),
            record,
        })
    }

    fn list_changes(cursor: String, limit: u32) -> Result<ChangePage, AdapterError> {
        let listed: Vec<Listed> = json("/records/changes.json")?;
        let from: usize = if cursor.is_empty() {
            0
        } else {
            cursor
                .parse()
                .map_err(|_| AdapterError::Invalid(format!("cursor {cursor:?}")))?
        };
        // With `/records/ENDLESS` there is always more: past the end the
        // list starts over while the cursor goes on growing.
        let start = if fs::exists("/records/ENDLESS") && !listed.is_empty() {
            from % listed.len()
        } else {
            from
        };
        let to = listed.len().min(start + limit as usize);
        let changes = listed[start.min(to)..to]
            .iter()
            .map(|l| Change {
                record: RecordRef {
                    system: "listing".into(),
                    kind: l.kind.clone(),
                    id: l.id.clone(),
                },
                state: l.state.clone(),
                revision: None,
            })
            .collect::<Vec<_>>();
        Ok(ChangePage {
            next_cursor: (from + changes.len()).to_string(),
            changes,
        })
    }
}

export!(Listing: source);
