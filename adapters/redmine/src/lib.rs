//! Redmine through its REST API, as a decision source and a closure target.
//!
//! Records: kinds listed in config `issue-kinds` (default `issue`) are
//! Redmine issues, kinds in `version-kinds` (default `version`) are Redmine
//! versions (milestones); any other kind is `unsupported`. Ids are Redmine's
//! numeric ids. Config `base_url` is the Redmine address (its origin must be
//! granted in the manifest); the API key is injected by the host. For
//! `list-changes`, config `project` limits the listing to one project and
//! `settle-seconds` (default 2) says how long after its second an update
//! is taken as settled (see `json::list_changes`).
//!
//! What the host sees of an issue: its state is the status name in lower
//! case with spaces as dashes (`In Progress` → `in-progress`); fields are
//! the custom fields the same way (`Review version` → `review_version`)
//! plus `subject`, `tracker` and `project`; links are the URLs in its
//! notes; applied keys are the `handoff-key:` lines of its notes.
//!
//! Every write is one `PUT` that also adds a note ending in
//! `handoff-key: <key>`; a write whose key is already on the issue is not
//! sent again. No crash window: the change and its key are one request,
//! which Redmine applies whole or not at all, and observe reads the key
//! back from the issue's notes, so a resumed run sees its own write. Redmine answers a status change its workflow forbids with
//! 204 and changes nothing; this adapter reports what the issue then shows
//! and the host's confirm stage catches the difference.
//!
//! A note's text from the policy and the event (a link's title, an
//! annotation) is written with the characters Redmine's Textile and
//! Markdown read as markup given as entities, so it shows as written and
//! cannot make a link, an image, a mention or a macro of its own; a link's
//! URL is written as it is, for Redmine to make it a link, and one with
//! white space, a quote or an angle bracket in it is `invalid`.

mod clock;
mod json;

use handoff_sdk::http::{self, Request};
use handoff_sdk::{
    Action, AdapterError, ChangePage, Decision, Observed, RecordRef, Source, Target, export,
};
use json::{Issue, Version};

const KEY_MARKER: &str = "handoff-key: ";

struct Redmine;

enum Kind {
    Issue,
    Version,
}

fn listed(key: &str, default: &str, kind: &str) -> bool {
    handoff_sdk::config(key)
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .any(|k| k.trim() == kind)
}

fn kind_of(record: &RecordRef) -> Result<Kind, AdapterError> {
    if listed("issue-kinds", "issue", &record.kind) {
        Ok(Kind::Issue)
    } else if listed("version-kinds", "version", &record.kind) {
        Ok(Kind::Version)
    } else {
        Err(AdapterError::Unsupported(format!(
            "record kind {:?} is neither in config issue-kinds nor version-kinds",
            record.kind
        )))
    }
}

fn id_of(record: &RecordRef) -> Result<u64, AdapterError> {
    record.id.parse().map_err(|_| {
        AdapterError::Invalid(format!(
            "{} id {:?} is not a Redmine id (a number)",
            record.kind, record.id
        ))
    })
}

fn base_url() -> Result<String, AdapterError> {
    handoff_sdk::config("base_url")
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| AdapterError::Invalid("config base_url is not set".into()))
}

/// `In Progress` → `in-progress`; `Review version` → `review_version`.
pub fn state_name(status: &str) -> String {
    status.trim().to_lowercase().replace(' ', "-")
}

pub fn field_name(name: &str) -> String {
    name.trim().to_lowercase().replace([' ', '-'], "_")
}

fn get_json<T: serde::de::DeserializeOwned>(path: &str) -> Result<Option<T>, AdapterError> {
    Ok(get_answer(path)?.map(|(value, _)| value))
}

/// The answer's JSON and its `Date` header, or none on a 404.
fn get_answer<T: serde::de::DeserializeOwned>(
    path: &str,
) -> Result<Option<(T, Option<String>)>, AdapterError> {
    let url = format!("{}{path}", base_url()?);
    let response = http::get(&url)?;
    if response.status == 404 {
        return Ok(None);
    }
    let response = response.error_for_status(&format!("GET {path}"))?;
    let date = response.header("date").map(str::to_string);
    serde_json::from_slice(&response.body)
        .map(|value| Some((value, date)))
        .map_err(|e| AdapterError::Invalid(format!("GET {path}: unreadable answer: {e}")))
}

fn put_json(path: &str, body: serde_json::Value) -> Result<(), AdapterError> {
    let url = format!("{}{path}", base_url()?);
    let response = http::send(Request::new("PUT", &url).json(body.to_string()))?;
    if response.status == 422 {
        // Redmine explains a refused change in `errors`.
        return Err(AdapterError::Conflict(format!(
            "PUT {path}: Redmine refused: {}",
            response.text()
        )));
    }
    response.error_for_status(&format!("PUT {path}"))?;
    Ok(())
}

fn issue(id: u64) -> Result<Option<Issue>, AdapterError> {
    Ok(
        get_json::<json::IssueEnvelope>(&format!("/issues/{id}.json?include=journals"))?
            .map(|e| e.issue),
    )
}

fn version(id: u64) -> Result<Option<Version>, AdapterError> {
    Ok(get_json::<json::VersionEnvelope>(&format!("/versions/{id}.json"))?.map(|e| e.version))
}

fn observe_record(record: &RecordRef) -> Result<Observed, AdapterError> {
    let id = id_of(record)?;
    Ok(match kind_of(record)? {
        Kind::Issue => issue(id)?.map_or_else(Observed::missing, |i| i.observed()),
        Kind::Version => version(id)?.map_or_else(Observed::missing, |v| v.observed()),
    })
}

/// The Redmine status id for a state name, from the statuses it knows.
fn status_id(state: &str) -> Result<u64, AdapterError> {
    let statuses = get_json::<json::Statuses>("/issue_statuses.json")?
        .ok_or_else(|| AdapterError::Invalid("GET /issue_statuses.json: not found".into()))?;
    statuses
        .issue_statuses
        .iter()
        .find(|s| state_name(&s.name) == state)
        .map(|s| s.id)
        .ok_or_else(|| {
            let known: Vec<String> = statuses
                .issue_statuses
                .iter()
                .map(|s| state_name(&s.name))
                .collect();
            AdapterError::Invalid(format!(
                "Redmine has no status {state:?} (it has: {})",
                known.join(", ")
            ))
        })
}

fn apply_to_issue(id: u64, action: &Action, key: &str) -> Result<(), AdapterError> {
    let current = issue(id)?
        .ok_or_else(|| AdapterError::NotFound(format!("Redmine issue {id} does not exist")))?;
    if current.observed().applied_keys.iter().any(|k| k == key) {
        return Ok(());
    }
    let marker = format!("{KEY_MARKER}{key}");
    let body = match action {
        Action::SetState(state) => serde_json::json!({ "issue": {
            "status_id": status_id(state)?,
            "notes": format!("Closure step: state set to {state}.\n\n{marker}"),
        }}),
        Action::AttachLink(link) => serde_json::json!({ "issue": {
            "notes": format!("{}: {}\n\n{marker}", as_text(&link.title), one_url(&link.url)?),
        }}),
        Action::Annotate(text) => serde_json::json!({ "issue": {
            "notes": format!("{}\n\n{marker}", as_text(text)),
        }}),
        Action::ClearEntry | Action::Publish(_) => {
            return Err(AdapterError::Unsupported(format!(
                "{} is not an action on Redmine issues",
                handoff_sdk::action_name(action)
            )));
        }
    };
    put_json(&format!("/issues/{id}.json"), body)
}

/// `text` as a note shows it whatever the project's text formatting: each
/// character Textile or Markdown would read as markup (a link, an image, a
/// mention, a macro, emphasis) given as a numeric entity, which both show
/// as the character itself.
fn as_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "&<>\"'!@#[](){}*_^~+=|`\\:%".contains(c) {
            out.push_str(&format!("&#{};", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A link's URL as one word Redmine makes a link of, or why it cannot be.
fn one_url(url: &str) -> Result<&str, AdapterError> {
    if url.is_empty()
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"<>".contains(c))
    {
        return Err(AdapterError::Invalid(format!(
            "a link's URL must be one word without quotes or angle brackets: {url:?}"
        )));
    }
    Ok(url)
}

fn apply_to_version(id: u64, action: &Action) -> Result<(), AdapterError> {
    match action {
        Action::SetState(state) if ["open", "locked", "closed"].contains(&state.as_str()) => {
            put_json(
                &format!("/versions/{id}.json"),
                serde_json::json!({ "version": { "status": state } }),
            )
        }
        Action::SetState(state) => Err(AdapterError::Invalid(format!(
            "a Redmine version is open, locked or closed, not {state:?}"
        ))),
        other => Err(AdapterError::Unsupported(format!(
            "{} is not an action on Redmine versions",
            handoff_sdk::action_name(other)
        ))),
    }
}

impl Source for Redmine {
    fn read_decision(record: RecordRef) -> Result<Decision, AdapterError> {
        let id = id_of(&record)?;
        let Kind::Issue = kind_of(&record)? else {
            return Err(AdapterError::Unsupported(
                "decisions are Redmine issues, not versions".into(),
            ));
        };
        let issue = issue(id)?
            .ok_or_else(|| AdapterError::NotFound(format!("Redmine issue {id} does not exist")))?;
        let seen = issue.observed();
        Ok(Decision {
            record,
            state: seen.state,
            revision: seen.revision,
            fields: seen.fields,
            links: seen.links,
        })
    }

    fn list_changes(cursor: String, limit: u32) -> Result<ChangePage, AdapterError> {
        json::list_changes(&cursor, limit)
    }
}

impl Target for Redmine {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        observe_record(&record)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let id = id_of(&record)?;
        match kind_of(&record)? {
            Kind::Issue => apply_to_issue(id, &action, &key)?,
            Kind::Version => apply_to_version(id, &action)?,
        }
        observe_record(&record)
    }
}

export!(Redmine: source, target);

#[cfg(test)]
mod tests;
