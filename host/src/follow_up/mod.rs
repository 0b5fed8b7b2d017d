//! Manual follow-up packets: the contract with a person when handoff stops.
//!
//! A packet says why (a reason code from a closed set), in one line what
//! happened, which steps were done, skipped and are still pending, the
//! source snapshot that was seen, the links, what the person may decide, the
//! role it goes to and by when. It is rendered as Markdown for people and
//! JSON for tools.

pub mod notices;

/// The longest note a resolution keeps (the API, the console and the
/// command line alike): a reason, not the story.
pub const MAX_NOTE_BYTES: usize = 4096;

use crate::policy::condition::{Mismatch, View};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use crate::model::{Reason, Resolution};

/// A step as the packet reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLine {
    pub step: String,
    pub adapter: String,
    pub record: String,
    pub action: String,
}

/// The packet itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub reason: Reason,
    pub summary: String,
    pub run_id: String,
    pub event_id: String,
    pub policy: String,
    pub policy_sha256: String,
    pub done: Vec<StepLine>,
    pub skipped: Vec<StepLine>,
    pub pending: Vec<StepLine>,
    /// How the run ended with this packet (`halted-for-follow-up`,
    /// `partially-completed`); absent in packets stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_outcome: Option<String>,
    /// The source record as read when the run stopped (if it was read):
    /// the fields the policy names, and a count of the rest.
    pub source_snapshot: Option<Snapshot>,
    /// The condition that did not hold, when one did not.
    pub mismatch: Option<Mismatch>,
    /// The records the halt concerns (`adapter kind/id`): the one whose
    /// check or step failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
    pub links: Vec<String>,
    pub next_actions: Vec<Resolution>,
    pub route_to: String,
    pub due_at: String,
}

/// The source record as a packet shows it: its state and the fields the
/// policy names (what a person needs to judge the halt), never the rest of
/// its fields, which may hold narrative a packet must not spread (seed
/// 000's privacy rule); those are only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub exists: bool,
    pub state: String,
    pub revision: Option<String>,
    pub fields: BTreeMap<String, String>,
    /// How many other fields the record had.
    #[serde(default)]
    pub other_fields: usize,
    pub links: Vec<String>,
}

impl Snapshot {
    /// `seen`, keeping only the fields named in `named`.
    pub fn of(seen: &View, named: &BTreeSet<String>) -> Snapshot {
        let fields: BTreeMap<String, String> = seen
            .fields
            .iter()
            .filter(|(k, _)| named.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Snapshot {
            exists: seen.exists,
            state: seen.state.clone(),
            revision: seen.revision.clone(),
            other_fields: seen.fields.len() - fields.len(),
            fields,
            links: seen.links.clone(),
        }
    }
}

/// A stored packet and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub id: i64,
    pub created_at: String,
    pub packet: Packet,
    pub resolution: Option<Resolution>,
    pub resolved_by: Option<String>,
    pub resolved_note: Option<String>,
    pub resolved_at: Option<String>,
    /// Who took it on, and when (a resolution counts as one).
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    /// Whether it was needed at all, when the person resolving it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::model::ResolutionVerdict>,
}

impl FollowUp {
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
    }

    /// Open and past its due time at `now` (RFC 3339, as the store keeps
    /// times: they compare as text).
    pub fn is_overdue(&self, now: &str) -> bool {
        self.is_open() && self.packet.due_at.as_str() < now
    }

    /// The packet for a person. Its values come from events and adapters
    /// (a link a record holds, a state a system reported): every control
    /// character in it but the packet's own line breaks is escaped, so none
    /// drives the terminal it is shown at.
    pub fn markdown(&self) -> String {
        crate::kept::inert_lines(&self.markdown_with_controls())
    }

    fn markdown_with_controls(&self) -> String {
        let p = &self.packet;
        let mut md = String::new();
        let _ = writeln!(md, "# Follow-up {}: {}\n", self.id, p.reason.name());
        let _ = writeln!(md, "{}\n", p.summary);
        let _ = writeln!(md, "- **Route to:** {} (a role)", p.route_to);
        let _ = writeln!(md, "- **Due:** {}", p.due_at);
        let _ = writeln!(md, "- **Run:** {} (event {})", p.run_id, p.event_id);
        if let Some(outcome) = &p.run_outcome {
            let _ = writeln!(md, "- **Run outcome:** {outcome}");
        }
        let _ = writeln!(
            md,
            "- **Policy:** {} (sha256 {})",
            p.policy, p.policy_sha256
        );
        match &self.resolution {
            None => match (&self.acknowledged_by, &self.acknowledged_at) {
                (Some(by), Some(at)) => {
                    let _ = writeln!(md, "- **Status:** open, acknowledged by {by} at {at}");
                }
                _ => {
                    let _ = writeln!(md, "- **Status:** open, not yet acknowledged");
                }
            },
            Some(r) => {
                let _ = writeln!(
                    md,
                    "- **Status:** {} by {} at {}",
                    r.name(),
                    self.resolved_by.as_deref().unwrap_or("?"),
                    self.resolved_at.as_deref().unwrap_or("?")
                );
            }
        }
        if let Some(m) = &p.mismatch {
            let _ = writeln!(md, "\n**What did not hold:** {m}");
        }
        for (title, steps) in [
            ("Done", &p.done),
            ("Skipped (already in their end state)", &p.skipped),
            ("Still pending", &p.pending),
        ] {
            let _ = writeln!(md, "\n## {title}");
            if steps.is_empty() {
                let _ = writeln!(md, "- (none)");
            }
            for s in steps {
                let _ = writeln!(
                    md,
                    "- `{}`: {} on {} via {}",
                    s.step, s.action, s.record, s.adapter
                );
            }
        }
        if let Some(v) = &p.source_snapshot {
            let _ = writeln!(md, "\n## Source as seen");
            let _ = writeln!(
                md,
                "- exists: {}, state: {:?}, revision: {}",
                v.exists,
                v.state,
                v.revision.as_deref().unwrap_or("-")
            );
            for (k, val) in &v.fields {
                let _ = writeln!(md, "- {k}: {val:?}");
            }
            if v.other_fields > 0 {
                let _ = writeln!(
                    md,
                    "- ({} other fields, not shown: the policy does not name them)",
                    v.other_fields
                );
            }
        }
        if !p.records.is_empty() {
            let _ = writeln!(md, "\n## Records concerned");
            for r in &p.records {
                let _ = writeln!(md, "- {r}");
            }
        }
        if !p.links.is_empty() {
            let _ = writeln!(md, "\n## Links");
            for l in &p.links {
                let _ = writeln!(md, "- {l}");
            }
        }
        let _ = writeln!(md, "\n## Next");
        for a in &p.next_actions {
            let _ = writeln!(
                md,
                "- `handoff follow-ups resolve {} --action {} --by ROLE --note TEXT`",
                self.id,
                a.name()
            );
        }
        md
    }
}
