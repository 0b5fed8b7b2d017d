//! `[roles.NAME]`: the people a follow-up packet is routed to, as the
//! configuration names them: the adapter instances that reach each role
//! (each with `publish`), when it is reminded, its escalation chain, and
//! the tokens its people present to `serve`'s API (with their scope).

use super::{AdapterInstance, SecretSource};
use crate::follow_up::notices::{Role, Roles};
use crate::model::ActionKind;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRole {
    #[serde(default)]
    reach: Vec<String>,
    escalate_to: Option<String>,
    after_hours: Option<u32>,
    remind_at: Option<u8>,
    #[serde(default)]
    tokens: Vec<SecretSource>,
    #[serde(default)]
    scope: Scope,
}

/// What a role's token lets its holder do on the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Read runs and the audit head; read, acknowledge and resolve the
    /// role's own packets (routed or escalated to it).
    #[default]
    Role,
    /// Read everything, change nothing.
    Reviewer,
}

/// A role's access to the API: the sources of its tokens (read, hashed and
/// dropped when `serve` starts) and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub tokens: Vec<SecretSource>,
    pub scope: Scope,
}

/// The roles, checked against each other and the adapter instances.
pub(super) fn finish(
    raw: BTreeMap<String, RawRole>,
    adapters: &BTreeMap<String, AdapterInstance>,
    resolve: &dyn Fn(std::path::PathBuf) -> std::path::PathBuf,
) -> Result<(Roles, BTreeMap<String, Access>), String> {
    let names: Vec<&String> = raw.keys().collect();
    let mut roles = Roles::new();
    let mut access = BTreeMap::new();
    for (name, r) in &raw {
        if !super::valid_instance_name(name) {
            return Err(format!(
                "roles.{:?}: a role name is {}, at most {} of them (it names the role in \
                 messages, metrics and the audit trail)",
                crate::kept::shortened(name, super::instances::MAX_NAME_CHARS),
                super::instances::PLAIN_NAME,
                super::instances::MAX_NAME_CHARS
            ));
        }
        for (i, instance) in r.reach.iter().enumerate() {
            if r.reach[..i].contains(instance) {
                return Err(format!(
                    "roles.{name}.reach names {instance:?} twice; each instance tells the role once"
                ));
            }
            let Some(adapter) = adapters.get(instance) else {
                return Err(format!(
                    "roles.{name}.reach: no adapter instance {instance:?}; configure it as \
                     [adapters.{instance}] (an smtp, webhook or nats adapter with publish)"
                ));
            };
            if adapter
                .actions
                .as_ref()
                .is_some_and(|a| !a.contains(&ActionKind::Publish))
            {
                return Err(format!(
                    "roles.{name}.reach: adapters.{instance}.actions leaves out publish, so it \
                     cannot tell anyone; add \"publish\" there or reach the role through \
                     another instance"
                ));
            }
        }
        if let Some(next) = &r.escalate_to {
            if next == name {
                return Err(format!("roles.{name}.escalate-to names the role itself"));
            }
            if !raw.contains_key(next) {
                return Err(format!(
                    "roles.{name}.escalate-to: no role {next:?}; the roles are {}",
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(hours) = r.after_hours
            && !(1..=crate::policy::MAX_HOURS).contains(&hours)
        {
            return Err(format!(
                "roles.{name}.after-hours is {hours}; set the hours (1 to {}, a year) a packet \
                 waits unacknowledged before the next role is told",
                crate::policy::MAX_HOURS
            ));
        }
        if r.after_hours.is_some() && r.escalate_to.is_none() {
            return Err(format!(
                "roles.{name}.after-hours is set but escalate-to is not: name the role told \
                 after that time"
            ));
        }
        let defaults = Role::default();
        let remind_at_percent = r.remind_at.unwrap_or(defaults.remind_at_percent);
        if !(1..=99).contains(&remind_at_percent) {
            return Err(format!(
                "roles.{name}.remind-at is {remind_at_percent}; it is the percent of the SLA \
                 at which the reminder goes, 1 to 99"
            ));
        }
        if !r.tokens.is_empty() {
            access.insert(
                name.clone(),
                Access {
                    tokens: r
                        .tokens
                        .iter()
                        .map(|t| match t {
                            SecretSource::File(p) => SecretSource::File(resolve(p.clone())),
                            env => env.clone(),
                        })
                        .collect(),
                    scope: r.scope,
                },
            );
        }
        roles.insert(
            name.clone(),
            Role {
                reach: r.reach.clone(),
                escalate_to: r.escalate_to.clone(),
                after_hours: r.after_hours,
                remind_at_percent,
            },
        );
    }
    Ok((roles, access))
}
