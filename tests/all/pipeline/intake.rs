//! Intake on a real store file: one event delivered many times, at once,
//! over separate connections, is recorded once.

use handoff::audit::verify;
use handoff::model::{CloudEvent, DuplicateOf};
use handoff::store::Store;
use handoff::store::intake::{Delivery, Intake};
use std::sync::{Arc, Barrier};

fn event(id: &str) -> CloudEvent {
    let text = format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"governance","type":"release.review.decided","data":{{"review_id":"RV-9","review_version":"3"}}}}"#
    );
    CloudEvent::parse(text.as_bytes(), "test").unwrap()
}

#[test]
fn the_same_event_delivered_ten_times_at_once_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    Store::open(&db).unwrap();
    let barrier = Arc::new(Barrier::new(10));
    let outcomes: Vec<Intake> = (0..10)
        .map(|_| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = Store::open(&db).unwrap();
                barrier.wait();
                store.intake(&event("evt-1"), Some("RV-9@3")).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let new: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Intake::New { .. }))
        .collect();
    assert_eq!(new.len(), 1, "{outcomes:?}");
    let Intake::New { seq, .. } = *new[0] else {
        unreachable!()
    };
    assert!(outcomes.iter().all(|o| match o {
        Intake::New { seq: s, .. } | Intake::Duplicate { seq: s, .. } => *s == seq,
    }));

    let store = Store::open(&db).unwrap();
    let events = handoff::store::events::list(&store.conn().unwrap()).unwrap();
    assert_eq!(events.len(), 1);
    let rows = store.audit_rows(None).unwrap();
    assert_eq!(
        rows.iter().filter(|r| r.kind == "event-received").count(),
        1
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.kind == "duplicate-suppressed")
            .count(),
        9
    );
    assert_eq!(verify(rows).unwrap().rows, 10);
}

#[test]
fn a_re_sent_decision_under_a_new_event_id_is_a_duplicate_by_business_key() {
    let mut store = Store::in_memory().unwrap();
    let first = store.intake(&event("evt-1"), Some("RV-9@3")).unwrap();
    let Intake::New { seq, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        store.intake(&event("evt-2"), Some("RV-9@3")).unwrap(),
        Intake::Duplicate {
            seq,
            of: DuplicateOf::BusinessKey,
            run_id: None,
        }
    );
    assert_eq!(
        store.intake(&event("evt-1"), None).unwrap(),
        Intake::Duplicate {
            seq,
            of: DuplicateOf::EventId,
            run_id: None,
        }
    );
    // A new review version is a new decision.
    assert!(matches!(
        store.intake(&event("evt-3"), Some("RV-9@4")).unwrap(),
        Intake::New { .. }
    ));
}

fn delivery<'a>(event: &'a CloudEvent, key: &'a str) -> Delivery<'a> {
    Delivery {
        event,
        business_key: Some(key),
        run: None,
    }
}

#[test]
fn a_batch_recognises_duplicates_within_itself_and_chains_one_row_per_delivery() {
    let mut store = Store::in_memory().unwrap();
    let (a, b) = (event("evt-a"), event("evt-b"));
    let c = event("evt-c");
    let outcomes: Vec<Intake> = store
        .intake_batch(&[
            delivery(&a, "RV-9@3"),
            delivery(&a, "RV-9@3"),
            delivery(&b, "RV-9@3"),
            delivery(&c, "RV-9@4"),
        ])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let Intake::New { seq, .. } = outcomes[0] else {
        panic!("{outcomes:?}")
    };
    let dup = |of| Intake::Duplicate {
        seq,
        of,
        run_id: None,
    };
    assert_eq!(outcomes[1], dup(DuplicateOf::EventId));
    assert_eq!(outcomes[2], dup(DuplicateOf::BusinessKey));
    assert!(matches!(outcomes[3], Intake::New { seq: s, .. } if s != seq));
    let rows = store.audit_rows(None).unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "event-received",
            "duplicate-suppressed",
            "duplicate-suppressed",
            "event-received"
        ]
    );
    assert_eq!(verify(rows).unwrap().rows, 4);
}

#[test]
fn one_delivery_that_cannot_be_stored_costs_the_rest_of_its_batch_nothing() {
    let mut store = Store::in_memory().unwrap();
    store
        .conn()
        .unwrap()
        .execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = 'evt-bad'
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        )
        .unwrap();
    let (a, bad, c) = (event("evt-a"), event("evt-bad"), event("evt-c"));
    let outcomes = store.intake_batch(&[
        delivery(&a, "RV-1@1"),
        delivery(&bad, "RV-2@1"),
        delivery(&c, "RV-3@1"),
    ]);
    assert!(
        matches!(outcomes[0], Ok(Intake::New { .. })),
        "{outcomes:?}"
    );
    let err = outcomes[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("refused for the test"), "{err}");
    assert!(
        matches!(outcomes[2], Ok(Intake::New { .. })),
        "{outcomes:?}"
    );
    let stored: Vec<String> = handoff::store::events::list(&store.conn().unwrap())
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(stored, ["evt-a", "evt-c"]);
    assert_eq!(verify(store.audit_rows(None).unwrap()).unwrap().rows, 2);
}
