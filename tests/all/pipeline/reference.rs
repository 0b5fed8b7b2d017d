//! The filesystem reference adapters, as built packages in the real sandbox:
//! each sees only its own directory.

use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::{Action, AdapterError, Link, LoadedAdapter};
use sha2::{Digest, Sha256};
use std::path::Path;

fn loaded(name: &str, dir_name: &str, dir: &Path) -> LoadedAdapter {
    let mut cfg = AdapterInstance::new(name, &built(name));
    cfg.surfaces
        .files
        .directories
        .insert(dir_name.into(), dir.to_path_buf());
    approved(&sandbox(), &built(name), &cfg)
}

fn journal_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_archive_reports_a_bundles_sha256_as_the_host_computes_it() {
    let archive = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(archive.path().join("R-42")).unwrap();
    let content = b"rollback notes, sign-offs, review packet";
    std::fs::write(archive.path().join("R-42/evidence.tar"), content).unwrap();
    let adapter = loaded("fs-archive", "archive", archive.path());
    let mut instance = adapter.instantiate().await.unwrap();
    let seen = instance
        .observe(&rec("bundle", "R-42/evidence.tar"))
        .await
        .unwrap()
        .unwrap();
    assert!(seen.exists);
    let sha = seen.fields.iter().find(|(k, _)| k == "sha256").unwrap();
    assert_eq!(sha.1, hex::encode(Sha256::digest(content)));
    let missing = instance
        .observe(&rec("bundle", "R-42/other.tar"))
        .await
        .unwrap()
        .unwrap();
    assert!(!missing.exists);
    // It declares no actions: the host refuses any write without calling it.
    let link = Action::AttachLink(Link {
        url: "x".into(),
        title: "x".into(),
    });
    let refused = instance
        .apply(&rec("bundle", "R-42/evidence.tar"), &link, "k")
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(AdapterError::Denied(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_record_store_journals_each_real_write_once() {
    let records = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(records.path().join("checklist")).unwrap();
    std::fs::write(
        records.path().join("checklist/CL-7.json"),
        r#"{"state":"open","revision":1,"fields":{"release_id":"R-42"}}"#,
    )
    .unwrap();
    let adapter = loaded("fs-records", "records", records.path());
    let close = Action::SetState("closed".into());
    for _ in 0..3 {
        // A fresh instance each time, as separate runs would have.
        let mut instance = adapter.instantiate().await.unwrap();
        let after = instance
            .apply(&rec("checklist", "CL-7"), &close, "key-close-CL-7")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.state, "closed");
    }
    assert_eq!(journal_lines(records.path()), 1);
    let on_disk = std::fs::read_to_string(records.path().join("checklist/CL-7.json")).unwrap();
    assert!(on_disk.contains("\"closed\""), "{on_disk}");

    let mut instance = adapter.instantiate().await.unwrap();
    let decision = instance
        .read_decision(&rec("checklist", "CL-7"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.state, "closed");
    assert_eq!(decision.revision.as_deref(), Some("2"));
    let outside = instance.observe(&rec("checklist", "..")).await.unwrap();
    assert!(
        matches!(outside, Err(AdapterError::Invalid(_))),
        "{outside:?}"
    );
}

#[tokio::test]
async fn a_record_rewritten_shorter_is_replaced_whole() {
    let records = tempfile::tempdir().unwrap();
    let dir = records.path().join("review-queue");
    std::fs::create_dir_all(&dir).unwrap();
    // One record within a page (changed in place), one past it (a new file
    // renamed over the old one).
    for (id, packet) in [("RV-1", 300), ("RV-2", 6000)] {
        std::fs::write(
            dir.join(format!("{id}.json")),
            serde_json::json!({"state": "waiting", "revision": 1,
                               "fields": {"packet": "x".repeat(packet)}})
            .to_string(),
        )
        .unwrap();
    }
    let big_before = std::fs::read(dir.join("RV-2.json")).unwrap();
    // Opened before the write: the renamed-over record stays whole for it.
    let mut held = std::fs::File::open(dir.join("RV-2.json")).unwrap();
    let adapter = loaded("fs-records", "records", records.path());
    for id in ["RV-1", "RV-2"] {
        let mut instance = adapter.instantiate().await.unwrap();
        let after = instance
            .apply(&rec("review-queue", id), &Action::ClearEntry, "k-clear")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.state, "cleared");
        // The file holds exactly the new record: nothing of the longer old
        // one (nor any padding) is left after it.
        let on_disk = std::fs::read(dir.join(format!("{id}.json"))).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&on_disk)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&on_disk)));
        assert_eq!(parsed["state"], "cleared");
        assert!(on_disk.len() < 300, "{id}: {} bytes", on_disk.len());
        assert!(!on_disk.ends_with(b" "), "{id}: padding left");
        let seen = adapter
            .instantiate()
            .await
            .unwrap()
            .observe(&rec("review-queue", id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.state, "cleared");
    }
    let mut old = Vec::new();
    std::io::Read::read_to_end(&mut held, &mut old).unwrap();
    assert!(old == big_before, "{}", String::from_utf8_lossy(&old));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["RV-1.json", "RV-2.json"], "no partial file is left");
}

#[test]
fn instances_appending_to_one_journal_at_once_lose_no_line() {
    let records = tempfile::tempdir().unwrap();
    let per_thread = 150;
    std::fs::create_dir_all(records.path().join("checklist")).unwrap();
    for t in 0..2 {
        for i in 0..per_thread {
            std::fs::write(
                records.path().join(format!("checklist/CL-{t}-{i}.json")),
                r#"{"state":"open","revision":1}"#,
            )
            .unwrap();
        }
    }
    let adapter = loaded("fs-records", "records", records.path());
    // Two instances on two threads, as two runs of `handoff serve` are:
    // every write appends its line to the same journal.
    std::thread::scope(|scope| {
        for t in 0..2 {
            let adapter = &adapter;
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut instance = adapter.instantiate().await.unwrap();
                    for i in 0..per_thread {
                        let id = format!("CL-{t}-{i}");
                        instance
                            .apply(
                                &rec("checklist", &id),
                                &Action::SetState("closed".into()),
                                &format!("key-{id}"),
                            )
                            .await
                            .unwrap()
                            .unwrap();
                    }
                });
            });
        }
    });
    let journal = std::fs::read_to_string(records.path().join("journal.jsonl")).unwrap();
    let keys: std::collections::BTreeSet<String> = journal
        .lines()
        .map(|l| {
            let line: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            line["key"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(keys.len(), 2 * per_thread, "every write has its line");
    assert_eq!(journal.lines().count(), 2 * per_thread);
}
