//! Mail at most once: the `smtp` adapter against the real plain receiver,
//! through a relay that breaks one exchange (`HandoverRelay`). A mail that
//! may have arrived is not sent again until a person was asked; one that
//! certainly did not is simply tried again. What arrived is read from the
//! receiver's Maildir.

use super::mail::{probe_mailer, publish, publish_as, received_in, smtp, smtp_package, unique_key};
use crate::support::scenario::Scenario;
use crate::support::servers::{Break, HandoverRelay, env_var};
use crate::support::*;
use handoff::sandbox::AdapterError;
use tempfile::TempDir;

fn arrived(key: &str) -> usize {
    received_in("HANDOFF_TEST_MAILDIR", key)
}

#[test]
fn a_mail_the_server_took_without_answering_is_sent_again_only_when_a_person_resumes() {
    let relay = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::AfterHandover);
    let mailer = smtp(relay.addr(), "", None);
    let loaded = &mailer.loaded;
    let key = unique_key("unanswered");
    let err = publish(loaded, &key).expect_err("the answer never came");
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
        std::fs::read_to_string(mailer.sent.path().join("release-coordinators.sent"))
            .unwrap_or_default()
            .is_empty(),
        "not recorded as delivered: nobody knows"
    );
    // Tried again without a person (a retry, a resume after a crash):
    // asked again, nothing sent.
    let again = publish(loaded, &key).expect_err("nobody looked yet");
    assert!(matches!(again, AdapterError::Conflict(_)), "{again:?}");
    assert_eq!(arrived(&key), 1);
    // A person's resume sends it, once.
    publish_as(loaded, &key, true).unwrap();
    assert_eq!(arrived(&key), 2);
    publish(loaded, &key).unwrap();
    publish_as(loaded, &key, true).unwrap();
    assert_eq!(arrived(&key), 2, "recorded now: never a third");
}

#[test]
fn a_mail_cut_off_before_it_was_handed_over_is_simply_tried_again() {
    let relay = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::BeforeGreeting);
    let mailer = smtp(relay.addr(), "", None);
    let loaded = &mailer.loaded;
    let key = unique_key("before-greeting");
    let err = publish(loaded, &key).expect_err("the connection closed at once");
    assert!(matches!(err, AdapterError::Transient(_)), "{err:?}");
    assert_eq!(arrived(&key), 0);
    // No person needed: the next try sends it.
    publish(loaded, &key).unwrap();
    assert_eq!(arrived(&key), 1);
}

/// The filesystem example with `notify` served by the smtp adapter through
/// `relay` (its manifest granting the relay's address, approved), and the
/// package's directory, which must outlive the scenario.
fn scenario_through(relay: &HandoverRelay) -> (Scenario, TempDir) {
    let s = Scenario::new();
    let package = smtp_package(relay.addr(), "");
    s.notify_through(
        package.path(),
        &format!(
            "server = \"{}\", from = \"handoff@example.internal\", \
             to-release-coordinators = \"release-coordinators@example.internal\"",
            relay.addr()
        ),
    );
    (s, package)
}

/// The notify step's key, as the store holds it.
fn notify_key(s: &Scenario) -> String {
    s.store()
        .conn()
        .unwrap()
        .query_row(
            "SELECT idem_key FROM steps WHERE step_id = 'notify-coordinator'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The real binary killed at both sides of the handover, against the real
/// receiver. Killed with the envelope taken and nothing handed over, the
/// run resumes and sends the mail once, asking nobody. Killed once the
/// receiver has the mail, the resumed run sends nothing and asks a person;
/// their resume sends it once more. (One test: both runs share a key, so
/// their counts in the one Maildir must not interleave.)
#[test]
fn the_binary_killed_before_the_handover_sends_once_and_after_it_asks_a_person() {
    let before = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::KillBeforeData);
    let (s, _package) = scenario_through(&before);
    s.run_killed(|pid| before.sender_is(pid));
    let key = notify_key(&s);
    let base = arrived(&key);
    let (code, report) = s.resume_json();
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );
    assert_eq!(arrived(&key), base + 1, "sent once, nobody asked");

    let at = HandoverRelay::start(&env_var("HANDOFF_TEST_SMTP_ADDR"), Break::KillAtHandover);
    let (s, _package) = scenario_through(&at);
    s.run_killed(|pid| at.sender_is(pid));
    assert_eq!(notify_key(&s), key);
    assert_eq!(arrived(&key), base + 2, "the receiver has it");
    let (code, report) = s.resume_json();
    assert_eq!(code, 3, "a person is asked: {report}");
    assert_eq!(arrived(&key), base + 2, "not sent again");
    let summary = s.follow_up(1)["packet"]["summary"].clone();
    assert!(
        summary.as_str().unwrap().contains(&format!(
            "(Message-ID <{key}@handoff>) (key {key}) may have been delivered already (an \
             earlier try ended without learning whether it arrived)"
        )),
        "{summary}"
    );
    let done = s.resume_follow_up(1);
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(
        arrived(&key),
        base + 3,
        "sent once more, as the person chose"
    );
}

/// A prepared mail is sent by its one hand-over: dropped, it never
/// arrives; handed over again, the second is refused and nothing more is
/// sent.
#[test]
fn a_prepared_mail_is_sent_once_by_its_hand_over_and_never_when_dropped() {
    let server = env_var("HANDOFF_TEST_SMTP_ADDR");
    let (_dir, loaded) = probe_mailer(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut instance = rt.block_on(loaded.instantiate()).unwrap();
    let mut prepared = |how: &str, key: &str| {
        let arg = format!("{how} {server} probe@example.internal ops@example.internal {key}");
        rt.block_on(instance.observe(&rec("mail-prepared", &arg)))
            .unwrap()
            .unwrap()
    };
    let dropped = unique_key("prepared-dropped");
    prepared("dropped", &dropped);
    let twice = unique_key("prepared-twice");
    let answer = prepared("twice", &twice);
    assert_eq!(field(&answer, "first"), "Ok(())");
    let second = field(&answer, "second");
    assert!(
        second.contains("NotDelivered") && second.contains("handed over already"),
        "{second}"
    );
    let arrived = |key: &str| {
        crate::support::servers::mails_in("HANDOFF_TEST_MAILDIR", &format!("Subject: {key} ")).len()
    };
    assert_eq!(arrived(&twice), 1);
    // The dropped one was prepared before the one sent after it: had it
    // been sent, it would be there by now.
    assert_eq!(arrived(&dropped), 0);
}
