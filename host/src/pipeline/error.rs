//! Why the pipeline could not take or drive a run (as opposed to a run that
//! ended in a follow-up, which is an outcome).

use crate::model::EventError;
use crate::policy::PolicyError;
use crate::policy::template::TemplateError;
use crate::sandbox::LoadError;
use crate::store::StoreError;
use std::path::PathBuf;
use thiserror::Error;

/// Why the pipeline could not take or drive a run (as opposed to a run that
/// ended in a follow-up, which is an outcome).
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a record's turn could not be taken: {0}")]
    RecordTurn(#[from] super::throttle::across::TurnError),
    #[error(transparent)]
    Lifecycle(#[from] crate::model::IllegalTransition),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "no configured policy is triggered by events of type {event_type:?} (configured: {known})"
    )]
    NoPolicy { event_type: String, known: String },
    #[error(
        "policies {first} and {second} are both triggered by {event_type:?}; one event type, one policy"
    )]
    AmbiguousTrigger {
        event_type: String,
        first: String,
        second: String,
    },
    #[error(
        "policy {policy} ({path}): adapter instance {adapter:?} is not configured; add [adapters.{adapter}] to the configuration"
    )]
    UnknownAdapter {
        policy: String,
        path: PathBuf,
        adapter: String,
    },
    #[error(
        "policy {policy} ({path}): adapter instance {adapter:?} has no package: {problem}; build it, or fix `package` in [adapters.{adapter}]"
    )]
    MissingPackage {
        policy: String,
        path: PathBuf,
        adapter: String,
        problem: String,
    },
    #[error("policy {policy} ({path}) {problem}")]
    PolicyNotApproved {
        policy: String,
        path: PathBuf,
        problem: String,
    },
    #[error("event {event_id}: {problem}")]
    Trigger { event_id: String, problem: String },
    #[error("no run {0}; see handoff runs list")]
    NoSuchRun(String),
    #[error("run {run_id} is being driven by {owner} (lease until {until})")]
    Busy {
        run_id: String,
        owner: String,
        until: String,
    },
    #[error("no follow-up {0}; see handoff follow-ups list")]
    NoSuchFollowUp(i64),
    #[error("follow-up {0} is already resolved")]
    AlreadyResolved(i64),
    #[error(
        "the note is {0} bytes; at most {max} (keep the longer story where it lives, and link it)",
        max = crate::follow_up::MAX_NOTE_BYTES
    )]
    NoteTooLong(usize),
    #[error(
        "the {0} holds {named}; write plain text (line breaks and tabs are fine in a note)",
        named = crate::plain::named(*.1)
    )]
    NotPlainText(&'static str, char),
    #[error("follow-up {id} was already acknowledged by {by} at {at}")]
    AlreadyAcknowledged { id: i64, by: String, at: String },
    #[error("reconciling source adapter {adapter}: {problem}")]
    Reconcile { adapter: String, problem: String },
}
