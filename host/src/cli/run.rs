//! `handoff run` and `handoff resume`: drive events and unfinished runs
//! from the command line, one report line (or JSON object) each.

use super::{Ctx, exit};
use crate::model::CloudEvent;
use crate::pipeline::{Engine, Outcome, Report};
use anyhow::{Context, Result};
use std::path::Path;

/// The exit code for an outcome: follow-ups are not errors, but scripts
/// must be able to tell them apart.
pub fn code(outcome: Outcome) -> u8 {
    if outcome.needs_follow_up() {
        exit::FOLLOW_UP
    } else {
        exit::OK
    }
}

pub fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        say!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let run = if report.run_id.is_empty() {
        "(no run)"
    } else {
        &report.run_id
    };
    say_part!(
        "{run}  event {}  {}",
        report.event_id,
        report.outcome.name()
    );
    match report.follow_up {
        Some(id) => say!("  → follow-up {id}: handoff follow-ups show {id}"),
        None => say!(),
    }
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn engine(ctx: &Ctx) -> Result<Engine> {
    Ok(Engine::new(&ctx.config, ctx.open_store()?)?)
}

/// An event file, parsed, and the context file (`{}` when there is none),
/// each at most `max` bytes.
pub(crate) fn read_event(
    event: &Path,
    context: Option<&Path>,
    max: usize,
) -> Result<(CloudEvent, serde_json::Value)> {
    let bytes = crate::files::read_input(event, "event", max)?;
    let event = CloudEvent::parse(&bytes, &crate::files::input_name(event))?;
    let context = match context {
        Some(path) => crate::files::read_json(path, "context", max)?,
        None => serde_json::json!({}),
    };
    Ok((event, context))
}

pub fn run_event(ctx: &Ctx, event: &Path, context: Option<&Path>, json: bool) -> Result<u8> {
    let (event, context) = read_event(event, context, ctx.config.serve.max_body_bytes)?;
    if !ctx.config.store_path.exists() {
        // Approvals live in the store: with none yet, no policy is approved
        // and the event is refused. Said from an empty store in memory, so
        // that a refusal leaves no empty store file behind.
        Engine::new(&ctx.config, crate::store::Store::in_memory()?)?.accept(&event, &context)?;
    }
    let mut engine = engine(ctx)?;
    let report = runtime()?.block_on(engine.submit(&event, &context))?;
    print_report(&report, json)?;
    Ok(code(report.outcome))
}

pub fn resume(ctx: &Ctx, json: bool) -> Result<u8> {
    let mut engine = engine(ctx)?;
    let resumed = runtime()?.block_on(engine.resume_unfinished())?;
    let reports = resumed.reports;
    if reports.is_empty() && resumed.held.is_empty() && !json {
        say!("no unfinished runs");
    }
    for r in &reports {
        print_report(r, json)?;
    }
    for held in &resumed.held {
        if let crate::pipeline::RunError::Busy {
            run_id,
            owner,
            until,
        } = held
        {
            if json {
                say!(
                    "{}",
                    serde_json::json!({ "run_id": run_id, "held_by": owner, "until": until })
                );
            } else {
                say!("{held}; left to it");
            }
        }
    }
    Ok(reports
        .iter()
        .map(|r| code(r.outcome))
        .max()
        .unwrap_or(exit::OK))
}
