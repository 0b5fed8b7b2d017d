//! `handoff runs list | show ID`: what happened to each event, as a
//! timeline read from the audit chain.

use super::{Ctx, exit};
use crate::audit::Row;
use crate::pipeline::Outcome;
use crate::store::runs::Which;
use crate::store::{follow_ups, runs, steps};
use anyhow::{Result, bail};
use clap::Subcommand;
use clap::builder::TypedValueParser as _;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        /// At most this many (1 or more).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Only the runs that ended so, or that have not ended.
        #[arg(long, value_parser = outcome_filter())]
        outcome: Option<Which>,
        /// The runs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run: its steps, follow-ups and timeline.
    Show {
        /// The run's id, as `runs list` shows it.
        run_id: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `runs list --outcome` selects: an outcome a run can end with (the
/// names of the one closed set), or `unfinished`.
fn outcome_filter() -> impl clap::builder::TypedValueParser<Value = Which> {
    let names = Outcome::ALL
        .iter()
        .filter(|o| o.ends_a_run())
        .map(|o| o.name())
        .chain([UNFINISHED]);
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| Outcome::parse(&name).map_or(Which::Unfinished, Which::Ended))
}

const UNFINISHED: &str = "unfinished";

/// The identifying parts of an audit payload, as one short line, with
/// nothing in it (a state an adapter reported, say) that drives a terminal.
pub fn describe(row: &Row) -> String {
    crate::kept::inert(&identifying_parts(row)).into_owned()
}

fn identifying_parts(row: &Row) -> String {
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(&row.payload) else {
        return row.payload.clone();
    };
    let get = |k: &str| {
        payload.get(k).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        })
    };
    let mut parts = Vec::new();
    if let Some(steps) = payload.get("steps").and_then(|s| s.as_array()) {
        let ids: Vec<_> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
        return format!("{} steps: {}", ids.len(), ids.join(", "));
    }
    if let (Some(kind), Some(id)) = (get("kind"), get("id")) {
        let on = match get("adapter") {
            Some(a) => format!("{kind}/{id} via {a}"),
            None => format!("{kind}/{id}"),
        };
        parts.push(on);
    }
    for key in [
        "step",
        "check",
        "action",
        "state",
        "reason",
        "outcome",
        "follow_up",
        "by",
        "verdict",
        "target",
    ] {
        if let Some(v) = get(key) {
            parts.push(format!("{key}={v}"));
        }
    }
    if payload.get("done") == Some(&serde_json::Value::Bool(true)) {
        parts.push("already done".into());
    }
    if payload.get("recovered") == Some(&serde_json::Value::Bool(true)) {
        parts.push("recovered after a stop".into());
    }
    if parts.is_empty() {
        payload.to_string()
    } else {
        parts.join("  ")
    }
}

pub fn run(cmd: RunsCommand, ctx: &Ctx) -> Result<u8> {
    let store = ctx.existing_store()?;
    match cmd {
        RunsCommand::List {
            limit,
            outcome,
            json,
        } => {
            let which = outcome.unwrap_or(Which::All);
            let list = runs::list(&*store.conn()?, limit as usize, which)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(exit::OK);
            }
            if list.is_empty() {
                let which = match outcome {
                    Some(Which::Ended(o)) => format!("{o} "),
                    Some(Which::Unfinished) => format!("{UNFINISHED} "),
                    _ => String::new(),
                };
                say!("no {which}runs in {}", store.path().display());
            }
            for r in &list {
                say!(
                    "{:<10} {:<24} {:<22} {} {}",
                    r.run_id,
                    r.event_id,
                    r.outcome.map(|o| o.name()).unwrap_or("unfinished"),
                    r.policy_id,
                    r.created_at
                );
            }
            Ok(exit::OK)
        }
        RunsCommand::Show { run_id, json } => {
            let Some(run) = runs::get(&*store.conn()?, &run_id)? else {
                bail!("no run {run_id}; see handoff runs list");
            };
            let steps = steps::for_run(&*store.conn()?, &run_id)?;
            let follow_ups = follow_ups::for_run(&*store.conn()?, &run_id)?;
            let timeline = store.audit_rows(Some(&run_id))?;
            if json {
                let report = serde_json::json!({
                    "run": run, "steps": steps, "follow_ups": follow_ups, "timeline": timeline,
                });
                say!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(exit::OK);
            }
            say!(
                "{}  event {} ({})  policy {} sha256 {}",
                run.run_id,
                run.event_id,
                run.event_source,
                run.policy_id,
                &run.policy_sha256[..12]
            );
            say!(
                "outcome  {}",
                run.outcome.map(|o| o.name()).unwrap_or("unfinished")
            );
            say!("\nsteps");
            for s in &steps {
                say!(
                    "  {:<22} {:<10} {:<12} {}/{} via {}{}",
                    s.plan.id,
                    s.state.name(),
                    s.plan.action.name(),
                    s.plan.record.kind,
                    s.plan.record.id,
                    s.plan.adapter,
                    s.error
                        .as_deref()
                        .map(|e| format!("\n      error: {e}"))
                        .unwrap_or_default()
                );
            }
            if !follow_ups.is_empty() {
                say!("\nfollow-ups");
                for f in &follow_ups {
                    say!(
                        "  {} {} {}",
                        f.id,
                        f.packet.reason.name(),
                        f.resolution.map(|r| r.name()).unwrap_or("open")
                    );
                }
            }
            say!("\ntimeline");
            for row in &timeline {
                say!(
                    "  {:>5}  {}  {:<22} {}",
                    row.seq,
                    row.at,
                    row.kind,
                    describe(row)
                );
            }
            Ok(exit::OK)
        }
    }
}
