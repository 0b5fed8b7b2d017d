//! The sent log and at-most-once delivery, run natively through the
//! harness.

use super::*;
use crate::testing::Harness;

#[test]
fn recent_reads_the_latest_keys_of_a_long_log_and_contains_sees_them_all() {
    let dir = std::env::temp_dir().join(format!("handoff-sdk-sent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = Harness::new().dir("sent", &dir);
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        assert!(log.recent(5).unwrap().is_empty(), "no log yet");
        for i in 0..2_000 {
            log.record(&format!("hk1-{i:064}")).unwrap();
        }
        let recent = log.recent(3).unwrap();
        let expected: Vec<String> = (1_997..2_000).map(|i| format!("hk1-{i:064}")).collect();
        assert_eq!(recent, expected);
        assert_eq!(log.recent(5_000).unwrap().len(), 2_000);
        assert!(log.contains(&format!("hk1-{:064}", 0)).unwrap());
        let long = "k".repeat(300);
        assert!(matches!(log.record(&long), Err(AdapterError::Invalid(_))));
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_from_before_the_index_is_indexed_once_then_answered_without_it() {
    let dir = std::env::temp_dir().join(format!("handoff-sdk-legacy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let old: Vec<String> = (0..40).map(|i| format!("hk1-old-{i}")).collect();
    std::fs::write(dir.join("coord.sent"), old.join("\n") + "\n").unwrap();
    let h = Harness::new().dir("sent", &dir);
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        assert!(
            log.contains("hk1-old-3").unwrap(),
            "a key logged before the index"
        );
        assert!(!log.contains("hk1-never").unwrap());
        log.record("hk1-new").unwrap();
        log.record("a key with spaces").unwrap();
    });
    let index = dir.join("coord.index");
    assert!(index.join(".complete").is_file());
    for key in old
        .iter()
        .map(String::as_str)
        .chain(["hk1-new", "a key with spaces"])
    {
        let bucket = std::fs::read_to_string(index.join(bucket_name(key))).unwrap();
        assert!(bucket.lines().any(|l| l == key), "{key} in its bucket");
    }
    let buckets = std::fs::read_dir(&index).unwrap().count() - 1;
    assert!(
        buckets > 1 && buckets <= 42,
        "{buckets} buckets for 42 keys"
    );
    // Once indexed, a key is answered from its bucket alone: with the
    // log gone, old and new keys are still known.
    std::fs::remove_file(dir.join("coord.sent")).unwrap();
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        assert!(log.contains("hk1-old-0").unwrap());
        assert!(log.contains("hk1-old-39").unwrap());
        assert!(log.contains("a key with spaces").unwrap());
        assert!(!log.contains("hk1-never").unwrap());
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Deliver `key` on `log`, counting the tries that reached `send`.
fn deliver_counting(
    log: &SentLog,
    key: &str,
    tries: &std::cell::Cell<u32>,
    outcome: impl FnOnce() -> Delivery,
) -> Result<(), AdapterError> {
    log.deliver(key, "the note", || {
        tries.set(tries.get() + 1);
        outcome()
    })
}

#[test]
fn a_key_is_delivered_at_most_once_unless_a_person_resumed_it() {
    let dir = std::env::temp_dir().join(format!("handoff-sdk-deliver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let h = Harness::new().dir("sent", &dir);
    let marks = dir.join("coord.sending");
    let tries = std::cell::Cell::new(0);
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        // Taken: recorded once, never tried again.
        deliver_counting(&log, "hk1-a", &tries, || Delivery::Delivered).unwrap();
        deliver_counting(&log, "hk1-a", &tries, || Delivery::Delivered).unwrap();
        assert_eq!(tries.get(), 1);
        assert_eq!(log.recent(10).unwrap(), ["hk1-a"]);

        // Certainly not taken: the error, and the next try goes out.
        let refused = AdapterError::Transient("connection refused".into());
        let e = deliver_counting(&log, "hk1-b", &tries, || Delivery::NotDelivered(refused));
        assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
        deliver_counting(&log, "hk1-b", &tries, || Delivery::Delivered).unwrap();
        assert_eq!(tries.get(), 3);

        // Handed over, no answer: a person is asked. Every try after it
        // asks again, sending nothing, until one in a step the person
        // resumed: that one sends, once.
        let e = deliver_counting(&log, "hk1-c", &tries, || {
            Delivery::Unsure("the connection broke".into())
        });
        let Err(AdapterError::Conflict(m)) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains(
                "the note (key hk1-c) may have been delivered already (the connection broke)"
            ),
            "{m}"
        );
        for _ in 0..2 {
            let e = deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered);
            assert!(matches!(e, Err(AdapterError::Conflict(_))), "{e:?}");
        }
        assert_eq!(tries.get(), 4, "nothing sent until a person resumed");
        h.person_resumed(true);
        deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered).unwrap();
        deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered).unwrap();
        assert_eq!(tries.get(), 5);
        h.person_resumed(false);

        // Killed while delivering: the next try does not deliver, it
        // asks; a person's resume delivers.
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deliver_counting(&log, "hk1-d", &tries, || panic!("killed mid-delivery"))
        }));
        assert!(killed.is_err());
        assert_eq!(tries.get(), 6);
        let e = deliver_counting(&log, "hk1-d", &tries, || Delivery::Delivered);
        let Err(AdapterError::Conflict(m)) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("an earlier try ended without learning whether it arrived"),
            "{m}"
        );
        assert_eq!(tries.get(), 6, "the try after a kill sends nothing");
        // Nor prepares anything (no connection for a delivery it will not
        // make).
        let prepared = std::cell::Cell::new(0);
        let e = log.deliver_prepared(
            "hk1-d",
            "the note",
            || {
                prepared.set(prepared.get() + 1);
                Ok(())
            },
            |()| Delivery::Delivered,
        );
        assert!(matches!(e, Err(AdapterError::Conflict(_))), "{e:?}");
        assert_eq!(prepared.get(), 0);
        // A failure while preparing leaves no mark: the next try delivers.
        let e = log.deliver_prepared(
            "hk1-p",
            "the note",
            || Err::<(), _>(AdapterError::Transient("no connection".into())),
            |()| Delivery::Delivered,
        );
        assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
        deliver_counting(&log, "hk1-p", &tries, || Delivery::Delivered).unwrap();
        assert_eq!(tries.get(), 7);
        h.person_resumed(true);
        deliver_counting(&log, "hk1-d", &tries, || Delivery::Delivered).unwrap();
        h.person_resumed(false);
        assert_eq!(tries.get(), 8);
        // A person's resume of a key never tried sends it as any try.
        h.person_resumed(true);
        deliver_counting(&log, "hk1-e0", &tries, || Delivery::Delivered).unwrap();
        h.person_resumed(false);
        assert_eq!(tries.get(), 9);
        assert_eq!(
            log.recent(10).unwrap(),
            ["hk1-a", "hk1-b", "hk1-c", "hk1-p", "hk1-d", "hk1-e0"]
        );
    });
    assert_eq!(
        std::fs::read_dir(&marks).unwrap().count(),
        0,
        "no mark outlives its delivery"
    );
    // A mark cut short by a kill while it was made reads as under way,
    // whether nothing or part of the key was written; one holding a
    // whole other key is refused, naming it.
    std::fs::write(marks.join(format!("{:016x}", fnv1a("hk1-e"))), b"").unwrap();
    std::fs::write(
        marks.join(format!("{:016x}", fnv1a("hk1-f"))),
        b"sending\nhk1-",
    )
    .unwrap();
    std::fs::write(
        marks.join(format!("{:016x}", fnv1a("hk1-g"))),
        b"sending\nhk1-x\n",
    )
    .unwrap();
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        for key in ["hk1-e", "hk1-f"] {
            let e = deliver_counting(&log, key, &tries, || Delivery::Delivered);
            let Err(AdapterError::Conflict(m)) = e else {
                panic!("{key}: {e:?}")
            };
            assert!(m.contains("may have been delivered already"), "{m}");
        }
        let e = deliver_counting(&log, "hk1-g", &tries, || Delivery::Delivered);
        let Err(AdapterError::Conflict(m)) = e else {
            panic!("{e:?}")
        };
        assert!(m.contains("belongs to another key (hk1-x)"), "{m}");
        assert_eq!(tries.get(), 9);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_target_that_drops_repeats_is_tried_again_when_unsure() {
    let dir = std::env::temp_dir().join(format!("handoff-sdk-repeat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let h = Harness::new().dir("sent", &dir);
    let tries = std::cell::Cell::new(0);
    let counting = |outcome: Delivery| {
        tries.set(tries.get() + 1);
        outcome
    };
    h.run(|| {
        let log = SentLog::new("/sent", "coord").unwrap();
        let e = log.deliver_repeatable("hk1-a", || counting(Delivery::Unsure("no answer".into())));
        assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
        log.deliver_repeatable("hk1-a", || counting(Delivery::Delivered))
            .unwrap();
        log.deliver_repeatable("hk1-a", || counting(Delivery::Delivered))
            .unwrap();
        assert_eq!(
            tries.get(),
            2,
            "tried again once unsure, never once recorded"
        );
        assert_eq!(log.recent(10).unwrap(), ["hk1-a"]);
    });
    assert!(!dir.join("coord.sending").exists(), "no marks");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bucket_of_a_key_never_changes() {
    // FNV-1a 64 of "" and of "a": the index on disk depends on these.
    assert_eq!(bucket_name(""), "25");
    assert_eq!(bucket_name("a"), "8c");
}
