//! `handoff policy ...`: a policy takes effect only once a person approved
//! its exact text; a changed policy waits for a new approval.

use super::{Ctx, exit};
use crate::policy::Policy;
use crate::store::policies::PolicyStatus;
use anyhow::{Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show a policy's id, version, digest, reach and approval status.
    Inspect {
        /// The policy file (TOML).
        file: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a policy exactly as it is now.
    Approve {
        /// The policy file (TOML).
        file: PathBuf,
        /// Who approves (a workflow owner): recorded with the approval.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The latest approval of every policy id.
    List {
        /// The approvals as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a policy's approval: no new run starts under it, and
    /// unfinished runs stop at their next drive.
    Revoke {
        /// The policy id ([policy] id).
        id: String,
        /// Who revokes: recorded with the revocation.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn status_text(status: &PolicyStatus) -> String {
    match status {
        PolicyStatus::Approved(a) => format!("approved by {} at {}", a.approved_by, a.approved_at),
        PolicyStatus::NotApproved => "NOT APPROVED: no run starts under it".into(),
        PolicyStatus::Revoked { by, at } => format!("REVOKED by {by} at {at}"),
        PolicyStatus::Changed { widened, .. } if widened.is_empty() => {
            "CHANGED since its approval: approve it again".into()
        }
        PolicyStatus::Changed { widened, .. } => format!(
            "CHANGED since its approval and WIDENED ({}): approve it again",
            widened.join(", ")
        ),
    }
}

pub fn run(cmd: PolicyCommand, ctx: &Ctx) -> Result<u8> {
    match cmd {
        PolicyCommand::Inspect { file, json } => {
            let store = ctx.store_or_empty()?;
            let policy = Policy::load(&file)?;
            let status = store.policy_status(&policy)?;
            if json {
                let report = serde_json::json!({
                    "id": policy.id, "version": policy.version, "sha256": policy.sha256,
                    "trigger": policy.trigger.event_type, "reach": policy.reach_lines(),
                    "adapters": policy.adapters(), "status": status_text(&status),
                    "approved": matches!(status, PolicyStatus::Approved(_)),
                });
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!("policy   {} v{}", policy.id, policy.version);
                say!("sha256   {}", policy.sha256);
                say!(
                    "trigger  {} in states {:?}",
                    policy.trigger.event_type,
                    policy.trigger.states
                );
                say!("reach    {}", policy.reach_lines().join("\n         "));
                say!("status   {}", status_text(&status));
            }
            Ok(exit::OK)
        }
        PolicyCommand::Approve { file, by, json } => {
            let mut store = ctx.open_store()?;
            let policy = Policy::load(&file)?;
            let answer = |already: bool, by: &str| {
                serde_json::json!({
                    "approved": policy.id, "version": policy.version,
                    "sha256": policy.sha256, "by": by, "already": already,
                    "reach": policy.reach_lines(),
                })
            };
            if let PolicyStatus::Approved(a) = store.policy_status(&policy)? {
                if json {
                    say!("{}", answer(true, &a.approved_by));
                    return Ok(exit::OK);
                }
                say!(
                    "policy {} v{} is already approved (by {} at {})",
                    policy.id,
                    policy.version,
                    a.approved_by,
                    a.approved_at
                );
                return Ok(exit::OK);
            }
            store.approve_policy(&policy, &by)?;
            if json {
                say!("{}", answer(false, &by));
                return Ok(exit::OK);
            }
            say!(
                "approved policy {} v{} (sha256 {}) by {by}; it may do:\n  {}",
                policy.id,
                policy.version,
                policy.sha256,
                policy.reach_lines().join("\n  ")
            );
            Ok(exit::OK)
        }
        PolicyCommand::List { json } => {
            let store = ctx.store_or_empty()?;
            let approvals = store.current_policy_approvals()?;
            if json {
                let rows: Vec<_> = approvals
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "id": a.policy_id, "version": a.version, "sha256": a.sha256,
                            "reach": a.reach, "approved_by": a.approved_by,
                            "approved_at": a.approved_at, "revoked_by": a.revoked_by,
                            "revoked_at": a.revoked_at,
                        })
                    })
                    .collect();
                say!("{}", serde_json::to_string_pretty(&rows)?);
            } else if approvals.is_empty() {
                say!(
                    "no policies approved in {}",
                    ctx.config.store_path.display()
                );
            } else {
                for a in &approvals {
                    let state = match &a.revoked_by {
                        Some(by) => format!("REVOKED by {by}"),
                        None => format!("approved by {} at {}", a.approved_by, a.approved_at),
                    };
                    say!(
                        "{:<28} v{:<4} {}  {}",
                        a.policy_id,
                        a.version,
                        &a.sha256[..12],
                        state
                    );
                }
            }
            Ok(exit::OK)
        }
        PolicyCommand::Revoke { id, by, json } => {
            let mut store = ctx.existing_store()?;
            if store.revoke_policy(&id, &by)? {
                if json {
                    say!("{}", serde_json::json!({ "revoked": id, "by": by }));
                } else {
                    say!("revoked policy {id}; no run starts or continues under it");
                }
                Ok(exit::OK)
            } else {
                bail!("policy {id} has no live approval to revoke (see `handoff policy list`)")
            }
        }
    }
}
