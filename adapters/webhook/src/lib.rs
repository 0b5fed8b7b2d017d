//! Notifications through a chat webhook (Slack-compatible).
//!
//! A record is a channel (`kind = "channel"`); config `url-<id>` holds its
//! webhook URL. `publish` POSTs `{"text": ...}` (the policy's subject, body
//! and links, in Slack's `<url|title>` link form) with a `webhook-id` header
//! set to the idempotency key, and records the key in `/sent/<id>.sent` once
//! the receiver answered 2xx. `observe` reports the latest `observe-window`
//! (default 100) recorded keys as applied.
//!
//! At most once: the post goes out through `SentLog::deliver`, which marks
//! it under way first. A process killed after the receiver took the post
//! and before its key was recorded, or a receiver that took it and never
//! answered, leaves the mark; every later try then posts nothing and
//! answers `conflict` ("may have been delivered"), so a person looks, and
//! only their resume posts once more. A receiver's non-2xx answer is taken at its
//! word: not delivered (tried again on `429` and `5xx`). Every try carries
//! the same `webhook-id`. An operator whose receiver drops a repeated
//! `webhook-id` (Standard Webhooks asks receivers to) sets config
//! `receiver-dedupes = "true"`: such a post is then simply posted again.

use handoff_sdk::http::{self, Request};
use handoff_sdk::sent::{Delivery, SentLog};
use handoff_sdk::{
    Action, AdapterError, Message, Observed, RecordRef, Target, action_name, export,
};

struct Webhook;

fn channel(record: &RecordRef) -> Result<(SentLog, String), AdapterError> {
    if record.kind != "channel" {
        return Err(AdapterError::Unsupported(format!(
            "record kind {:?}: this adapter posts to `channel` records",
            record.kind
        )));
    }
    let key = format!("url-{}", record.id);
    let url = handoff_sdk::config(&key)
        .ok_or_else(|| AdapterError::Invalid(format!("config `{key}` is not set")))?;
    Ok((SentLog::new("/sent", &record.id)?, url))
}

fn observed(log: &SentLog) -> Result<Observed, AdapterError> {
    let window = handoff_sdk::observe_window()? as usize;
    Ok(Observed {
        exists: true,
        state: "open".into(),
        revision: None,
        fields: Vec::new(),
        links: Vec::new(),
        applied_keys: log.recent(window)?,
    })
}

/// Config `receiver-dedupes`: whether the receiver drops a post whose
/// `webhook-id` it has seen (`"true"`), so a post that may have arrived is
/// posted again rather than handed to a person; `"false"` (the default)
/// for one that does not, as Slack's incoming webhooks.
fn receiver_dedupes() -> Result<bool, AdapterError> {
    match handoff_sdk::config("receiver-dedupes").as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(AdapterError::Invalid(format!(
            "config `receiver-dedupes` is {other:?}: use \"true\" or \"false\""
        ))),
    }
}

/// Slack's `text` field: `&`, `<` and `>` escaped, links as `<url|title>`.
/// A link's URL is escaped too, its `|` and white space percent-encoded: a
/// URL from an event could otherwise end the link early and write what
/// follows as markup of its own (another link, an `@channel`).
fn text(message: &Message) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut text = escape(&message.subject);
    if !message.body.is_empty() {
        text.push('\n');
        text.push_str(&escape(&message.body));
    }
    for link in &message.links {
        let url = escape(&link.url)
            .replace('|', "%7C")
            .replace(' ', "%20")
            .replace('\n', "%0A");
        text.push_str(&format!("\n<{url}|{}>", escape(&link.title)));
    }
    text
}

impl Target for Webhook {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        let (log, _) = channel(&record)?;
        observed(&log)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let Action::Publish(message) = &action else {
            return Err(AdapterError::Unsupported(format!(
                "{} on a webhook channel",
                action_name(&action)
            )));
        };
        let (log, url) = channel(&record)?;
        let body = serde_json::json!({ "text": text(message) }).to_string();
        let request = Request::new("POST", &url)
            .header("webhook-id", &key)
            .json(body);
        let post = || match http::send_once(&request) {
            Ok(response) => match response.status {
                200..=299 => Delivery::Delivered,
                // The receiver's own answer that it did not take it: tried
                // again (rate limited, or its failure) or handed to a person.
                429 | 500..=599 => Delivery::NotDelivered(AdapterError::Transient(format!(
                    "POST {}: the receiver answered {}",
                    record.id, response.status
                ))),
                status => Delivery::NotDelivered(AdapterError::Conflict(format!(
                    "POST {}: the receiver refused it with {status}",
                    record.id
                ))),
            },
            Err(failed) if failed.maybe_received => {
                Delivery::Unsure(format!("POST {}: {}", record.id, failed.error.message()))
            }
            Err(failed) => Delivery::NotDelivered(failed.error),
        };
        if receiver_dedupes()? {
            log.deliver_repeatable(&key, post)?;
        } else {
            let about = format!("the post {:?} to channel {}", message.subject, record.id);
            log.deliver(&key, &about, post)?;
        }
        observed(&log)
    }
}

export!(Webhook: target);

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_sdk::Link;

    #[test]
    fn text_escapes_and_formats_links_the_slack_way() {
        let m = Message {
            subject: "Release R-1 <ready> & done".into(),
            body: String::new(),
            links: vec![Link {
                url: "https://e.example/x".into(),
                title: "Evidence".into(),
            }],
        };
        assert_eq!(
            text(&m),
            "Release R-1 &lt;ready&gt; &amp; done\n<https://e.example/x|Evidence>"
        );
    }

    #[test]
    fn a_url_cannot_end_its_link_early_and_add_markup() {
        let m = Message {
            subject: "Release R-1".into(),
            body: String::new(),
            links: vec![Link {
                url: "https://e.example/x|Approve now> <!channel> <https://evil.example|".into(),
                title: "Evidence".into(),
            }],
        };
        let text = text(&m);
        let link = text.lines().nth(1).unwrap();
        assert_eq!(
            link,
            "<https://e.example/x%7CApprove%20now&gt;%20&lt;!channel&gt;%20&lt;https://evil.example%7C|Evidence>"
        );
        assert_eq!(link.matches(['<', '>', '|']).count(), 3, "one link: {link}");
    }
}
