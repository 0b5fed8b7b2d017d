//! Notifications by mail.
//!
//! A record is a channel (`kind = "channel"`, id = the role's channel, e.g.
//! `release-coordinators`); config `to-<id>` holds the role's address
//! (comma-separated for several). `publish` sends one plain-text mail from
//! config `from` through config `server` (`IP:port`), with
//! `Message-ID: <KEY@handoff>`, and records the key in `/sent/<id>.sent`;
//! `observe` reports the latest `observe-window` (default 100) recorded keys
//! as applied, so the host skips a mail already sent.
//!
//! At most once: through `SentLog::deliver_prepared`, the mail is prepared
//! (connected, the envelope taken, nothing sent), then marked under way and
//! handed over. A process killed after the handover began and
//! before the key was recorded, or a server that took the message and
//! never answered, leaves the mark; every later try then sends nothing
//! and answers `conflict` ("may have been delivered"), so a person looks,
//! and only their resume sends it once more. A stop before the handover leaves
//! no mark: the next try simply sends. Every try carries the same
//! `Message-ID`.

use handoff_sdk::mail::{self, DeliveryFailure, Email};
use handoff_sdk::sent::{Delivery, SentLog};
use handoff_sdk::{
    Action, AdapterError, Message, Observed, RecordRef, Target, action_name, export,
};

struct Smtp;

fn config(key: &str) -> Result<String, AdapterError> {
    handoff_sdk::config(key)
        .ok_or_else(|| AdapterError::Invalid(format!("config `{key}` is not set")))
}

fn channel(record: &RecordRef) -> Result<(SentLog, Vec<String>), AdapterError> {
    if record.kind != "channel" {
        return Err(AdapterError::Unsupported(format!(
            "record kind {:?}: this adapter sends to `channel` records",
            record.kind
        )));
    }
    let to = config(&format!("to-{}", record.id))?
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    Ok((SentLog::new("/sent", &record.id)?, to))
}

fn observed(log: &SentLog, to: &[String]) -> Result<Observed, AdapterError> {
    let window = handoff_sdk::observe_window()? as usize;
    Ok(Observed {
        exists: true,
        state: "open".into(),
        revision: None,
        fields: vec![("to".into(), to.join(","))],
        links: Vec::new(),
        applied_keys: log.recent(window)?,
    })
}

/// The body: the policy's subject and body, the links, the key. Nothing else
/// (the policy carries identifiers, states and links only).
fn body(message: &Message, key: &str) -> String {
    let mut text = format!("{}\n", message.subject);
    if !message.body.is_empty() {
        text.push_str(&format!("\n{}\n", message.body));
    }
    for link in &message.links {
        text.push_str(&format!("\n{}: {}", link.title, link.url));
    }
    text.push_str(&format!("\n\nhandoff-key: {key}\n"));
    text
}

impl Target for Smtp {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        let (log, to) = channel(&record)?;
        observed(&log, &to)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let Action::Publish(message) = &action else {
            return Err(AdapterError::Unsupported(format!(
                "{} on a mail channel",
                action_name(&action)
            )));
        };
        let (log, to) = channel(&record)?;
        let email = Email {
            sender: config("from")?,
            recipients: to.clone(),
            subject: message.subject.clone(),
            body: body(message, &key),
            message_id: format!("{key}@handoff"),
        };
        let about = format!(
            "the mail {:?} to {} (Message-ID <{}>)",
            email.subject,
            to.join(", "),
            email.message_id
        );
        let server = config("server")?;
        // Connected and the envelope taken before the mail is marked under
        // way: a stop before the handover leaves no question.
        log.deliver_prepared(
            &key,
            &about,
            || mail::prepare(&server, &email),
            |ready| match ready.hand_over() {
                Ok(()) => Delivery::Delivered,
                Err(DeliveryFailure::NotDelivered(e)) => Delivery::NotDelivered(e),
                Err(DeliveryFailure::Unsure(why)) => Delivery::Unsure(why),
            },
        )?;
        observed(&log, &to)
    }
}

export!(Smtp: target);
