//! Redmine's JSON, read into what the host sees.

use crate::{KEY_MARKER, clock, field_name, get_answer, state_name};
use handoff_sdk::{AdapterError, Change, ChangePage, Observed, RecordRef};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct IssueEnvelope {
    pub issue: Issue,
}

#[derive(Debug, Deserialize)]
pub struct VersionEnvelope {
    pub version: Version,
}

#[derive(Debug, Deserialize)]
pub struct Statuses {
    pub issue_statuses: Vec<Named>,
}

#[derive(Debug, Deserialize)]
pub struct Named {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct CustomField {
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Deserialize)]
pub struct Journal {
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Issue {
    pub id: u64,
    pub project: Named,
    pub tracker: Named,
    pub status: Named,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub updated_on: Option<String>,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
    #[serde(default)]
    pub journals: Vec<Journal>,
}

#[derive(Debug, Deserialize)]
pub struct Version {
    pub project: Named,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub updated_on: Option<String>,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// A custom field's value as text (several values joined by commas).
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn custom(fields: &[CustomField]) -> impl Iterator<Item = (String, String)> + '_ {
    fields.iter().map(|f| (field_name(&f.name), text(&f.value)))
}

impl Issue {
    pub fn observed(&self) -> Observed {
        let mut fields: Vec<(String, String)> = vec![
            ("subject".into(), self.subject.clone()),
            ("tracker".into(), self.tracker.name.clone()),
            ("project".into(), self.project.name.clone()),
        ];
        fields.extend(custom(&self.custom_fields));
        let mut links = Vec::new();
        let mut applied_keys = Vec::new();
        for note in self.journals.iter().filter_map(|j| j.notes.as_deref()) {
            for line in note.lines() {
                if let Some(key) = line.trim().strip_prefix(KEY_MARKER) {
                    applied_keys.push(key.trim().to_string());
                    continue;
                }
                for word in line.split_whitespace() {
                    if (word.starts_with("https://") || word.starts_with("http://"))
                        && !links.iter().any(|l| l == word)
                    {
                        links.push(word.to_string());
                    }
                }
            }
        }
        Observed {
            exists: true,
            state: state_name(&self.status.name),
            revision: self.updated_on.clone(),
            fields,
            links,
            applied_keys,
        }
    }
}

impl Version {
    pub fn observed(&self) -> Observed {
        let mut fields: Vec<(String, String)> = vec![
            ("name".into(), self.name.clone()),
            ("project".into(), self.project.name.clone()),
        ];
        fields.extend(custom(&self.custom_fields));
        Observed {
            exists: true,
            state: self.status.clone(),
            revision: self.updated_on.clone(),
            fields,
            links: Vec::new(),
            applied_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct IssuePage {
    issues: Vec<Issue>,
}

/// How many seconds before the server's own clock an update is taken as
/// settled, unless config `settle-seconds` says otherwise (see below).
const SETTLE_SECONDS: i64 = 2;

/// Issues updated after `cursor` (`<updated_on>/<id>` of the last one
/// covered; empty: from the beginning), oldest first, across every status.
/// Config `project` limits the listing to one project.
///
/// Redmine keeps `updated_on` in whole seconds and sorts by it, then by id.
/// A cursor at (second S, issue 8) would therefore pass over an issue 3
/// updated later in that same second S, or issue 8 updated again in it:
/// changes lost to the poller, which exists because webhooks get lost. So
/// the cursor covers only the seconds that are over: those at least
/// `settle-seconds` (default 2) before now. Now is the time in the answer's
/// `Date` header, which the server stamps from the clock `updated_on` comes
/// from; Redmine's own server (thin) sends none, and then it is this
/// machine's clock, which the margin must also cover the difference to.
/// The margin also covers an update stamped before its transaction
/// committed. Later changes are listed all the same, and again by the next
/// listing, where the host recognises them.
pub fn list_changes(cursor: &str, limit: u32) -> Result<ChangePage, AdapterError> {
    let (after_time, after_id) = match cursor.split_once('/') {
        Some((t, id)) => (
            t.to_string(),
            id.parse::<u64>()
                .map_err(|_| AdapterError::Invalid(format!("unreadable cursor {cursor:?}")))?,
        ),
        None if cursor.is_empty() => (String::new(), 0),
        None => {
            return Err(AdapterError::Invalid(format!(
                "unreadable cursor {cursor:?}"
            )));
        }
    };
    let settle = match handoff_sdk::config("settle-seconds") {
        None => SETTLE_SECONDS,
        Some(text) => text.trim().parse::<u32>().map(i64::from).map_err(|_| {
            AdapterError::Invalid(format!(
                "config settle-seconds {text:?}: a whole number of seconds"
            ))
        })?,
    };
    let limit = limit.clamp(1, 100);
    let mut path = format!("/issues.json?status_id=*&sort=updated_on,id&limit={limit}");
    if let Some(project) = handoff_sdk::config("project") {
        // Put in the query as it is: only an identifier (or a number) can
        // be, not a text that would add parameters of its own.
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AdapterError::Invalid(format!(
                "config project {project:?}: a project's identifier (letters, digits, '-' and \
                 '_') or its number"
            )));
        }
        path.push_str(&format!("&project_id={project}"));
    }
    if !after_time.is_empty() {
        // Redmine filters by whole seconds: ask from the same second and
        // drop what the cursor already covers.
        path.push_str(&format!("&updated_on=%3E%3D{after_time}"));
    }
    let Some((page, date)) = get_answer::<IssuePage>(&path)? else {
        return Ok(ChangePage {
            changes: Vec::new(),
            next_cursor: cursor.to_string(),
        });
    };
    let now = date
        .as_deref()
        .and_then(clock::http_date_seconds)
        .unwrap_or_else(clock::local_seconds);
    let kind = handoff_sdk::config("issue-kinds")
        .and_then(|k| k.split(',').next().map(|k| k.trim().to_string()))
        .unwrap_or_else(|| "issue".into());
    let mut next_cursor = cursor.to_string();
    let mut changes = Vec::new();
    for issue in page.issues {
        let updated = issue.updated_on.clone().unwrap_or_default();
        let Some(at) = clock::iso_seconds(&updated) else {
            return Err(AdapterError::Invalid(format!(
                "GET {path}: issue {} has an unreadable updated_on {updated:?}",
                issue.id
            )));
        };
        if (updated.as_str(), issue.id) <= (after_time.as_str(), after_id) {
            continue;
        }
        if at < now - settle {
            next_cursor = format!("{updated}/{}", issue.id);
        }
        changes.push(Change {
            record: RecordRef {
                system: "redmine".into(),
                kind: kind.clone(),
                id: issue.id.to_string(),
            },
            state: state_name(&issue.status.name),
            revision: issue.updated_on,
        });
    }
    Ok(ChangePage {
        changes,
        next_cursor,
    })
}
