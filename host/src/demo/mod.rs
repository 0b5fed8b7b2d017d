//! `handoff demo`: the release-readiness scenario and its failure variants,
//! each in a fresh workspace on the embedded default (SQLite and the
//! filesystem adapters, run as sandboxed components). Every case says what
//! it shows and which outcome it must end in; the demo checks that it did.

mod workspace;

use crate::follow_up::{FollowUp, Resolution};
use crate::pipeline::Outcome;
use crate::store::{Store, follow_ups};
use anyhow::{Result, bail};
use std::path::Path;
pub use workspace::Workspace;

/// What one case did.
#[derive(Debug)]
pub struct CaseResult {
    pub number: usize,
    pub name: &'static str,
    /// Each drive's outcome, in order (a resumed run has two).
    pub outcomes: Vec<Outcome>,
    pub expected: Vec<Outcome>,
    /// Real writes, counted in the targets' own journals.
    pub writes: usize,
    pub follow_ups: Vec<FollowUp>,
    /// Audit rows, and whether the chain recomputed.
    pub audit_rows: usize,
    pub audit_verified: bool,
    pub workspace: std::path::PathBuf,
}

impl CaseResult {
    pub fn as_expected(&self) -> bool {
        self.outcomes == self.expected && self.audit_verified
    }
}

type Prepare = fn(&Workspace) -> Result<()>;

/// One case: how its world differs from the seed, the events it receives.
struct Case {
    slug: &'static str,
    name: &'static str,
    prepare: Prepare,
    expected: &'static [Outcome],
}

fn nothing(_: &Workspace) -> Result<()> {
    Ok(())
}

const CASES: &[Case] = &[
    Case {
        slug: "accepted",
        name: "review accepted: all six closure steps",
        prepare: nothing,
        expected: &[Outcome::Completed],
    },
    Case {
        slug: "delivered-again",
        name: "the same decision delivered 10 more times",
        prepare: nothing,
        expected: &[Outcome::Completed, Outcome::DuplicateSuppressed],
    },
    Case {
        slug: "reopened",
        name: "review reopened after the event fired",
        prepare: |w| w.set_field("governance/review/RV-118", &["state"], "reopened".into()),
        expected: &[Outcome::HaltedForFollowUp],
    },
    Case {
        slug: "superseded",
        name: "a newer review version supersedes it",
        prepare: |w| {
            w.set_field(
                "governance/review/RV-118",
                &["fields", "review_version"],
                "4".into(),
            )
        },
        expected: &[Outcome::HaltedForFollowUp],
    },
    Case {
        slug: "milestone-missing",
        name: "the release milestone is missing",
        prepare: |w| {
            Ok(std::fs::remove_file(
                w.path("state/tracker/milestone/M-2026.11.json"),
            )?)
        },
        expected: &[Outcome::HaltedForFollowUp],
    },
    Case {
        slug: "evidence-mismatch",
        name: "the archived evidence does not match its hash",
        prepare: |w| {
            Ok(std::fs::write(
                w.path("state/archive/R-2026.11/evidence.tar"),
                b"a different bundle",
            )?)
        },
        expected: &[Outcome::HaltedForFollowUp],
    },
    Case {
        slug: "done-by-hand",
        name: "checklist already closed by hand",
        prepare: |w| w.set_field("checklist/checklist/CL-7", &["state"], "closed".into()),
        expected: &[Outcome::CompletedWithSkips],
    },
    Case {
        slug: "write-ignored",
        name: "tracker answers ok but changes nothing",
        prepare: |w| {
            let path = w.path("handoff.toml");
            let text = std::fs::read_to_string(&path)?.replace(
                "directories = { records = \"state/tracker\" }",
                "directories = { records = \"state/tracker\" }\nconfig = { frozen-kinds = \"release\" }",
            );
            Ok(std::fs::write(path, text)?)
        },
        expected: &[Outcome::PartiallyCompleted],
    },
    Case {
        slug: "queue-offline",
        name: "queue offline mid-run, then back: resume",
        prepare: |w| Ok(std::fs::write(w.path("state/queue/OFFLINE"), b"")?),
        expected: &[Outcome::PartiallyCompleted, Outcome::Completed],
    },
];

/// Run every case under `dir` (made fresh), with the adapter packages in
/// `packages`. `progress` hears each case as it finishes.
pub fn run_all(
    dir: &Path,
    packages: &Path,
    mut progress: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    if dir.exists() {
        if !dir.join(".handoff-demo").is_file() {
            bail!(
                "{} exists and was not made by `handoff demo`; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(".handoff-demo"),
        b"made by handoff demo; safe to delete\n",
    )?;
    let cache = dir.join("artifact-cache");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let root = dir.join(format!("{}-{}", i + 1, case.slug));
        let ws = Workspace::create(&root, packages, &cache)?;
        (case.prepare)(&ws)?;
        let outcomes = runtime.block_on(drive(case.slug, &ws))?;
        let store = Store::open(&ws.config.store_path)?;
        let rows = store.audit_rows(None)?;
        let audit_rows = rows.len();
        let audit_verified = crate::audit::verify(rows).is_ok();
        let result = CaseResult {
            number: i + 1,
            name: case.name,
            outcomes,
            expected: case.expected.to_vec(),
            writes: ws.writes(),
            follow_ups: follow_ups::list(
                &*store.conn()?,
                follow_ups::Which {
                    resolved_too: true,
                    ..Default::default()
                },
            )?,
            audit_rows,
            audit_verified,
            workspace: root,
        };
        progress(&result);
        results.push(result);
    }
    Ok(results)
}

/// The events of one case, and what a person does in between.
async fn drive(slug: &str, ws: &Workspace) -> Result<Vec<Outcome>> {
    let mut engine = ws.engine()?;
    let first = ws.submit(&mut engine, "events/accepted.json").await?;
    let mut outcomes = vec![first.outcome];
    match slug {
        "delivered-again" => {
            // Five re-sends under a new event id, five under the same one:
            // every one is recognised; report the distinct outcomes.
            let mut again = Vec::new();
            for i in 0..10 {
                let event = if i % 2 == 0 {
                    "events/accepted-resent.json"
                } else {
                    "events/accepted.json"
                };
                again.push(ws.submit(&mut engine, event).await?.outcome);
            }
            again.dedup();
            outcomes.extend(again);
        }
        "queue-offline" => {
            // The queue comes back; the coordinator resumes the follow-up.
            std::fs::remove_file(ws.path("state/queue/OFFLINE"))?;
            if let Some(id) = first.follow_up {
                let report = engine
                    .resolve(
                        id,
                        Resolution::Resume,
                        "release-coordinator",
                        "queue is back",
                        None,
                    )
                    .await?;
                outcomes.extend(report.map(|r| r.outcome));
            }
        }
        _ => {}
    }
    Ok(outcomes)
}
