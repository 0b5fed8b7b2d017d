//! Readiness (`handoff check`, and the start of `handoff serve`): whether
//! everything the configuration names would be let run, found out before
//! an event depends on it. Each policy file parses, names configured
//! adapters and is approved as it stands; each adapter instance's package
//! is approved as it stands and loads with its bindings (secrets, CA
//! files, directories). Every problem is reported, not only the first, and
//! nothing is written: no approval, no audit row, no run. Each ready
//! instance's reach says what it may touch, what the policies ask of it,
//! and whose directories it shares.

use crate::config::Config;
use crate::pipeline::{self, ConfiguredPolicy, RunError};
use crate::policy::{Policy, Step};
use crate::sandbox::manifest::Grants;
use crate::sandbox::package::Package;
use crate::sandbox::{Sandbox, narrowing};
use crate::store::Store;
use crate::store::policies::PolicyStatus;
use serde::Serialize;

mod shares;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `policy PATH` or `adapter NAME`.
    pub subject: String,
    /// What stands in the way, with the fix; `None` when it is ready.
    pub problem: Option<String>,
    /// What was found when it is ready (approval, digest, use).
    pub detail: String,
    /// For a ready adapter instance: what it may touch (its effective
    /// grant, with each directory where it is bound, and the config keys
    /// it was given), then what the policies ask of it.
    pub reach: Vec<String>,
}

impl Finding {
    fn ready(subject: String, detail: String) -> Finding {
        Finding {
            subject,
            problem: None,
            detail,
            reach: Vec::new(),
        }
    }

    fn problem(subject: String, problem: String) -> Finding {
        Finding {
            subject,
            problem: Some(problem),
            detail: String::new(),
            reach: Vec::new(),
        }
    }
}

/// Check every policy and adapter instance of `config` against `store`'s
/// approvals. An error only when the check itself cannot be made (the
/// store cannot be read, the artifact cache cannot be made).
pub fn check(config: &Config, store: &Store) -> Result<Vec<Finding>, RunError> {
    let mut findings = Vec::new();
    let mut policies: Vec<ConfiguredPolicy> = Vec::new();
    for path in &config.policies {
        let subject = format!("policy {}", path.display());
        let configured = match pipeline::configure_policy(config, path) {
            Ok(c) => c,
            Err(e) => {
                findings.push(Finding::problem(subject, e.to_string()));
                continue;
            }
        };
        if let Some(clash) = pipeline::same_trigger(&policies, &configured.policy) {
            findings.push(Finding::problem(subject, clash.to_string()));
            continue;
        }
        let policy = &configured.policy;
        let status = store.policy_status(policy)?;
        let detail = match &status {
            PolicyStatus::Approved(a) => format!(
                "{} v{}, on {:?}: approved by {} at {}",
                policy.id, policy.version, policy.trigger.event_type, a.approved_by, a.approved_at
            ),
            _ => String::new(),
        };
        findings.push(match pipeline::approval_problem(&configured, status) {
            Some(refusal) => Finding::problem(subject, refusal.to_string()),
            None => Finding::ready(subject, detail),
        });
        policies.push(configured);
    }

    // Made (with its artifact cache) for the first adapter to load: checking
    // a configuration of nothing leaves nothing behind.
    let mut sandbox = None;
    // Whether each instance that loads may publish (what reaching a role takes).
    let mut publishes = std::collections::BTreeMap::new();
    // Where each instance that loads reaches (its directories, its keys).
    let mut reached: Vec<shares::Reached> = Vec::new();
    for (name, instance) in &config.adapters {
        let sandbox = match &mut sandbox {
            Some(made) => &*made,
            none @ None => &*none.insert(Sandbox::new(&config.cache_dir, config.ceiling.clone())?),
        };
        let subject = format!("adapter {name}");
        let users: Vec<&str> = policies
            .iter()
            .filter(|c| c.policy.adapters().contains(name.as_str()))
            .map(|c| c.policy.id.as_str())
            .collect();
        let package = match Package::read(&instance.package) {
            Ok(p) => p,
            Err(e) => {
                findings.push(Finding::problem(subject, e.to_string()));
                continue;
            }
        };
        let approval = store.latest_approval(&package.manifest.name)?;
        let loaded = match sandbox.load(&package, approval.as_ref(), instance) {
            Ok(loaded) => loaded,
            Err(e) => {
                findings.push(Finding::problem(subject, e.to_string()));
                continue;
            }
        };
        publishes.insert(
            name.clone(),
            narrowing::allows(loaded.grants(), crate::model::ActionKind::Publish),
        );
        reached.extend(shares::of(name, &loaded));
        if let Some(refused) = steps_refused(&policies, name, loaded.grants()) {
            findings.push(Finding::problem(subject, refused));
            continue;
        }
        let used_by = if users.is_empty() {
            "no configured policy".to_string()
        } else {
            users.join(", ")
        };
        let turns = match (
            package.manifest.one_call_per_record,
            instance.one_call_per_record,
        ) {
            (true, _) => "; one call per record at a time (its adapter declares it)",
            (false, true) => "; one call per record at a time (configured)",
            (false, false) => "",
        };
        let detail = format!(
            "{} {} (component sha256 {}): approved, loads; used by {used_by}{turns}",
            package.manifest.name,
            package.manifest.version,
            &package.component_sha256[..12],
        );
        findings.push(Finding {
            reach: crate::sandbox::reach::instance_lines(&loaded)
                .into_iter()
                .chain(asked_of(&policies, name))
                .chain(spare_actions(&policies, name, loaded.grants()))
                .collect(),
            ..Finding::ready(subject, detail)
        });
    }
    for finding in &mut findings {
        if let (None, Some(name)) = (&finding.problem, finding.subject.strip_prefix("adapter ")) {
            finding.reach.extend(shares::lines(&reached, name));
        }
    }
    findings.extend(roles(config, &policies, &publishes));
    Ok(findings)
}

/// Each role: who reaches it and its escalation chain; a problem when an
/// instance that should reach it may not publish, or when delivery is
/// configured and a policy routes to a role nobody reaches.
fn roles(
    config: &Config,
    policies: &[ConfiguredPolicy],
    publishes: &std::collections::BTreeMap<String, bool>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (name, role) in &config.roles {
        let subject = format!("role {name}");
        let mute: Vec<&str> = role
            .reach
            .iter()
            .filter(|i| publishes.get(*i) == Some(&false))
            .map(String::as_str)
            .collect();
        if !mute.is_empty() {
            findings.push(Finding::problem(
                subject,
                format!(
                    "reached through {}, which may not publish; allow publish in their \
                     [adapters.X] actions (within their approval) or reach the role another way",
                    mute.join(", ")
                ),
            ));
            continue;
        }
        let reach = if role.reach.is_empty() {
            "told through no instance (packets wait in the inbox)".to_string()
        } else {
            format!("told through {}", role.reach.join(", "))
        };
        let escalation = match &role.escalate_to {
            Some(next) => format!(
                "; escalates to {next} after {}",
                role.after_hours
                    .map_or("the SLA".to_string(), |h| format!("{h} h unacknowledged"))
            ),
            None => String::new(),
        };
        findings.push(Finding::ready(
            subject,
            format!(
                "{reach}; reminder at {} % of the SLA{escalation}",
                role.remind_at_percent
            ),
        ));
    }
    if !config.roles.is_empty() {
        for c in policies {
            let to = &c.policy.follow_up.route_to;
            if !config.roles.contains_key(to) {
                findings.push(Finding::problem(
                    format!("role {to}"),
                    format!(
                        "policy {} routes follow-ups to {to}, which no [roles.{to}] names, so \
                         nobody would be told; add [roles.{to}] with the instances that reach it",
                        c.policy.id
                    ),
                ));
            }
        }
    }
    findings
}

/// The steps of the policies that ask an instance for an action its grant
/// (as narrowed for it) does not allow: each would stop its run for a person.
fn steps_refused(policies: &[ConfiguredPolicy], instance: &str, grants: &Grants) -> Option<String> {
    let refused: Vec<String> = steps_on(policies, instance)
        .filter(|(_, s)| !narrowing::allows(grants, s.action.kind()))
        .map(|(p, s)| format!("{} step {} ({})", p.id, s.id, s.action.kind().name()))
        .collect();
    if refused.is_empty() {
        return None;
    }
    let allowed: Vec<&str> = grants.actions.iter().map(|a| a.name()).collect();
    Some(format!(
        "asked for actions it may not apply: {}; it may apply {}. Allow them in [adapters.{instance}] \
         actions (within its approval), or change the policy",
        refused.join(", "),
        if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        }
    ))
}

/// What the policies ask of an adapter instance, one line each.
fn asked_of(policies: &[ConfiguredPolicy], instance: &str) -> Vec<String> {
    let mut asked = Vec::new();
    for c in policies {
        let p = &c.policy;
        if p.source.adapter == instance {
            asked.push(format!(
                "asked     {}: read the decision {}",
                p.id, p.source.record.kind
            ));
        }
        for check in p.checks.iter().filter(|k| k.adapter == instance) {
            asked.push(format!("asked     {}: check {:?}", p.id, check.name));
        }
        for step in p.steps.iter().filter(|s| s.adapter == instance) {
            asked.push(format!(
                "asked     {}: step {} ({} on {})",
                p.id,
                step.id,
                step.action.kind().name(),
                step.record.kind
            ));
        }
    }
    asked
}

/// The actions an instance may apply that no policy asks of it, with the
/// narrowing that would take them away (least privilege, as a hint).
fn spare_actions(policies: &[ConfiguredPolicy], instance: &str, grants: &Grants) -> Option<String> {
    let asked: std::collections::BTreeSet<_> = steps_on(policies, instance)
        .map(|(_, s)| s.action.kind())
        .collect();
    let spare: Vec<&str> = grants
        .actions
        .iter()
        .filter(|a| !asked.contains(a))
        .map(|a| a.name())
        .collect();
    if spare.is_empty() {
        return None;
    }
    let keep: Vec<String> = asked.iter().map(|a| format!("{:?}", a.name())).collect();
    Some(format!(
        "spare     no policy asks for {}; `actions = [{}]` in [adapters.{instance}] would take them away",
        spare.join(", "),
        keep.join(", ")
    ))
}

/// Every policy step carried out through `instance`, with its policy.
fn steps_on<'a>(
    policies: &'a [ConfiguredPolicy],
    instance: &'a str,
) -> impl Iterator<Item = (&'a Policy, &'a Step)> {
    policies.iter().flat_map(move |c| {
        c.policy
            .steps
            .iter()
            .filter(move |s| s.adapter == instance)
            .map(move |s| (&c.policy, s))
    })
}
