//! What a policy must say to load, beyond its syntax: a trigger that can
//! match, a source that cannot let a decision taken back through, named
//! checks and steps that each say what counts, a business key of the
//! decision's own parts, and every template and condition path well formed
//! (so that a typo fails at load, not halfway through a run). Each rule
//! refuses with the place and what to write instead.

use super::{Condition, Expected, RawPolicy, template};
use std::collections::BTreeSet;

const CONDITION_PATHS: &str = "exists, applied, state, revision, links, fields.NAME";

/// The most `[[check]]`s, and the most `[[step]]`s, a policy may have: a
/// closure's remaining work is a few steps, and each run records every one.
pub const MAX_PARTS: usize = 100;

/// Every rule, in the order a reader meets the file's parts.
pub(super) fn check(raw: &RawPolicy) -> Result<(), String> {
    shape(raw)?;
    source(raw)?;
    for check in &raw.checks {
        let place = format!("check {:?}", check.name);
        text(&check.record.kind, format!("{place} record.kind"))?;
        text(&check.record.id, format!("{place} record.id"))?;
        condition(&check.expect, &format!("{place} expect"))?;
    }
    for step in &raw.steps {
        let place = format!("step {}", step.id);
        text(&step.record.kind, format!("{place} record.kind"))?;
        text(&step.record.id, format!("{place} record.id"))?;
        for t in step.action.texts() {
            text(t, format!("{place} action"))?;
        }
        condition(&step.done_when, &format!("{place} done-when"))?;
    }
    Ok(())
}

/// The parts every policy has, each named and saying something.
fn shape(raw: &RawPolicy) -> Result<(), String> {
    if raw.policy.id.trim().is_empty() || raw.policy.version.trim().is_empty() {
        return Err("policy.id and policy.version must not be empty".into());
    }
    names(raw)?;
    if raw.trigger.event_type.trim().is_empty() {
        return Err("trigger.type is empty: name the CloudEvent type this policy answers".into());
    }
    if raw.trigger.states.is_empty() {
        return Err("trigger.states is empty: no decision state would authorize anything".into());
    }
    if raw.trigger.states.iter().any(|s| s.trim().is_empty()) {
        return Err("trigger.states holds an empty state: name each state that authorizes".into());
    }
    for (part, count) in [
        ("[[check]]", raw.checks.len()),
        ("[[step]]", raw.steps.len()),
    ] {
        if count > MAX_PARTS {
            return Err(format!(
                "{count} {part}s; a policy has at most {MAX_PARTS} (split the work into \
                 policies of their own)"
            ));
        }
    }
    let mut names = BTreeSet::new();
    for check in &raw.checks {
        if check.name.trim().is_empty() {
            return Err("a [[check]]'s name is empty: packets and the audit name it".into());
        }
        if !names.insert(check.name.as_str()) {
            return Err(format!("check name {:?} is used twice", check.name));
        }
        if check.expect.is_empty() {
            return Err(format!(
                "check {:?}: expect is empty; say what the record must show",
                check.name
            ));
        }
    }
    if raw.steps.is_empty() {
        return Err("a policy needs at least one [[step]]".into());
    }
    let mut ids = BTreeSet::new();
    for step in &raw.steps {
        if step.id.trim().is_empty() {
            return Err("a [[step]]'s id is empty: its key, packets and the audit name it".into());
        }
        if !ids.insert(step.id.as_str()) {
            return Err(format!("step id {:?} is used twice", step.id));
        }
        if step.done_when.is_empty() {
            return Err(format!(
                "step {}: done-when is empty; say which end state counts as done",
                step.id
            ));
        }
        if let Some(from) = &step.from_states {
            if from.is_empty() {
                return Err(format!(
                    "step {}: from-states is empty, so no record could ever be changed; name \
                     the states it may move a record out of, or leave it out for any",
                    step.id
                ));
            }
            let mut seen = BTreeSet::new();
            for state in from {
                if state.trim().is_empty() {
                    return Err(format!(
                        "step {}: from-states holds an empty state",
                        step.id
                    ));
                }
                if !seen.insert(state.as_str()) {
                    return Err(format!(
                        "step {}: from-states names {state:?} twice",
                        step.id
                    ));
                }
            }
        }
    }
    if raw.follow_up.route_to.trim().is_empty() {
        return Err("follow-up.route-to must name a role".into());
    }
    // 0 is a choice (due as it opens); past a year it is no time at all.
    let sla = raw.follow_up.sla_hours;
    if sla > super::MAX_HOURS {
        return Err(format!(
            "follow-up.sla-hours is {sla}; at most {} (a year)",
            super::MAX_HOURS
        ));
    }
    Ok(())
}

/// The source: its record, what it must still show, the business key.
fn source(raw: &RawPolicy) -> Result<(), String> {
    text(&raw.source.record.kind, "source.record.kind".into())?;
    text(&raw.source.record.id, "source.record.id".into())?;
    condition(&raw.source.must_match, "source.must-match")?;
    pins_the_state(&raw.source.must_match, &raw.trigger.states)?;
    let mut of_the_event = false;
    for (i, key) in raw.source.business_key.iter().enumerate() {
        let refs = text(key, format!("source.business-key[{i}]"))?;
        of_the_event |= refs.iter().any(|r| r.starts_with("event."));
    }
    if !raw.source.business_key.is_empty() && !of_the_event {
        return Err(
            "source.business-key names nothing of the event: every decision would share \
             one key, and each after the first would be taken for a duplicate of it; name \
             the decision's parts ({{event.data.…}}), or leave business-key out to know a \
             decision by its event id alone"
                .into(),
        );
    }
    Ok(())
}

/// Every name the policy gives (its id and version, its trigger, its
/// checks, steps and role) is bounded like a name an event fills in: each
/// is repeated in runs, packets, notices and the audit of every run.
fn names(raw: &RawPolicy) -> Result<(), String> {
    let mut named: Vec<(String, &str)> = vec![
        ("policy.id".into(), &raw.policy.id),
        ("policy.version".into(), &raw.policy.version),
        ("trigger.type".into(), &raw.trigger.event_type),
        ("follow-up.route-to".into(), &raw.follow_up.route_to),
    ];
    named.extend(
        raw.trigger
            .states
            .iter()
            .map(|s| ("a trigger state".into(), s.as_str())),
    );
    named.extend(
        raw.checks
            .iter()
            .map(|c| ("a check's name".into(), c.name.as_str())),
    );
    for step in &raw.steps {
        named.push(("a step's id".into(), &step.id));
        for state in step.from_states.iter().flatten() {
            // (The step's id is checked before these, so it is short.)
            named.push((format!("step {:?}'s from-states", step.id), state));
        }
    }
    for (place, value) in named {
        super::name(value).map_err(|why| format!("{place} {why}"))?;
    }
    Ok(())
}

/// A template's references, well formed.
fn text(text: &str, place: String) -> Result<Vec<String>, String> {
    template::references(text, &place).map_err(|e| e.to_string())
}

/// A condition's paths known, each with a value of its kind.
fn condition(c: &Condition, place: &str) -> Result<(), String> {
    for (key, expected) in c {
        let valid = matches!(
            key.as_str(),
            "exists" | "applied" | "state" | "revision" | "links"
        ) || key.strip_prefix("fields.").is_some_and(|f| !f.is_empty());
        if !valid {
            return Err(format!(
                "{place}: unknown condition {key:?}; use {CONDITION_PATHS}"
            ));
        }
        match (key.as_str(), expected) {
            ("applied", _) if !place.ends_with("done-when") => {
                return Err(format!(
                    "{place}: applied is about a step's own key; use it in done-when only"
                ));
            }
            ("exists" | "applied", Expected::Bool(_)) => {}
            ("exists" | "applied", Expected::Text(_)) => {
                return Err(format!("{place}: {key} takes true or false"));
            }
            (_, Expected::Bool(_)) => return Err(format!("{place}: {key} takes a text value")),
            (_, Expected::Text(t)) => {
                text(t, format!("{place}.{key}"))?;
            }
        }
    }
    Ok(())
}

/// Revalidation tests the decision read again against `must-match` alone,
/// so `must-match` must hold its state to one that authorizes the work:
/// one of `trigger.states`, or the state the event itself carried (which
/// intake held to them). Without it, a decision taken back (revoked,
/// rejected) would go on authorizing every write.
fn pins_the_state(must_match: &Condition, states: &BTreeSet<String>) -> Result<(), String> {
    let pinned = match must_match.get("state") {
        Some(Expected::Text(t)) => {
            let bare: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            states.contains(t) || bare == "{{event.data.state}}"
        }
        _ => false,
    };
    if pinned {
        return Ok(());
    }
    let states: Vec<&str> = states.iter().map(String::as_str).collect();
    Err(format!(
        "source.must-match must hold state to one of trigger.states ({}) or to \
         \"{{{{event.data.state}}}}\": the decision is read again and tested against \
         must-match alone, so without it a decision revoked or rejected since would still \
         authorize the work",
        states.join(", ")
    ))
}
