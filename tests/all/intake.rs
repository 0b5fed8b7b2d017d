//! Intake on a real store file: one event delivered many times, at once,
//! over separate connections, is recorded once.

use handoff::audit::verify;
use handoff::pipeline::intake::{CloudEvent, DuplicateOf, Intake};
use handoff::store::Store;
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
    let events: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 1);
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
