//! Mail at most once: the `smtp` adapter against the real plain receiver,
//! through a relay that breaks one exchange (`HandoverRelay`). A mail that
//! may have arrived is not sent again until a person was asked; one that
//! certainly did not is simply tried again. What arrived is read from the
//! receiver's Maildir.

use super::mail::{instance, publish, received_in, smtp_package, unique_key};
use crate::support::servers::{Break, HandoverRelay, env_var};
use crate::support::*;
use handoff::sandbox::{AdapterError, LoadedAdapter};
use tempfile::TempDir;

/// The smtp adapter granted the relay in front of the plain receiver, with
/// a sent log of its own (kept in the returned directories).
fn through(relay: &HandoverRelay) -> (LoadedAdapter, TempDir, TempDir) {
    let dir = smtp_package(relay.addr(), "");
    let sent = tempfile::tempdir().unwrap();
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &instance(dir.path(), relay.addr(), sent.path(), None),
    );
    (loaded, dir, sent)
}

fn arrived(key: &str) -> usize {
    received_in("HANDOFF_TEST_MAILDIR", key)
}

#[test]
fn a_mail_the_server_took_without_answering_is_sent_again_only_after_a_person_was_asked() {
    let relay = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::AfterHandover);
    let (loaded, _dir, sent) = through(&relay);
    let key = unique_key("unanswered");
    let err = publish(&loaded, &key).expect_err("the answer never came");
    let AdapterError::Conflict(m) = &err else {
        panic!("a person must look: {err:?}");
    };
    assert!(
        m.contains(&format!(
            "the mail \"Release R-1 closure done\" to release-coordinators@example.internal \
             (Message-ID <{key}@handoff>) (key {key}) may have been delivered already"
        )) && m.contains("the message was handed over"),
        "{m}"
    );
    assert_eq!(arrived(&key), 1, "the receiver has it");
    assert!(
        std::fs::read_to_string(sent.path().join("release-coordinators.sent"))
            .unwrap_or_default()
            .is_empty(),
        "not recorded as delivered: nobody knows"
    );
    // The try after the question is a person's resume: it sends, once.
    publish(&loaded, &key).unwrap();
    assert_eq!(arrived(&key), 2);
    publish(&loaded, &key).unwrap();
    assert_eq!(arrived(&key), 2, "recorded now: never a third");
}

#[test]
fn a_mail_cut_off_before_it_was_handed_over_is_simply_tried_again() {
    let relay = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::BeforeGreeting);
    let (loaded, _dir, _sent) = through(&relay);
    let key = unique_key("before-greeting");
    let err = publish(&loaded, &key).expect_err("the connection closed at once");
    assert!(matches!(err, AdapterError::Transient(_)), "{err:?}");
    assert_eq!(arrived(&key), 0);
    // No person needed: the next try sends it.
    publish(&loaded, &key).unwrap();
    assert_eq!(arrived(&key), 1);
}
