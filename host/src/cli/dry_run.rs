//! `handoff run --dry-run`: what a run of an event would do now, printed
//! for a person (or as one JSON object), with nothing written.

use super::Ctx;
use super::exit;
use super::run::{code, engine, read_event, runtime};
use crate::pipeline::preview::{Preview, Would};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The exit code is the one `handoff run` would give now (for several
/// events, the gravest): a refusal or a bad event is an error, a follow-up
/// is a follow-up. Several events are each tried on their own; one that
/// cannot be read or admitted is reported and the others still tried.
pub fn dry_run(ctx: &Ctx, events: &[PathBuf], context: Option<&Path>, json: bool) -> Result<u8> {
    // A dry run stores nothing: where no store is yet, it reads an empty
    // one in memory (nothing approved) rather than make the file.
    let mut engine = if ctx.config.store_path.exists() {
        engine(ctx)?
    } else {
        crate::pipeline::Engine::new(&ctx.config, crate::store::Store::in_memory()?)?
    };
    let runtime = runtime()?;
    let mut tally = Tally::default();
    for path in events {
        let preview = read_event(path, context, ctx.config.serve.max_body_bytes)
            .and_then(|(event, context)| Ok(runtime.block_on(engine.preview(&event, &context))?));
        let preview = match preview {
            Ok(p) => p,
            // One event: its error is the command's error, as for a run.
            Err(e) if events.len() == 1 => return Err(e),
            Err(e) => {
                let message = format!("{e:#}");
                if json {
                    let line = serde_json::json!({ "event_file": path, "error": message });
                    say!("{line}");
                } else {
                    say!("{}: could not be tried: {message}\n", path.display());
                }
                tally.failed += 1;
                tally.raise(exit::ERROR);
                continue;
            }
        };
        if json {
            say!("{}", serde_json::to_string(&preview)?);
        } else {
            say_part!("{}", render(&preview));
            if events.len() > 1 {
                say!();
            }
        }
        tally.add(&preview);
    }
    if events.len() > 1 && !json {
        say!("{}", tally.summary(events.len()));
    }
    Ok(tally.code)
}

/// How the events of a dry run would end.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<&'static str, usize>,
    refused: usize,
    failed: usize,
    code: u8,
}

impl Tally {
    fn add(&mut self, p: &Preview) {
        let code = match p.refused {
            Some(_) => {
                self.refused += 1;
                exit::ERROR
            }
            None => {
                *self.outcomes.entry(p.outcome.name()).or_default() += 1;
                code(p.outcome)
            }
        };
        self.raise(code);
    }

    /// Keep the gravest exit code: an error (1) over a follow-up (3) over
    /// success (0).
    fn raise(&mut self, code: u8) {
        let grave = |c: u8| match c {
            exit::OK => 0,
            exit::FOLLOW_UP => 1,
            _ => 2,
        };
        if grave(code) > grave(self.code) {
            self.code = code;
        }
    }

    fn summary(&self, events: usize) -> String {
        let mut parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(outcome, n)| format!("{n} would end {outcome}"))
            .collect();
        if self.refused > 0 {
            parts.push(format!("{} would be refused", self.refused));
        }
        if self.failed > 0 {
            parts.push(format!("{} could not be tried", self.failed));
        }
        format!("{events} events: {}", parts.join(", "))
    }
}

/// The preview as lines for a person.
pub fn render(p: &Preview) -> String {
    let mut out = format!(
        "dry run of event {} under policy {} (sha256 {}): nothing was written\n",
        p.event_id,
        p.policy,
        &p.policy_sha256[..p.policy_sha256.len().min(12)]
    );
    if let Some(refusal) = &p.refused {
        out += &format!("  refused      a real run would be refused: {refusal}\n");
    }
    if let Some(dup) = &p.duplicate_of {
        let by = match dup.by {
            "event-id" => "the same source and id",
            _ => "the same business key",
        };
        let run = dup.run_id.as_deref().unwrap_or("(no run)");
        out += &format!(
            "  duplicate    already taken as run {run} ({by}): a real run would be suppressed; nothing was read\n"
        );
    }
    for read in &p.reads {
        out += &format!("  {}\n", read_line(read.kind, &read.payload));
    }
    let width = p.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    for s in &p.steps {
        let verb = match s.would {
            Would::Apply => "would apply",
            Would::Skip => "would skip ",
            Would::Stop => "would stop ",
            Would::NotReach => "not reached",
        };
        let state = s.state.as_ref().filter(|state| !state.is_empty());
        let now = match (state, s.would) {
            (Some(state), Would::Skip) if s.ours => {
                format!(" (now {state}: written under this key before)")
            }
            (Some(state), Would::Skip) => format!(" (now {state}: already in its end state)"),
            (Some(state), _) => format!(" (now {state})"),
            (None, _) => String::new(),
        };
        out += &format!(
            "  {verb}  {:width$}  {} {} {}{now}\n",
            s.step, s.adapter, s.record, s.action
        );
    }
    if let Some(halt) = &p.halt {
        out += &format!(
            "a run would stop for a person ({}): {}\n",
            halt.reason, halt.summary
        );
    }
    let when = if p.refused.is_some() {
        "once approved, "
    } else {
        ""
    };
    out += &format!("{when}a run would end {}\n", p.outcome.name());
    out
}

/// One read, from its audit row's identifiers and states.
fn read_line(kind: &str, p: &Value) -> String {
    let s = |key: &str| p[key].as_str().unwrap_or("?").to_string();
    let record = format!("{} {}/{}", s("adapter"), s("kind"), s("id"));
    match kind {
        "revalidated" => {
            let verdict = if p["still-authorized"] == true {
                "still authorizes"
            } else {
                "no longer authorizes"
            };
            let revision = p["revision"]
                .as_str()
                .map(|r| format!(", revision {r}"))
                .unwrap_or_default();
            format!("revalidated  {record}: {}{revision}, {verdict}", s("state"))
        }
        "check-passed" => format!("check        {}: passed ({record})", s("check")),
        "check-failed" => format!(
            "check        {}: failed ({record}): {} expected {}, found {}",
            s("check"),
            s("path"),
            s("expected"),
            s("found")
        ),
        other => format!("{other:12} {p}"),
    }
}
