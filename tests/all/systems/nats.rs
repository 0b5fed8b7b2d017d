//! The NATS surface against the JetStream server that `scripts/test-servers
//! start` runs: what one call may write. Messages are read back with the
//! tests' own client.

use crate::support::servers::Nats;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::AdapterError;
use handoff::sandbox::surfaces::nats::MOST_WRITES_PER_CALL;

/// A grant says where an adapter may publish, not how often: one call
/// publishes (and deletes entries) at most 16 times; the publish past them
/// is denied before it is sent, and the next call may publish again.
#[test]
fn what_one_call_publishes_is_bounded_and_the_message_past_it_is_never_sent() {
    let nats = Nats::from_env();
    let grant = format!(
        "[[capabilities.nats]]\nserver = \"{}\"\nsubjects = [\"handoff.probe.>\"]\n",
        nats.server
    );
    let dir = package("probe", &probe_manifest("publisher", &grant));
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("publisher", dir.path()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let subject = |what: &str| format!("handoff.probe.{what}-{}", std::process::id());
    let mut instance = rt.block_on(loaded.instantiate()).unwrap();
    let mut publish = |count: u32, subject: &str| {
        rt.block_on(instance.observe(&rec(
            "nats-publish",
            &format!("{count} {} {subject}", nats.server),
        )))
        .unwrap()
    };
    let flood = subject("flood");
    let answer = publish(MOST_WRITES_PER_CALL + 4, &flood);
    assert!(
        matches!(&answer, Err(AdapterError::Denied(m)) if m.contains("more than 16 publishes")),
        "{answer:?}"
    );
    let sent: Vec<String> = nats
        .messages(&flood)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let expected: Vec<String> = (0..MOST_WRITES_PER_CALL)
        .map(|i| format!("{flood}-{i}"))
        .collect();
    assert_eq!(sent, expected);
    // The next call has the whole budget again.
    let again = subject("again");
    assert!(publish(1, &again).is_ok());
    assert_eq!(nats.messages(&again).len(), 1);
}
