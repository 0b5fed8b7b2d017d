//! `handoff follow-ups list | show ID | ack ID | resolve ID`: the packets
//! handed to people, who took them on, and their decisions.

use super::run::{code, engine, print_report, runtime};
use super::{Ctx, exit};
use crate::follow_up::Resolution;
use crate::store::follow_ups;
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

#[derive(Debug, Subcommand)]
pub enum FollowUpsCommand {
    /// Open follow-ups (all with --all), newest first.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One packet, as Markdown (default) or JSON.
    Show {
        id: i64,
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record that a person has taken a follow-up on (before deciding it).
    Ack {
        id: i64,
        /// The role taking it on.
        #[arg(long)]
        by: String,
    },
    /// Record a decision on a follow-up.
    Resolve {
        id: i64,
        #[arg(long, value_enum)]
        action: ResolveAction,
        /// The role deciding.
        #[arg(long)]
        by: String,
        /// Why (kept with the follow-up, not in the audit chain).
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: FollowUpsCommand, ctx: &Ctx) -> Result<u8> {
    match cmd {
        FollowUpsCommand::List { all, json } => {
            let store = ctx.open_store()?;
            let list = follow_ups::list(&*store.conn()?, all)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(exit::OK);
            }
            if list.is_empty() {
                println!("no {}follow-ups", if all { "" } else { "open " });
            }
            for f in &list {
                println!(
                    "{:<4} {:<22} {:<10} → {:<22} due {}  {}",
                    f.id,
                    f.packet.reason.name(),
                    f.packet.run_id,
                    f.packet.route_to,
                    f.packet.due_at,
                    match (f.resolution, &f.acknowledged_by) {
                        (Some(r), _) => r.name(),
                        (None, Some(_)) => "acknowledged",
                        (None, None) => "open",
                    }
                );
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Show { id, json, .. } => {
            let store = ctx.open_store()?;
            let Some(f) = follow_ups::get(&*store.conn()?, id)? else {
                bail!("no follow-up {id}; see handoff follow-ups list");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                print!("{}", f.markdown());
            }
            Ok(exit::OK)
        }
        FollowUpsCommand::Ack { id, by } => {
            if by.trim().is_empty() {
                bail!("--by must name the role taking it on");
            }
            engine(ctx)?.acknowledge(id, &by)?;
            println!("follow-up {id}: acknowledged by {by}");
            Ok(exit::OK)
        }
        FollowUpsCommand::Resolve {
            id,
            action,
            by,
            note,
            json,
        } => {
            if by.trim().is_empty() {
                bail!("--by must name the role deciding");
            }
            let resolution = match action {
                ResolveAction::Resume => Resolution::Resume,
                ResolveAction::Abandon => Resolution::Abandon,
                ResolveAction::MarkResolved => Resolution::MarkResolved,
            };
            let mut engine = engine(ctx)?;
            let report = runtime()?.block_on(engine.resolve(id, resolution, &by, &note))?;
            match report {
                Some(r) => {
                    print_report(&r, json)?;
                    Ok(code(r.outcome))
                }
                None => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"follow_up": id, "resolution": resolution.name()})
                        );
                    } else {
                        println!("follow-up {id}: {} by {by}", resolution.name());
                    }
                    Ok(exit::OK)
                }
            }
        }
    }
}
