//! `handoff demo`: runs the release-readiness scenario and its failure
//! variants on the embedded default and prints what became of each: a
//! table of outcomes, the follow-up packets handed to people, and the audit
//! verification.

use super::exit;
use crate::demo::{self, CaseResult};
use anyhow::Result;
use std::path::Path;

const INTRO: &str = "\
handoff demo: the release-readiness scenario (examples/release-readiness)

Governance review RV-118 of release R-2026.11 is accepted. handoff re-reads the
review from its source, checks the milestone mapping and the archived evidence's
sha256, then carries out six closure steps: close checklist CL-7, mark the release
approved, attach the evidence link, clear the review-queue entry, tell the scheduler
intake, notify the release coordinators. Every system is a directory of records,
reached only through a sandboxed WebAssembly adapter. Each case starts from the
same seed with one thing changed.
";

pub fn run(dir: &Path, packages: &Path, json: bool) -> Result<u8> {
    if json {
        return run_json(dir, packages);
    }
    say!("{INTRO}");
    say!(
        "  {:<2} {:<48} {:<44} {:>6}",
        "#",
        "case",
        "outcome",
        "writes"
    );
    let results = demo::run_all(dir, packages, |r| {
        let outcomes: Vec<&str> = r.outcomes.iter().map(|o| o.name()).collect();
        let mark = if r.as_expected() {
            ""
        } else {
            "  ✗ unexpected"
        };
        say!(
            "  {:<2} {:<48} {:<44} {:>6}{mark}",
            r.number,
            r.name,
            outcomes.join(" → "),
            r.writes
        );
    })?;
    follow_ups(&results);
    audit(&results, dir);
    let unexpected: Vec<String> = results
        .iter()
        .filter(|r| !r.as_expected())
        .map(|r| {
            let want: Vec<&str> = r.expected.iter().map(|o| o.name()).collect();
            format!("case {} should end {}", r.number, want.join(" → "))
        })
        .collect();
    if unexpected.is_empty() {
        say!("\nEvery case ended as it should.");
        Ok(exit::OK)
    } else {
        say!("\nNot as expected: {}", unexpected.join("; "));
        Ok(exit::ERROR)
    }
}

/// The demo as one JSON object: each case with its outcomes (and those it
/// should have ended with), its writes, its packets and its audit chain.
fn run_json(dir: &Path, packages: &Path) -> Result<u8> {
    let results = demo::run_all(dir, packages, |_| {})?;
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "case": r.number, "name": r.name,
                "outcomes": r.outcomes.iter().map(|o| o.name()).collect::<Vec<_>>(),
                "expected": r.expected.iter().map(|o| o.name()).collect::<Vec<_>>(),
                "as_expected": r.as_expected(), "writes": r.writes,
                "follow_ups": r.follow_ups, "audit_rows": r.audit_rows,
                "audit_verified": r.audit_verified, "workspace": r.workspace,
            })
        })
        .collect();
    let all = results.iter().all(CaseResult::as_expected);
    say!(
        "{}",
        serde_json::json!({ "cases": cases, "as_expected": all, "dir": dir })
    );
    Ok(if all { exit::OK } else { exit::ERROR })
}

fn follow_ups(results: &[CaseResult]) {
    say!("\nFollow-up packets handed to a person (a role, never a person by name):");
    for r in results {
        for f in &r.follow_ups {
            let p = &f.packet;
            say!(
                "  case {} #{} [{}] to {}: {}",
                r.number,
                f.id,
                p.reason.name(),
                p.route_to,
                p.summary
            );
            let names = |lines: &[crate::follow_up::StepLine]| {
                lines
                    .iter()
                    .map(|l| l.step.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut facts = Vec::new();
            if !p.done.is_empty() {
                facts.push(format!("done: {}", names(&p.done)));
            }
            if !p.pending.is_empty() {
                facts.push(format!("pending: {}", names(&p.pending)));
            }
            if !facts.is_empty() {
                say!("      {}", facts.join("; "));
            }
            match (&f.resolution, &f.resolved_by) {
                (Some(res), Some(by)) => say!("      resolved: {} by {by}", res.name()),
                _ => {
                    let next: Vec<&str> = p.next_actions.iter().map(|a| a.name()).collect();
                    say!("      open, due {}; next: {}", p.due_at, next.join(" | "));
                }
            }
        }
    }
}

fn audit(results: &[CaseResult], dir: &Path) {
    let rows: usize = results.iter().map(|r| r.audit_rows).sum();
    let verified = results.iter().filter(|r| r.audit_verified).count();
    say!(
        "\nAudit: {verified} of {} hash chains recomputed and verified ({rows} rows, \
         identifiers, states and links only).",
        results.len()
    );
    if let Some(halted) = results.iter().find(|r| !r.follow_ups.is_empty()) {
        let config = halted.workspace.join("handoff.toml");
        say!(
            "\nEach case's store and systems are kept under {}. Look closer:",
            dir.display()
        );
        say!("  handoff --config {} runs show run-1", config.display());
        say!(
            "  handoff --config {} follow-ups show {}",
            config.display(),
            halted.follow_ups[0].id
        );
    }
}
