//! Who is told of a packet, and when: the roles of `handoff.toml` (each
//! naming the adapter instances that reach it and its escalation chain) and
//! the notices a new packet schedules, all at once, in the transaction
//! that opens it: `opened` now to its role; a `reminder` at `remind-at`
//! percent of the SLA and an `overdue` notice at the due time, while nobody
//! has taken it on; `escalated` to the next role of the chain `after-hours`
//! after it opened, and on along the chain. A notice that a person's
//! acknowledgement or resolution makes pointless is cancelled when its
//! time comes. Each notice has its own key, so a crash or a retry never
//! sends it twice. The message carries the packet's identifiers, reason,
//! summary, due time and a link to it, never the source's narrative.

use super::Packet;
use crate::model::NoticeKind;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// A role as configuration names it (`[roles.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Adapter instances that reach it, each with `publish`.
    pub reach: Vec<String>,
    /// The next role of the escalation chain.
    pub escalate_to: Option<String>,
    /// Hours after the packet opened (unacknowledged) before the next role
    /// is told; the SLA when not set.
    pub after_hours: Option<u32>,
    /// When the reminder goes, in percent of the SLA.
    pub remind_at_percent: u8,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            reach: Vec::new(),
            escalate_to: None,
            after_hours: None,
            remind_at_percent: 75,
        }
    }
}

/// Roles by name.
pub type Roles = BTreeMap<String, Role>;

/// One notice to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The role told.
    pub role: String,
    /// The adapter instance that tells it.
    pub instance: String,
    /// When it goes (RFC 3339).
    pub send_at: String,
    /// Its idempotency key: a repeat of this notice carries the same one.
    pub key: String,
}

/// The roles a packet routed to `from` escalates to, in order, each once:
/// a chain that loops stops where it would come back to a role, and one
/// that names a role not configured ends there.
pub fn escalation_chain<'r>(roles: &'r Roles, from: &str) -> Vec<(&'r str, &'r Role)> {
    let mut chain: Vec<(&'r str, &'r Role)> = Vec::new();
    let mut at = roles.get(from);
    while let Some(next) = at.and_then(|r| r.escalate_to.as_deref()) {
        if next == from || chain.iter().any(|(name, _)| *name == next) {
            break;
        }
        let Some((name, role)) = roles.get_key_value(next) else {
            break;
        };
        chain.push((name, role));
        at = Some(role);
    }
    chain
}

/// The key of one notice of one packet through one instance. The packet
/// is named by its event and policy as well as its store's ids: another
/// store (another deployment, a test) numbers its packets and runs from 1
/// too, and a target shared with it must not take this notice for one of
/// its own.
pub fn key(
    follow_up: i64,
    packet: &Packet,
    kind: NoticeKind,
    role: &str,
    instance: &str,
) -> String {
    let encoded = serde_json::to_string(&(
        "notice",
        &packet.event_id,
        &packet.policy_sha256,
        &packet.run_id,
        follow_up,
        kind.name(),
        role,
        instance,
    ))
    .expect("a tuple of strings encodes");
    format!("hn1-{}", hex::encode(Sha256::digest(encoded.as_bytes())))
}

/// Every notice a packet opened at `opened` schedules; its SLA is the time
/// from then to its due time.
pub fn schedule(
    follow_up: i64,
    packet: &Packet,
    roles: &Roles,
    opened: jiff::Timestamp,
) -> Vec<Notice> {
    let sla = packet
        .due_at
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|due| Duration::try_from(due.duration_since(opened)).ok())
        .unwrap_or(Duration::ZERO);
    let at = |after: Duration| {
        let span = jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::MAX);
        crate::model::time::rfc3339(opened.checked_add(span).unwrap_or(jiff::Timestamp::MAX))
    };
    let mut out = Vec::new();
    let mut tell = |kind: NoticeKind, role_name: &str, role: &Role, when: Duration| {
        for instance in &role.reach {
            out.push(Notice {
                kind,
                role: role_name.to_string(),
                instance: instance.clone(),
                send_at: at(when),
                key: key(follow_up, packet, kind, role_name, instance),
            });
        }
    };
    let Some(role) = roles.get(&packet.route_to) else {
        return Vec::new();
    };
    tell(NoticeKind::Opened, &packet.route_to, role, Duration::ZERO);
    let remind = sla.mul_f64(f64::from(role.remind_at_percent.min(100)) / 100.0);
    if !sla.is_zero() && remind < sla {
        tell(NoticeKind::Reminder, &packet.route_to, role, remind);
    }
    tell(NoticeKind::Overdue, &packet.route_to, role, sla);
    // Along the escalation chain, each role told its own `after-hours`
    // after the one before it was.
    let mut when = Duration::ZERO;
    let mut from = role;
    for (next, next_role) in escalation_chain(roles, &packet.route_to) {
        when += from
            .after_hours
            .map_or(sla, |h| Duration::from_secs(u64::from(h) * 3600));
        tell(NoticeKind::Escalated, next, next_role, when);
        from = next_role;
    }
    out
}

/// What a notice says: the packet's identifiers, reason, summary, due time
/// and a link to it; never the source's narrative fields.
pub fn message(
    follow_up: i64,
    packet: &Packet,
    kind: NoticeKind,
    role: &str,
    link: Option<&str>,
) -> (String, String) {
    let what = match kind {
        NoticeKind::Opened => "needs a person",
        NoticeKind::Reminder => "reminder: not yet taken on",
        NoticeKind::Overdue => "overdue: not yet taken on",
        NoticeKind::Escalated => "escalated: not taken on in time",
    };
    let subject = format!(
        "handoff follow-up {follow_up} [{}] {what} ({role}, due {})",
        packet.reason.name(),
        packet.due_at
    );
    let mut body = format!(
        "follow-up: {follow_up}\nreason: {}\nsummary: {}\nrun: {} (event {})\npolicy: {}\n\
         route to: {}\ndue: {}\nnext: {}\n",
        packet.reason.name(),
        packet.summary,
        packet.run_id,
        packet.event_id,
        packet.policy,
        packet.route_to,
        packet.due_at,
        packet
            .next_actions
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    if let Some(link) = link {
        body.push_str(&format!("open: {link}\n"));
    }
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Reason, Resolution};

    fn packet(route_to: &str) -> Packet {
        Packet {
            reason: Reason::StaleApproval,
            summary: "the decision RV-1 no longer authorizes this work".into(),
            run_id: "run-7".into(),
            event_id: "e-7".into(),
            policy: "release v1".into(),
            policy_sha256: "p".into(),
            done: vec![],
            skipped: vec![],
            pending: vec![],
            run_outcome: None,
            source_snapshot: None,
            mismatch: None,
            records: vec![],
            links: vec![],
            next_actions: vec![Resolution::Resume, Resolution::Abandon],
            route_to: route_to.into(),
            due_at: "2026-12-06T08:00:00.000Z".into(),
        }
    }

    fn roles() -> Roles {
        [
            (
                "coordinator".to_string(),
                Role {
                    reach: vec!["mail".into(), "chat".into()],
                    escalate_to: Some("manager".into()),
                    after_hours: Some(4),
                    remind_at_percent: 75,
                },
            ),
            (
                "manager".to_string(),
                Role {
                    reach: vec!["mail".into()],
                    escalate_to: Some("coordinator".into()),
                    after_hours: None,
                    remind_at_percent: 50,
                },
            ),
        ]
        .into()
    }

    #[test]
    fn a_packet_schedules_its_notices_along_its_chain_each_once() {
        let opened: jiff::Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let notices = schedule(3, &packet("coordinator"), &roles(), opened);
        let shown: Vec<String> = notices
            .iter()
            .map(|n| format!("{} {} {} {}", n.kind, n.role, n.instance, n.send_at))
            .collect();
        assert_eq!(
            shown,
            [
                "opened coordinator mail 2026-12-06T00:00:00.000Z",
                "opened coordinator chat 2026-12-06T00:00:00.000Z",
                "reminder coordinator mail 2026-12-06T06:00:00.000Z",
                "reminder coordinator chat 2026-12-06T06:00:00.000Z",
                "overdue coordinator mail 2026-12-06T08:00:00.000Z",
                "overdue coordinator chat 2026-12-06T08:00:00.000Z",
                // The chain loops back to the coordinator: told once.
                "escalated manager mail 2026-12-06T04:00:00.000Z",
            ]
        );
        let keys: std::collections::BTreeSet<_> = notices.iter().map(|n| &n.key).collect();
        assert_eq!(keys.len(), notices.len(), "every notice its own key");
        let again = schedule(3, &packet("coordinator"), &roles(), opened);
        assert_eq!(again, notices, "the same packet, the same notices and keys");
        assert!(schedule(3, &packet("nobody"), &roles(), opened).is_empty());
    }

    #[test]
    fn a_message_carries_identifiers_and_a_link_not_narrative() {
        let (subject, body) = message(
            3,
            &packet("coordinator"),
            NoticeKind::Reminder,
            "coordinator",
            Some("https://handoff.example/ui/follow-ups/3"),
        );
        assert_eq!(
            subject,
            "handoff follow-up 3 [stale-approval] reminder: not yet taken on (coordinator, due 2026-12-06T08:00:00.000Z)"
        );
        assert!(body.contains("run: run-7 (event e-7)\n"), "{body}");
        assert!(
            body.contains("open: https://handoff.example/ui/follow-ups/3\n"),
            "{body}"
        );
    }
}
