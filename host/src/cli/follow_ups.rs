//! `handoff follow-ups list | show ID | notices ID | ack ID | resolve ID |
//! deliver`: the packets handed to people, who was told of them, who took
//! them on, and their decisions.

use super::run::{code, engine, print_report, runtime};
use super::{Ctx, exit};
use crate::follow_up::Resolution;
use crate::model::ResolutionVerdict;
use crate::store::{follow_ups, now_rfc3339};
use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResolveAction {
    /// Revalidate, then carry out only the unfinished steps.
    Resume,
    /// Stop for good.
    Abandon,
    /// The work was finished by hand.
    MarkResolved,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VerdictArg {
    /// It needed a person.
    Needed,
    /// Nothing needed doing: a false positive.
    Unnecessary,
}

#[derive(Debug, Subcommand)]
pub enum FollowUpsCommand {
    /// Open follow-ups (all with --all), newest first.
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// Only those routed to this role.
        #[arg(long)]
        role: Option<String>,
        /// Only open ones past their due time (the policy's `sla-hours`).
        #[arg(long, conflicts_with = "all")]
        overdue: bool,
        /// The follow-ups as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One packet, as Markdown (default) or JSON.
    Show {
        /// The follow-up's number, as `follow-ups list` shows it.
        id: i64,
        /// Markdown (the default).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The notices a packet sends its role and the escalation chain, and
    /// where each stands.
    Notices {
        /// The follow-up's number.
        id: i64,
        /// The notices as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send the notices whose time has come (what `serve` does every
    /// `deliver-seconds`), once.
    Deliver {
        /// The time to deliver as of (RFC 3339; default now): a reminder or
        /// escalation due by then goes out.
        #[arg(long, value_parser = super::args::timestamp)]
        now: Option<jiff::Timestamp>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Record that a person has taken a follow-up on (before deciding it).
    Ack {
        /// The follow-up's number.
        id: i64,
        /// The role taking it on.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Record a decision on a follow-up.
    Resolve {
        /// The follow-up's number.
        id: i64,
        /// What becomes of the run.
        #[arg(long, value_enum)]
        action: ResolveAction,
        /// The role deciding.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// Why (kept with the follow-up, not in the audit chain).
        #[arg(long, default_value = "")]
        note: String,
        /// Whether the packet was needed at all: `unnecessary` counts it as
        /// a false positive of the automation (with mark-resolved or abandon).
        #[arg(long, value_enum)]
        verdict: Option<VerdictArg>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: FollowUpsCommand, ctx: &Ctx) -> Result<u8> {
    // Every one of these is about packets already stored.
    ctx.must_exist()?;
    match cmd {
        FollowUpsCommand::List {
            all,
            role,
            overdue,
            json,
        } => {
            let store = ctx.existing_store()?;
            let now = now_rfc3339();
            let which = follow_ups::Which {
                resolved_too: all,
                route_to: role.as_deref(),
                due_before: overdue.then_some(now.as_str()),
            };
            let list = follow_ups::list(&*store.conn()?, which)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(exit::OK);
            }
            if list.is_empty() {
                let which = match (all, overdue) {
                    (_, true) => "overdue ",
                    (true, false) => "",
                    (false, false) => "open ",
                };
                let to = role.map(|r| format!(" for {r}")).unwrap_or_default();
                say!("no {which}follow-ups{to}");
            }
            for f in &list {
                let late = f.is_overdue(&now);
                say!(
                    "{:<4} {:<22} {:<10} → {:<22} due {}  {}{}",
                    f.id,
                    f.packet.reason.name(),
                    f.packet.run_id,
                    f.packet.route_to,
                    f.packet.due_at,
                    match (f.resolution, &f.acknowledged_by) {
                        (Some(r), _) => r.name(),
                        (None, Some(_)) => "acknowledged",
                        (None, None) => "open",
                    },
                    if late { ", overdue" } else { "" }
                );
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Show { id, json, .. } => {
            let store = ctx.existing_store()?;
            let Some(f) = follow_ups::get(&*store.conn()?, id)? else {
                bail!("no follow-up {id}; see handoff follow-ups list");
            };
            if json {
                say!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                say_part!("{}", f.markdown());
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Notices { id, json } => {
            let store = ctx.existing_store()?;
            let conn = store.conn()?;
            if follow_ups::get(&conn, id)?.is_none() {
                bail!("no follow-up {id}; see handoff follow-ups list");
            }
            let list = crate::store::notices::for_follow_up(&conn, id)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(exit::OK);
            }
            if list.is_empty() {
                say!("follow-up {id} sends no notices: its role has no [roles.NAME] with `reach`");
            }
            for n in &list {
                say!(
                    "{:<5} {:<9} → {:<22} via {:<12} at {}  {}{}",
                    n.id,
                    n.kind.name(),
                    n.role,
                    n.instance,
                    n.sent_at.as_deref().unwrap_or(&n.send_at),
                    n.state.name(),
                    n.last_error
                        .as_ref()
                        .map(|e| format!(" ({} tries; last: {e})", n.attempts))
                        .unwrap_or_default()
                );
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Deliver { now, json } => {
            let mut engine = engine(ctx)?;
            let now = now.unwrap_or_else(jiff::Timestamp::now);
            let done = runtime()?.block_on(engine.deliver(now))?;
            if json {
                say!("{}", serde_json::to_string(&done)?);
            } else {
                say!(
                    "notices: {} sent, {} to try again, {} failed, {} no longer needed",
                    done.sent,
                    done.retried,
                    done.failed,
                    done.cancelled
                );
            }
            Ok(if done.failed > 0 {
                exit::ERROR
            } else {
                exit::OK
            })
        }
        FollowUpsCommand::Ack { id, by, json } => {
            engine(ctx)?.acknowledge(id, &by)?;
            if json {
                say!(
                    "{}",
                    serde_json::json!({ "follow_up": id, "acknowledged_by": by })
                );
            } else {
                say!("follow-up {id}: acknowledged by {by}");
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Resolve {
            id,
            action,
            by,
            note,
            verdict,
            json,
        } => {
            if matches!(action, ResolveAction::Resume) && verdict.is_some() {
                bail!(
                    "--verdict goes with mark-resolved or abandon: a resumed packet needed a person"
                );
            }
            let verdict = verdict.map(|v| match v {
                VerdictArg::Needed => ResolutionVerdict::Needed,
                VerdictArg::Unnecessary => ResolutionVerdict::Unnecessary,
            });
            let resolution = match action {
                ResolveAction::Resume => Resolution::Resume,
                ResolveAction::Abandon => Resolution::Abandon,
                ResolveAction::MarkResolved => Resolution::MarkResolved,
            };
            let mut engine = engine(ctx)?;
            let report =
                runtime()?.block_on(engine.resolve(id, resolution, &by, &note, verdict))?;
            match report {
                Some(r) => {
                    print_report(&r, json)?;
                    Ok(code(r.outcome))
                }
                None => {
                    if json {
                        say!(
                            "{}",
                            serde_json::json!({"follow_up": id, "resolution": resolution.name()})
                        );
                    } else {
                        say!("follow-up {id}: {} by {by}", resolution.name());
                    }
                    Ok(exit::OK)
                }
            }
        }
    }
}
