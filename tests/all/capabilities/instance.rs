//! An instance as the contract promises it: its config and nothing of the
//! host's environment or secrets, a fresh store every time, actions passed
//! with their keys and only the approved ones, every check recorded.

use super::*;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::decision::Verdict;
use handoff::sandbox::{Action, AdapterError, Message};
use handoff::store::Store;

#[tokio::test]
async fn config_values_reach_the_adapter_and_the_environment_is_empty() {
    let declared = "[[config]]\nkey = \"project\"\nabout = \"the project\"\n";
    let dir = package("probe", &probe_manifest("probe-config", declared));
    let mut cfg = AdapterInstance::new("probe-config", dir.path());
    cfg.config.insert("project".into(), "release-42".into());
    let sandbox = sandbox();
    let adapter = approved(&sandbox, dir.path(), &cfg);
    let mut instance = adapter.instantiate().await.unwrap();
    let value = instance
        .observe(&rec("config", "project"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&value, "value"), "release-42");
    // PATH is set in this test process; the guest's environment is empty.
    assert!(std::env::var("PATH").is_ok());
    let env = instance.observe(&rec("env", "PATH")).await.unwrap();
    match env {
        Err(AdapterError::NotFound(m)) => assert!(m.contains("has 0 variables"), "{m}"),
        other => panic!("the guest read PATH: {other:?}"),
    }
}

#[test]
fn an_instance_gives_its_required_config_and_no_key_the_adapter_does_not_read() {
    let declared = "[[config]]\nkey = \"project\"\nrequired = true\nabout = \"the project\"\n\
                    [[config]]\nkey = \"url-*\"\nabout = \"a channel's URL\"\n";
    let dir = package("probe", &probe_manifest("probe-settings", declared));
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let load_with = |keys: &[&str]| {
        let mut cfg = AdapterInstance::new("settings", dir.path());
        for k in keys {
            cfg.config.insert(k.to_string(), "v".into());
        }
        load(&sandbox, &store, dir.path(), &cfg).map(|_| ())
    };
    assert!(load_with(&["project", "url-ops", "url-release"]).is_ok());
    let refused = load_with(&["url-ops"]).unwrap_err().to_string();
    assert_eq!(
        refused,
        "adapter instance settings: config key \"project\" is required by probe-settings \
         (the project); set it in its `config`"
    );
    let refused = load_with(&["project", "projet"]).unwrap_err().to_string();
    assert_eq!(
        refused,
        "adapter instance settings: config key \"projet\" is not read by probe-settings \
         (it reads project, url-*); correct or remove it in its `config`"
    );
}

#[tokio::test]
async fn every_instance_starts_fresh() {
    let dir = package("probe", &probe_manifest("probe-fresh", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-fresh", dir.path()),
    );
    let mut first = adapter.instantiate().await.unwrap();
    let count = |o: handoff::sandbox::Observed| field(&o, "count").to_string();
    assert_eq!(
        count(first.observe(&rec("count", "")).await.unwrap().unwrap()),
        "1"
    );
    assert_eq!(
        count(first.observe(&rec("count", "")).await.unwrap().unwrap()),
        "2"
    );
    let mut second = adapter.instantiate().await.unwrap();
    assert_eq!(
        count(second.observe(&rec("count", "")).await.unwrap().unwrap()),
        "1"
    );
}

#[tokio::test]
async fn apply_passes_the_action_and_key_and_returns_the_adapters_report() {
    let dir = package("probe", &probe_manifest("probe-apply", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-apply", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let after = instance
        .apply(
            &rec("issue", "17"),
            &Action::SetState("closed".into()),
            "key-1",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, "closed");
    assert_eq!(after.applied_keys, ["key-1"]);
}

#[tokio::test]
async fn decisions_are_recorded_in_the_store() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-record",
            &format!("[[capabilities.http]]\nurl = \"{}\"\n", server.origin()),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-record", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let _ = instance
        .observe(&rec("http", &format!("GET {}", server.url("/hello"))))
        .await;
    let _ = instance
        .observe(&rec("http", "GET http://127.0.0.1:9/x"))
        .await;
    let mut store = Store::in_memory().unwrap();
    store.record_decisions(&instance.take_decisions()).unwrap();
    let rows = store.decisions_for("probe-record").unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].2, Verdict::Allowed);
    assert_eq!(rows[1].2, Verdict::Denied);
    assert!(rows[1].1.contains("127.0.0.1:9"), "{rows:?}");
}

#[tokio::test]
async fn secrets_in_the_host_environment_are_invisible() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    // Whatever the host process has, the guest's environment is empty.
    for name in ["HOME", "PATH", "api_key", "HANDOFF_STORE"] {
        let result = f.instance.observe(&rec("env", name)).await.unwrap();
        assert!(
            matches!(result, Err(AdapterError::NotFound(_))),
            "{name}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_action_outside_the_approved_set_is_refused_without_calling_the_adapter() {
    let dir = package("probe", &probe_manifest("limited", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("limited", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let publish = Action::Publish(Message {
        subject: "s".into(),
        body: String::new(),
        links: vec![],
    });
    let result = instance
        .apply(&rec("queue", "q"), &publish, "k")
        .await
        .unwrap();
    assert!(
        matches!(result, Err(AdapterError::Denied(ref m)) if m.contains("publish")),
        "{result:?}"
    );
    assert_eq!(denials(&mut instance, "action").len(), 1);
}
