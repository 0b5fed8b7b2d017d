//! Delivery: telling people of follow-up packets. One pass takes the
//! notices whose time has come (scheduled with their packet, so a restart
//! loses none), drops those a person's acknowledgement or resolution made
//! pointless, and publishes the rest through the role's adapter instances
//! on the one adapter-call path, each with its own key: the target is
//! observed first and a key it already holds is not sent again, so a crash
//! between the publish and its record sends nothing twice. Each outcome
//! (sent, failed for good, cancelled) is recorded with its audit row in
//! one transaction; a failed try is counted and tried again later with a
//! doubling pause. Delivery runs beside the runs and never blocks or fails
//! one.

use super::calls::AdapterCalls;
use super::{Engine, RunError};
use crate::audit::Entry;
use crate::follow_up::{FollowUp, notices};
use crate::model::{NoticeState, Reason};
use crate::sandbox::{Action, Link, Message, RecordRef};
use crate::store::notices::NoticeRow;
use crate::store::{StoreError, follow_ups};
use serde_json::json;
use std::time::Duration;

/// Tries a notice gets before it is marked failed.
pub const NOTICE_ATTEMPTS: u32 = 5;
/// The pause after a notice's first failed try; it doubles after each one.
const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_secs(3600);
/// How long a claim on a notice lasts: longer than a send takes (the call
/// timeout times the retries), so no other deliverer takes it meanwhile.
const CLAIM: Duration = Duration::from_secs(600);
/// Notices taken in one pass; the rest wait for the next.
pub const NOTICES_PER_PASS: usize = 100;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub sent: usize,
    /// Tries that failed and will be made again.
    pub retried: usize,
    /// Notices that failed their last try.
    pub failed: usize,
    /// Notices nobody needs any more.
    pub cancelled: usize,
}

/// What became of one notice.
enum Settled {
    Sent { already: bool },
    Retry { error: String, at: String },
    Failed { error: String },
    Cancelled { why: &'static str },
}

/// The record a role's notices are published to: the role's channel.
fn channel(role: &str) -> RecordRef {
    RecordRef {
        system: "handoff".into(),
        kind: "channel".into(),
        id: role.into(),
    }
}

/// Why a notice is no longer needed, if it is not.
fn pointless(notice: &NoticeRow, follow_up: &FollowUp) -> Option<&'static str> {
    if !follow_up.is_open() {
        Some("resolved")
    } else if follow_up.acknowledged_at.is_some() && notice.kind.stopped_by_acknowledgement() {
        Some("acknowledged")
    } else {
        None
    }
}

impl Engine {
    /// One delivery pass at `now`: every pending notice due by then (at
    /// most [`NOTICES_PER_PASS`]) sent, cancelled or put off.
    pub async fn deliver(&mut self, now: jiff::Timestamp) -> Result<Delivery, RunError> {
        let at = crate::model::time::rfc3339(now);
        let due = crate::store::notices::due(&*self.store.conn()?, &at, NOTICES_PER_PASS)?;
        let mut done = Delivery::default();
        for notice in due {
            let follow_up = follow_ups::get(&*self.store.conn()?, notice.follow_up_id)?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "notice {} names follow-up {}, which is not stored",
                        notice.id, notice.follow_up_id
                    ))
                })?;
            let settled = match pointless(&notice, &follow_up) {
                Some(why) => Settled::Cancelled { why },
                None => {
                    if !self.claim(&notice)? {
                        tracing::debug!(notice = notice.id, "another deliverer holds this notice");
                        continue;
                    }
                    // The packet and the claim on disk before anyone is
                    // told (when the store syncs in groups).
                    self.store.durable().await?;
                    self.send(&notice, &follow_up, now).await?
                }
            };
            match &settled {
                Settled::Sent { .. } => done.sent += 1,
                Settled::Retry { .. } => done.retried += 1,
                Settled::Failed { .. } => done.failed += 1,
                Settled::Cancelled { .. } => done.cancelled += 1,
            }
            self.settle(&notice, &follow_up, settled)?;
        }
        Ok(done)
    }

    /// Take the notice for this process, so no other deliverer sends it
    /// meanwhile (the claim is by the wall clock: it is about processes,
    /// not about the schedule `--now` moves).
    fn claim(&mut self, notice: &NoticeRow) -> Result<bool, RunError> {
        let until = crate::model::time::rfc3339_in(CLAIM);
        let tx = self.store.write()?;
        let taken = crate::store::notices::claim(
            &tx,
            notice.id,
            &crate::store::runs::lease_owner(),
            &until,
        )?;
        tx.commit()?;
        Ok(taken)
    }

    /// Publish one notice, unless its target already holds its key.
    async fn send(
        &mut self,
        notice: &NoticeRow,
        follow_up: &FollowUp,
        now: jiff::Timestamp,
    ) -> Result<Settled, RunError> {
        let packet = &follow_up.packet;
        let record = channel(&notice.role);
        let mut calls = AdapterCalls::new(self.host.clone(), &self.store)
            .for_run(Some(&packet.run_id), &packet.event_id);
        let failed = |summary: String, reason: Reason| {
            let error = format!("{}: {summary}", reason.name());
            if reason != Reason::RetriesExhausted || notice.attempts + 1 >= NOTICE_ATTEMPTS {
                Settled::Failed { error }
            } else {
                let pause = FIRST_PAUSE
                    .saturating_mul(1 << notice.attempts.min(16))
                    .min(LONGEST_PAUSE);
                let span = jiff::SignedDuration::try_from(pause).unwrap_or_default();
                let at = now.checked_add(span).unwrap_or(jiff::Timestamp::MAX);
                Settled::Retry {
                    error,
                    at: crate::model::time::rfc3339(at),
                }
            }
        };
        match calls.observe(&notice.instance, &record).await? {
            Ok(seen) if seen.applied_keys.contains(&notice.key) => {
                return Ok(Settled::Sent { already: true });
            }
            Ok(_) => {}
            Err(halt) => return Ok(failed(halt.summary, halt.reason)),
        }
        let link = self.host.public_url.as_ref().map(|base| {
            format!(
                "{}/ui/follow-ups/{}",
                base.trim_end_matches('/'),
                follow_up.id
            )
        });
        let (subject, body) = notices::message(
            follow_up.id,
            packet,
            notice.kind,
            &notice.role,
            link.as_deref(),
        );
        let action = Action::Publish(Message {
            subject,
            body,
            links: link
                .into_iter()
                .map(|url| Link {
                    url,
                    title: format!("follow-up {}", follow_up.id),
                })
                .collect(),
        });
        match calls
            .apply(&notice.instance, &record, &action, &notice.key, false)
            .await?
        {
            Ok(_) => {
                // A crash here, after the publish and before its record,
                // must not send it again.
                self.host
                    .faults
                    .point("after-notice", notice.kind.name())
                    .await;
                Ok(Settled::Sent { already: false })
            }
            Err(halt) => Ok(failed(halt.summary, halt.reason)),
        }
    }

    /// Record what became of a notice, with its audit row, in one
    /// transaction.
    fn settle(
        &mut self,
        notice: &NoticeRow,
        follow_up: &FollowUp,
        settled: Settled,
    ) -> Result<(), RunError> {
        let tx = self.store.write()?;
        let mut payload = json!({
            "follow_up": follow_up.id, "notice": notice.id, "kind": notice.kind.name(),
            "role": notice.role, "instance": notice.instance, "key": notice.key,
        });
        let kind = match &settled {
            Settled::Sent { already } => {
                crate::store::notices::settle(&tx, notice.id, NoticeState::Sent, None)?;
                payload["already_there"] = json!(already);
                "notice-sent"
            }
            Settled::Retry { error, at } => {
                crate::store::notices::retry(&tx, notice.id, error, at)?;
                tx.commit()?;
                tracing::warn!(notice = notice.id, follow_up = follow_up.id, %error, retry_at = %at,
                    "a notice was not delivered; it will be tried again");
                return Ok(());
            }
            Settled::Failed { error } => {
                crate::store::notices::settle(&tx, notice.id, NoticeState::Failed, Some(error))?;
                tracing::error!(notice = notice.id, follow_up = follow_up.id, %error,
                    "a notice could not be delivered");
                payload["attempts"] = json!(notice.attempts + 1);
                "notice-failed"
            }
            Settled::Cancelled { why } => {
                crate::store::notices::settle(&tx, notice.id, NoticeState::Cancelled, None)?;
                payload["why"] = json!(why);
                "notice-cancelled"
            }
        };
        let packet = &follow_up.packet;
        crate::store::audit::append(
            &tx,
            &Entry {
                run_id: Some(packet.run_id.clone()),
                event_id: Some(packet.event_id.clone()),
                kind: kind.into(),
                payload,
                policy_sha256: Some(packet.policy_sha256.clone()),
                adapter_sha256: self.host.adapter_sha(&notice.instance),
            },
        )?;
        tx.commit()?;
        Ok(())
    }
}
