//! `handoff shadow report`: what people did with the runs a policy in
//! shadow mode only looked at.

use super::run::{engine, runtime};
use super::{Ctx, exit};
use crate::pipeline::shadow::report::{MAX_RUNS, RunVerdict, Verdict};
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Observe again the targets of every shadowed run (newest first, at
    /// most 1000) and say, per run, whether people did what the automation
    /// would have done, something else, or nothing yet. Reads only.
    Report {
        /// Only runs shadowed at or after this time (RFC 3339).
        #[arg(long, value_parser = super::args::timestamp)]
        since: Option<jiff::Timestamp>,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ShadowCommand, ctx: &Ctx) -> Result<u8> {
    let ShadowCommand::Report { since, json } = cmd;
    ctx.must_exist()?;
    let mut engine = engine(ctx)?;
    let since = since.map(crate::store::rfc3339);
    let report = runtime()?.block_on(engine.shadow_report(since.as_deref(), MAX_RUNS))?;
    if json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        // What the targets show now is theirs: nothing in it drives the terminal.
        say_part!("{}", crate::kept::inert_lines(&render(&report)));
    }
    Ok(exit::OK)
}

fn render(report: &[RunVerdict]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if report.is_empty() {
        out.push_str("no shadowed runs\n");
        return out;
    }
    for r in report {
        let _ = writeln!(
            out,
            "{}  {}  {}  {}",
            r.run_id,
            r.event_id,
            r.shadowed_at,
            r.verdict.says()
        );
        if let Some(reason) = &r.would_stop {
            let _ = writeln!(out, "    would have stopped: {reason}");
        }
        for s in &r.steps {
            let _ = writeln!(
                out,
                "    {:<20} {} on {} {}: {}{}",
                s.step,
                s.action,
                s.adapter,
                s.record,
                s.now,
                s.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    let count = |v: Verdict| report.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        out,
        "{} shadowed runs: {} the same, {} different, {} not done, {} would stop, {} nothing to do, {} unknown",
        report.len(),
        count(Verdict::Same),
        count(Verdict::Different),
        count(Verdict::Nothing),
        count(Verdict::WouldStop),
        count(Verdict::NothingToDo),
        count(Verdict::Unknown),
    );
    out
}
