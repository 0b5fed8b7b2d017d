//! The audit chain in a real store file: tampering with a row's payload, its
//! order, or removing it is found by `handoff audit verify`, which names the
//! row.

use handoff::audit::{Entry, verify};
use handoff::store::Store;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Output};

fn seeded(path: &Path, rows: usize) {
    let mut store = Store::open(path).unwrap();
    for i in 1..=rows {
        store
            .audit(&Entry {
                run_id: Some(format!("run-{}", i % 2)),
                event_id: Some("evt-1".into()),
                kind: "step-applied".into(),
                payload: serde_json::json!({ "step": format!("s{i}"), "state": "closed" }),
                policy_sha256: Some("p".repeat(64)),
                adapter_sha256: Some("a".repeat(64)),
            })
            .unwrap();
    }
}

fn verify_cli(store: &Path) -> Output {
    audit_cli(store, &["verify"])
}

#[test]
fn an_untouched_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    seeded(&db, 6);
    let out = verify_cli(&db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified: 6 rows"));
}

#[test]
fn tampering_with_a_payload_is_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    seeded(&db, 6);
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE audit SET payload = '{\"state\":\"open\"}' WHERE seq = 4",
            [],
        )
        .unwrap();
    let out = verify_cli(&db);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken at row 4") && err.contains("altered"),
        "{err}"
    );
    let head = audit_cli(&db, &["head"]);
    assert_eq!(
        head.status.code(),
        Some(4),
        "a broken chain gives no anchor"
    );
    assert!(String::from_utf8_lossy(&head.stderr).contains("is not anchored"));
}

#[test]
fn deleting_or_reordering_rows_is_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    seeded(&db, 6);
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap();
    let err = verify(Store::open(&db).unwrap().audit_rows(None).unwrap()).unwrap_err();
    assert_eq!(err.seq, 3, "{err}");

    let db2 = dir.path().join("h2.db");
    seeded(&db2, 6);
    let conn = Connection::open(&db2).unwrap();
    conn.execute_batch(
        "UPDATE audit SET seq = 100 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 5;
         UPDATE audit SET seq = 5 WHERE seq = 100;",
    )
    .unwrap();
    let out = verify_cli(&db2);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at row 2"));
}

#[test]
fn export_writes_json_lines_optionally_for_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    seeded(&db, 5);
    let out = audit_cli(&db, &["export", "--run", "run-1"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["run_id"] == "run-1"));
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["prev_hash"].as_str().unwrap().len(), 64);
    // The payload is an object, and writing it again gives the text the
    // row's hash covers.
    let rows = Store::open(&db).unwrap().audit_rows(Some("run-1")).unwrap();
    for (line, row) in lines.iter().zip(&rows) {
        assert!(line["payload"].is_object(), "{line}");
        assert_eq!(line["payload"].to_string(), row.payload);
    }
    // A run with no rows is said not to be there, not exported as nothing.
    let out = audit_cli(&db, &["export", "--run", "run-9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run run-9"));
}

#[test]
fn capability_decisions_are_chained_into_the_audit_trail() {
    use handoff::sandbox::decision::{CapabilityDecision, SurfaceId, Verdict};
    let mut store = Store::in_memory().unwrap();
    let decision = CapabilityDecision {
        at: "t".into(),
        adapter: "tracker".into(),
        component_sha256: "c".repeat(64),
        surface: SurfaceId {
            name: "http",
            fix: "declare it",
        },
        target: "GET http://127.0.0.1:9/x".into(),
        verdict: Verdict::Denied,
        reason: "origin not granted".into(),
    };
    store
        .record_decisions(&[decision.clone(), decision])
        .unwrap();
    let rows = store.audit_rows(None).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].kind, "capability-decision");
    assert!(
        rows[0].payload.contains("\"verdict\":\"denied\""),
        "{}",
        rows[0].payload
    );
    assert_eq!(
        rows[0].adapter_sha256.as_deref(),
        Some("c".repeat(64).as_str())
    );
    assert_eq!(verify(rows).unwrap().rows, 2);
}

fn audit_cli(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["--store", store.to_str().unwrap(), "audit"])
        .args(args)
        .env_remove("HANDOFF_CONFIG")
        .output()
        .unwrap()
}

/// [`audit_cli`] with `input` on its standard input.
fn audit_cli_reading(store: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["--store", store.to_str().unwrap(), "audit"])
        .args(args)
        .env_remove("HANDOFF_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `audit head`: the newest row as SEQ:HASH.
fn head(store: &Path) -> String {
    let out = audit_cli(store, &["head"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Give every row from `from` on a hash that follows from the row before,
/// as someone who can write to the store could.
fn rehash_from(db: &Path, from: i64) {
    let store = Store::open(db).unwrap();
    let rows = store.audit_rows(None).unwrap();
    let conn = Connection::open(db).unwrap();
    let mut prev = rows[(from - 2) as usize].hash.clone();
    for mut row in rows.into_iter().skip((from - 1) as usize) {
        row.prev_hash = prev;
        let hash = row.recomputed_hash();
        conn.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![row.prev_hash, hash, row.seq],
        )
        .unwrap();
        prev = hash;
    }
}

#[test]
fn an_anchor_kept_outside_the_store_catches_a_chain_cut_short_or_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    let out = audit_cli(&empty, &["head"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));

    let db = dir.path().join("h.db");
    seeded(&db, 6);
    let anchor = head(&db);
    assert!(anchor.starts_with("6:"), "{anchor}");
    seeded(&db, 2);
    let anchors = dir.path().join("anchors.txt");
    std::fs::write(&anchors, format!("# taken after row 6\n\n{anchor}\n")).unwrap();
    let file = anchors.to_str().unwrap();
    let out = audit_cli(&db, &["verify", "--anchors", file]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verified: 8 rows, head 8:") && text.contains("holds the anchored row"),
        "{text}"
    );
    // The same anchors piped in, as from another machine's log.
    let out = audit_cli_reading(&db, &["verify", "--anchors", "-"], &format!("{anchor}\n"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds the anchored row"));
    let out = audit_cli_reading(&db, &["verify", "--anchors", "-"], "6:nothex\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("standard input:1:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The newest rows cut off: the chain alone still verifies.
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM audit WHERE seq >= 5", [])
        .unwrap();
    assert_eq!(verify_cli(&db).status.code(), Some(0));
    let out = audit_cli(&db, &["verify", "--anchor", &anchor]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken at row 6") && err.contains("cut off"),
        "{err}"
    );

    // A row altered and every later hash made to follow: the chain alone
    // still verifies.
    let db = dir.path().join("h2.db");
    seeded(&db, 6);
    let anchor = head(&db);
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE audit SET payload = '{\"state\":\"open\"}' WHERE seq = 3",
            [],
        )
        .unwrap();
    rehash_from(&db, 3);
    assert_eq!(verify_cli(&db).status.code(), Some(0));
    let out = audit_cli(&db, &["verify", "--anchor", &anchor, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["broken_at"], 6);
    assert!(report["reason"].as_str().unwrap().contains("rewritten"));

    let out = audit_cli(&db, &["verify", "--anchor", "6:cafe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
}
