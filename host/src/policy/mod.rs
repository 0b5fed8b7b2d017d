//! Policies (`policies/*.toml`): which decision authorizes which bounded
//! steps. Data, versioned and hashed: the sha256 of the file is stamped on
//! every run and audit row.
//!
//! Parsing is strict (unknown keys refused, with the file and the key), the
//! actions are the closed set of the contract, conditions are declarative
//! (equality and existence), and what a policy must say beyond its syntax
//! (`rules.rs`: every template well formed, names given, state pinned) is
//! checked here, so that a mistake fails at load, not halfway through a run.

pub mod condition;
pub mod plan;
mod rules;
pub mod template;

use crate::model::ActionKind;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("{path}: {problem}")]
pub struct PolicyError {
    pub path: PathBuf,
    pub problem: String,
}

/// When the source is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Revalidate {
    /// Once, before the first write.
    Once,
    /// Before every write.
    BeforeEachWrite,
}

/// A record reference with templated fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordTemplate {
    pub kind: String,
    pub id: String,
}

impl RecordTemplate {
    /// The record, filled in, as `adapter` is asked for it. `place` starts
    /// the name of each field in errors (`"source."`, `"step x "`).
    pub fn render(
        &self,
        adapter: &str,
        scope: template::Scope<'_>,
        place: &str,
    ) -> Result<crate::sandbox::RecordRef, template::TemplateError> {
        let field = |text: &str, name: &str| {
            let place = format!("{place}record.{name}");
            let value = template::render(text, scope, &place)?;
            record_name(&value)
                .map_err(|problem| template::TemplateError::BadValue { place, problem })?;
            Ok(value)
        };
        Ok(crate::sandbox::RecordRef {
            system: adapter.to_string(),
            kind: field(&self.kind, "kind")?,
            id: field(&self.id, "id")?,
        })
    }
}

/// The most bytes of a value filled in from an event that names something:
/// a record's kind or id, a part of a business key.
pub const MAX_NAME_BYTES: usize = 512;

/// The longest a packet may be given (`sla-hours`), or wait before the next
/// role is told (`after-hours`): a year.
pub const MAX_HOURS: u32 = 24 * 366;

/// A record's kind or id as filled in from an event: not empty, and a
/// [`name`]. Whatever an adapter makes of it (a path, a URL), it is never
/// asked for a record that could be nobody's.
fn record_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    name(value)
}

/// A value filled in from an event that names something: at most
/// [`MAX_NAME_BYTES`], no control characters. The error says what is wrong
/// without repeating the value.
pub fn name(value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME_BYTES {
        return Err(format!(
            "is {} bytes; at most {MAX_NAME_BYTES}",
            value.len()
        ));
    }
    if crate::plain::control_character(value, false).is_some() {
        return Err(
            "holds a control character (a line break, a tab...) or one that reorders text".into(),
        );
    }
    Ok(())
}

/// A condition value: a string (templated) or a boolean (for `exists`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(
    untagged,
    expecting = "a condition's value: text (a template, in quotes) or true / false"
)]
pub enum Expected {
    Bool(bool),
    Text(String),
}

/// `path = expected` pairs, all of which must hold. Paths: `exists`,
/// `state`, `revision`, `fields.NAME`, `links` (contains), `applied` (the
/// step's own key is on the record; `done-when` only).
pub type Condition = BTreeMap<String, Expected>;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkTemplate {
    pub url: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub links: Vec<String>,
}

/// The closed set of actions, with templated arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionTemplate {
    SetState(String),
    AttachLink(LinkTemplate),
    Annotate(String),
    ClearEntry,
    Publish(MessageTemplate),
}

impl ActionTemplate {
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionTemplate::SetState(_) => ActionKind::SetState,
            ActionTemplate::AttachLink(_) => ActionKind::AttachLink,
            ActionTemplate::Annotate(_) => ActionKind::Annotate,
            ActionTemplate::ClearEntry => ActionKind::ClearEntry,
            ActionTemplate::Publish(_) => ActionKind::Publish,
        }
    }

    fn texts(&self) -> Vec<&str> {
        match self {
            ActionTemplate::SetState(s) | ActionTemplate::Annotate(s) => vec![s],
            ActionTemplate::AttachLink(l) => vec![&l.url, &l.title],
            ActionTemplate::ClearEntry => vec![],
            ActionTemplate::Publish(m) => {
                let mut v = vec![m.subject.as_str(), m.body.as_str()];
                v.extend(m.links.iter().map(String::as_str));
                v
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub mode: Mode,
}

/// Whether a policy's runs act (`live`), or only look and record what they
/// would have done (`shadow`): every adapter instance they call is loaded
/// with no actions and its surfaces read-only, so no write can reach a
/// target. Turning a shadow policy live changes its text, so it needs a new
/// approval like any other change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Live,
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The CloudEvent `type` this policy answers.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Decision states (in `event.data.state`) that authorize the work.
    pub states: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceSpec {
    /// The adapter instance that reads decisions.
    pub adapter: String,
    pub record: RecordTemplate,
    /// What the source must still show when read again.
    pub must_match: Condition,
    pub revalidate: Revalidate,
    /// Values that identify the decision across re-sent events (e.g. review
    /// id and version); with them, a new event id for the same decision is
    /// still a duplicate.
    #[serde(default)]
    pub business_key: Vec<String>,
}

/// What a check guards: it decides the reason code when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A target record the steps write to (a milestone, a checklist).
    #[default]
    Mapping,
    /// Archived evidence (a bundle and its digest).
    Evidence,
}

/// A check made before any write: a record must exist and match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    #[serde(default)]
    pub guards: CheckKind,
    pub adapter: String,
    pub record: RecordTemplate,
    pub expect: Condition,
}

/// One bounded closure step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Step {
    pub id: String,
    pub adapter: String,
    pub record: RecordTemplate,
    pub action: ActionTemplate,
    /// The end state that counts as done (checked before, to skip, and
    /// after, to confirm).
    pub done_when: Condition,
    /// The states the step may move its record out of. A record found in
    /// another (and not already in its end state) goes to a person before
    /// anything is written to it: someone set it so, and closing over it
    /// would be a guess. Left out: any state.
    #[serde(default)]
    pub from_states: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FollowUpSpec {
    /// A role, never a person.
    pub route_to: String,
    /// Hours a person has to pick it up.
    #[serde(default = "default_sla_hours")]
    pub sla_hours: u32,
}

fn default_sla_hours() -> u32 {
    24
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    policy: Header,
    trigger: Trigger,
    source: SourceSpec,
    #[serde(default, rename = "check")]
    checks: Vec<Check>,
    #[serde(rename = "step")]
    steps: Vec<Step>,
    follow_up: FollowUpSpec,
}

/// A parsed, validated policy and the digest of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The text as read: what an approval records and a run resumes under.
    pub text: String,
    pub id: String,
    pub version: String,
    pub mode: Mode,
    pub sha256: String,
    pub trigger: Trigger,
    pub source: SourceSpec,
    pub checks: Vec<Check>,
    pub steps: Vec<Step>,
    pub follow_up: FollowUpSpec,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text =
            crate::files::read_text_at_most(path, crate::files::SETTINGS_BYTES).map_err(|e| {
                PolicyError {
                    path: path.to_path_buf(),
                    problem: format!("cannot read: {e}"),
                }
            })?;
        Policy::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let err = |problem: String| PolicyError {
            path: path.to_path_buf(),
            problem,
        };
        let raw: RawPolicy = crate::by_name::from_toml(text)
            .map_err(|e| err(crate::plain::bounded_error(&e.to_string())))?;
        // Read by reviewers at a terminal (`policy inspect`) and sent on in
        // messages: plain text, a message's body with its line breaks.
        crate::plain::in_reading_order(text, "a policy").map_err(err)?;
        let table: toml::Table =
            toml::from_str(text).map_err(|e| err(crate::plain::bounded_error(&e.to_string())))?;
        if let Some((at, c)) = crate::plain::control_in_toml(&toml::Value::Table(table), "", true) {
            return Err(err(format!(
                "{at} holds the control character U+{:04X}; a policy is plain text (line breaks \
                 and tabs are fine in a value)",
                c as u32
            )));
        }
        rules::check(&raw).map_err(err)?;

        Ok(Policy {
            text: text.to_string(),
            id: raw.policy.id,
            version: raw.policy.version,
            mode: raw.policy.mode,
            sha256: crate::sandbox::package::sha256_hex(text.as_bytes()),
            trigger: raw.trigger,
            source: raw.source,
            checks: raw.checks,
            steps: raw.steps,
            follow_up: raw.follow_up,
        })
    }

    /// Every (adapter, action) the policy can ask for: what approving a
    /// policy authorizes, and what a changed policy must not widen.
    pub fn reach(&self) -> BTreeSet<(String, ActionKind)> {
        self.steps
            .iter()
            .map(|s| (s.adapter.clone(), s.action.kind()))
            .collect()
    }

    /// Every adapter instance the policy reads or writes through.
    pub fn adapters(&self) -> BTreeSet<&str> {
        std::iter::once(self.source.adapter.as_str())
            .chain(self.checks.iter().map(|c| c.adapter.as_str()))
            .chain(self.steps.iter().map(|s| s.adapter.as_str()))
            .collect()
    }

    /// The reach as `adapter: action` lines, for approvals and messages.
    pub fn reach_lines(&self) -> Vec<String> {
        self.reach()
            .iter()
            .map(|(a, k)| format!("{a}: {}", k.name()))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
