//! The adapter-call service (`pipeline::calls`): every capability decision
//! a call makes is stored, and a decision that cannot be stored fails the
//! call instead of being dropped.

use crate::support::*;
use handoff::config::Config;
use handoff::pipeline::calls::AdapterCalls;
use handoff::pipeline::{Host, RunError};
use handoff::store::Store;
use std::path::Path;
use std::sync::Arc;

/// The probe adapter declaring `grant`, approved in a store of its own and
/// configured as instance `name` with `more` (its bindings, then any
/// section), on a host for calling adapters; with the directories of the
/// package and the store, to keep for as long as the host is used.
fn probe_instance(
    name: &str,
    grant: &str,
    more: &str,
) -> ([tempfile::TempDir; 2], Store, Arc<Host>) {
    // The bounded calls write up to 64 MiB before they are stopped.
    let pkg = package("probe", &probe_manifest_timed(name, grant, 10_000));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("handoff.db");
    let mut store = Store::open(&db).unwrap();
    approve(&mut store, pkg.path());
    let config = Config::parse(
        &format!(
            "[store]\npath = \"{}\"\ncache-dir = \"{}/artifact-cache\"\n\
             [adapters.{name}]\npackage = \"{}\"\n{more}",
            db.display(),
            env!("CARGO_TARGET_TMPDIR"),
            pkg.path().display()
        ),
        Path::new("handoff.toml"),
    )
    .unwrap();
    let host = Arc::new(Host::for_adapters(&config).unwrap());
    ([pkg, dir], store, host)
}

#[test]
fn a_decision_that_cannot_be_stored_fails_the_call_and_is_never_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start());
    let grant = format!(
        "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\"]\n",
        server.origin()
    );
    let (_kept, store, host) = probe_instance("prober", &grant, "");
    let mut calls = AdapterCalls::new(host, &store);
    let hello = rec("http", &format!("GET {}", server.url("/hello")));
    let decided = |store: &Store| {
        store
            .audit_rows(None)
            .unwrap()
            .iter()
            .filter(|r| r.kind == "capability-decision")
            .count()
    };

    let answer = rt.block_on(calls.observe("prober", &hello)).unwrap();
    assert_eq!(field(&answer.unwrap(), "status"), "200");
    let before = decided(&store);
    assert!(before >= 1, "the allowed request was recorded");

    // The store now refuses every decision (a full disk, a broken file).
    store
        .conn()
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON capability_decisions
             BEGIN SELECT RAISE(ABORT, 'the store refuses'); END;",
        )
        .unwrap();
    let err = rt.block_on(calls.observe("prober", &hello)).unwrap_err();
    assert!(matches!(err, RunError::Store(_)), "{err}");
    assert!(err.to_string().contains("the store refuses"), "{err}");
    // The call itself happened: it is its record that failed, and failed
    // the call.
    assert_eq!(server.requests().len(), 2);
    assert_eq!(decided(&store), before);
}

/// A call stopped at a bound of the sandbox (more host resources held at
/// once than an instance may, more written into its directories than a
/// call may) is not tried again: the same call would do the same again. It
/// goes to a person as a capability denied, its denial audited once.
#[test]
fn a_call_stopped_at_a_sandbox_bound_is_not_retried_and_goes_to_a_person() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (op, arg, surface, says) in [
        (
            "hoard",
            "5000 /files/bundle.txt",
            "resources",
            "host resources",
        ),
        ("fill", "100 /files/big", "files", "wrote more than 64 MiB"),
    ] {
        let files = tempfile::tempdir().unwrap();
        std::fs::write(files.path().join("bundle.txt"), "evidence").unwrap();
        let grant = "[[capabilities.files]]\nname = \"files\"\nmode = \"read-write\"\n";
        let bound = format!(
            "directories = {{ files = \"{}\" }}\n[retry]\nattempts = 3\nbase-delay-ms = 0\n",
            files.path().display()
        );
        let (_kept, store, host) = probe_instance("bounded", grant, &bound);
        let mut calls = AdapterCalls::new(host, &store);
        let halt = rt
            .block_on(calls.observe("bounded", &rec(op, arg)))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            halt.reason,
            handoff::model::Reason::CapabilityDenied,
            "{op}: {halt:?}"
        );
        assert!(halt.summary.contains(says), "{op}: {}", halt.summary);
        let denials: Vec<_> = store
            .audit_rows(None)
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.kind == "capability-decision"
                    && r.payload.contains(&format!("\"{surface}\""))
                    && r.payload.contains("denied")
            })
            .collect();
        assert_eq!(denials.len(), 1, "{op}: {denials:?}");
    }
}
