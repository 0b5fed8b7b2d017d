//! The record store natively, through the SDK's test harness: records, channels, the journal across simulated stops.

use super::*;
use handoff_sdk::testing::Harness;
use handoff_sdk::{Link, Message};

fn rec(kind: &str, id: &str) -> RecordRef {
    RecordRef {
        system: "records".into(),
        kind: kind.into(),
        id: id.into(),
    }
}

fn harness(name: &str) -> (Harness, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("fs-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("checklist")).unwrap();
    std::fs::write(
        dir.join("checklist/CL-7.json"),
        r#"{"state":"open","revision":1,"fields":{"release_id":"R-42"}}"#,
    )
    .unwrap();
    (Harness::new().dir("records", &dir), dir)
}

fn journal(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_repeated_key_is_one_write() {
    let (h, dir) = harness("repeat");
    let close = || {
        Records::apply(
            rec("checklist", "CL-7"),
            Action::SetState("closed".into()),
            "k1".into(),
        )
    };
    let first = h.run(close).unwrap();
    let second = h.run(close).unwrap();
    assert_eq!(first.state, "closed");
    assert_eq!(second.revision.as_deref(), Some("2"));
    assert_eq!(journal(&dir).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_action_changes_what_observe_reports() {
    let (h, dir) = harness("actions");
    let r = rec("checklist", "CL-7");
    h.run(|| {
        Records::apply(
            r.clone(),
            Action::AttachLink(Link {
                url: "https://e/1".into(),
                title: "evidence".into(),
            }),
            "a".into(),
        )
    })
    .unwrap();
    h.run(|| {
        Records::apply(
            r.clone(),
            Action::Annotate("closed by handoff".into()),
            "b".into(),
        )
    })
    .unwrap();
    let msg = Message {
        subject: "R-42 ready".into(),
        body: String::new(),
        links: vec![],
    };
    h.run(|| {
        Records::apply(
            rec("channel", "coord"),
            Action::Publish(msg.clone()),
            "c".into(),
        )
    })
    .unwrap();
    let after = h.run(|| Records::observe(r.clone())).unwrap();
    assert_eq!(after.links, ["https://e/1"]);
    assert_eq!(after.field("release_id"), Some("R-42"));
    assert_eq!(after.applied_keys, ["a", "b"]);
    let channel = h.run(|| Records::observe(rec("channel", "coord"))).unwrap();
    assert!(channel.exists && channel.applied_keys == ["c"]);
    assert_eq!(journal(&dir).len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_channel_log_shows_its_latest_keys_and_never_repeats_an_old_one() {
    let (h, dir) = harness("channel");
    let h = h.config("observe-window", "2");
    let coord = rec("channel", "coord");
    let publish = |key: &str| {
        let msg = Message {
            subject: format!("message {key}"),
            body: String::new(),
            links: vec![Link {
                url: format!("https://e/{key}"),
                title: String::new(),
            }],
        };
        h.run(|| Records::apply(coord.clone(), Action::Publish(msg), key.into()))
            .unwrap()
    };
    for key in ["k1", "k2", "k3", "k4", "k5"] {
        publish(key);
    }
    let seen = h.run(|| Records::observe(coord.clone())).unwrap();
    assert!(seen.exists);
    assert_eq!(seen.applied_keys, ["k4", "k5"]);
    // k1 is outside the window, yet a repeat still publishes nothing.
    publish("k1");
    let log = std::fs::read_to_string(dir.join("channel/coord.messages.jsonl")).unwrap();
    let keys: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
        .collect();
    assert_eq!(
        keys,
        [r#""k1""#, r#""k2""#, r#""k3""#, r#""k4""#, r#""k5""#]
    );
    assert!(log.contains("https://e/k3"), "{log}");
    assert_eq!(journal(&dir).len(), 5);
    assert!(!dir.join("channel/coord.json").exists(), "no record file");
    // A window that is no count is said, not read as the default.
    let h = h.config("observe-window", "two");
    let e = h.run(|| Records::observe(coord.clone()));
    assert!(
        matches!(&e, Err(AdapterError::Invalid(m)) if m.contains("observe-window")),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn offline_is_transient_and_frozen_kinds_ignore_state_changes() {
    let (h, dir) = harness("quirks");
    std::fs::write(dir.join("OFFLINE"), b"").unwrap();
    let e = h.run(|| Records::observe(rec("checklist", "CL-7")));
    assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
    std::fs::remove_file(dir.join("OFFLINE")).unwrap();
    let h = h.config("frozen-kinds", "milestone, checklist");
    let after = h
        .run(|| {
            Records::apply(
                rec("checklist", "CL-7"),
                Action::SetState("closed".into()),
                "k".into(),
            )
        })
        .unwrap();
    assert_eq!(after.state, "open");
    assert!(journal(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_records_and_bad_ids_are_typed_errors() {
    let (h, dir) = harness("errors");
    let e = h.run(|| {
        Records::apply(
            rec("checklist", "none"),
            Action::SetState("closed".into()),
            "k".into(),
        )
    });
    assert!(matches!(e, Err(AdapterError::NotFound(_))), "{e:?}");
    let e = h.run(|| Records::observe(rec("checklist", "../../etc")));
    assert!(matches!(e, Err(AdapterError::Invalid(_))), "{e:?}");
    let d = h
        .run(|| Records::read_decision(rec("checklist", "CL-7")))
        .unwrap();
    assert_eq!(
        (d.state.as_str(), d.revision.as_deref()),
        ("open", Some("1"))
    );
    assert!(journal(&dir).is_empty());
    // A decision whose file names a field twice could be read either way.
    std::fs::write(
        dir.join("checklist/RV-1.json"),
        r#"{"state":"accepted","fields":{"review_version":"3","review_version":"4"}}"#,
    )
    .unwrap();
    let e = h.run(|| Records::read_decision(rec("checklist", "RV-1")));
    let Err(AdapterError::Invalid(why)) = e else {
        panic!("{e:?}");
    };
    assert!(why.contains("\"review_version\" is named twice"), "{why}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Cut a file back to `len` bytes: what a kill leaves when it came
/// right after the write that made the file that long.
fn cut(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn publish_k(h: &Harness, key: &str) -> Observed {
    let msg = Message {
        subject: format!("message {key}"),
        body: String::new(),
        links: vec![],
    };
    h.run(|| Records::apply(rec("channel", "coord"), Action::Publish(msg), key.into()))
        .unwrap()
}

#[test]
fn a_stop_after_a_message_line_neither_publishes_it_again_nor_loses_its_journal_line() {
    let (h, dir) = harness("publish-stop");
    publish_k(&h, "k1");
    let messages = dir.join("channel/coord.messages.jsonl");
    let (journal_len, sent_len) = (
        std::fs::metadata(dir.join("journal.jsonl")).unwrap().len(),
        std::fs::metadata(dir.join("channel/coord.sent"))
            .unwrap()
            .len(),
    );
    publish_k(&h, "k2");
    // The kill came right after k2's line: its key not in the sent log
    // or its bucket, no journal line.
    cut(&dir.join("journal.jsonl"), journal_len);
    cut(&dir.join("channel/coord.sent"), sent_len);
    for bucket in std::fs::read_dir(dir.join("channel/coord.index")).unwrap() {
        let bucket = bucket.unwrap().path();
        let kept: Vec<String> = std::fs::read_to_string(&bucket)
            .unwrap()
            .lines()
            .filter(|l| *l != "k2")
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&bucket, kept.concat()).unwrap();
    }
    // The resumed run observes first: the message is there, by its key.
    let seen = h.run(|| Records::observe(rec("channel", "coord"))).unwrap();
    assert!(seen.applied_keys.contains(&"k2".to_string()), "{seen:?}");
    // A retry of the same publish writes nothing more.
    publish_k(&h, "k2");
    publish_k(&h, "k3");
    let lines = std::fs::read_to_string(&messages).unwrap();
    let keys: Vec<_> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].clone())
        .collect();
    assert_eq!(keys, ["k1", "k2", "k3"]);
    let journal: Vec<_> = journal(&dir)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].clone())
        .collect();
    assert_eq!(journal, ["k1", "k2", "k3"], "one journal line per message");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stop_after_a_record_write_gets_its_journal_line_once() {
    let (h, dir) = harness("record-stop");
    let close = |key: &str, state: &str| {
        let r = rec("checklist", "CL-7");
        h.run(|| Records::apply(r.clone(), Action::SetState(state.into()), key.into()))
            .unwrap()
    };
    close("k1", "review");
    let before = std::fs::metadata(dir.join("journal.jsonl")).unwrap().len();
    close("k2", "closed");
    // Killed after the record was replaced, before its journal line.
    cut(&dir.join("journal.jsonl"), before);
    assert_eq!(journal(&dir).len(), 1);
    // Observing settles it, once, however often.
    for _ in 0..3 {
        let seen = h
            .run(|| Records::observe(rec("checklist", "CL-7")))
            .unwrap();
        assert_eq!(seen.state, "closed");
    }
    assert_eq!(journal(&dir).len(), 2);
    // The same key again: settled already, nothing more.
    close("k2", "closed");
    close("k3", "archived");
    let revisions: Vec<_> = journal(&dir)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["revision"].clone())
        .collect();
    assert_eq!(revisions, [2, 3, 4], "one line per write, in order");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_channel_whose_newest_line_is_no_message_is_refused_not_read_whole() {
    let (h, dir) = harness("long-line");
    std::fs::create_dir_all(dir.join("channel")).unwrap();
    let log = dir.join("channel/coord.messages.jsonl");
    // A line of ours, then one far longer than any message line.
    std::fs::write(
        &log,
        format!(
            "{{\"subject\":\"s\",\"links\":[],\"key\":\"k1\"}}\n{}",
            "x".repeat(3 << 20)
        ),
    )
    .unwrap();
    let err = h
        .run(|| Records::observe(rec("channel", "coord")))
        .unwrap_err();
    let AdapterError::Invalid(message) = err else {
        panic!("{err:?}");
    };
    assert!(message.contains("newest line is over"), "{message}");
    // A long newest line within the bound is read back.
    let long = format!(
        "{{\"subject\":\"{}\",\"links\":[],\"key\":\"k2\"}}\n",
        "y".repeat(300_000)
    );
    std::fs::write(&log, long).unwrap();
    let seen = h.run(|| Records::observe(rec("channel", "coord"))).unwrap();
    assert!(seen.applied_keys.contains(&"k2".to_string()), "{seen:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
