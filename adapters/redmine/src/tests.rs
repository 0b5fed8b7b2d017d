//! Unit tests of the mapping, with scripted answers. The behaviour against a
//! real Redmine is tested in the host's integration tests.

use super::*;
use handoff_sdk::Link;
use handoff_sdk::http::Response;
use handoff_sdk::testing::Harness;

const ISSUE: &str = r#"{"issue":{"id":7,"project":{"id":1,"name":"Releases"},
  "tracker":{"id":2,"name":"Feature"},"status":{"id":2,"name":"In Progress"},
  "subject":"Release R-1","updated_on":"2026-11-22T10:00:00Z",
  "custom_fields":[{"id":1,"name":"Release ID","value":"R-1"},{"id":2,"name":"Tags","value":["a","b"]}],
  "journals":[{"id":1,"notes":"Archived evidence: https://e.example/R-1.tar\n\nhandoff-key: hk1-abc"},
              {"id":2,"notes":""},{"id":3,"notes":null}]}}"#;

const STATUSES: &str =
    r#"{"issue_statuses":[{"id":2,"name":"In Progress"},{"id":5,"name":"Closed"}]}"#;

fn ok(body: &str) -> Response {
    Response {
        status: 200,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn status(code: u16) -> Response {
    Response {
        status: code,
        headers: vec![],
        body: vec![],
    }
}

fn redmine() -> Harness {
    Harness::new()
        .config("base_url", "http://redmine.test/")
        .config("issue-kinds", "release,checklist")
        .config("version-kinds", "milestone")
}

fn rec(kind: &str, id: &str) -> RecordRef {
    RecordRef {
        system: "redmine".into(),
        kind: kind.into(),
        id: id.into(),
    }
}

#[test]
fn an_issue_is_seen_as_state_fields_links_and_applied_keys() {
    let h = redmine().on_http(|req| {
        assert_eq!(
            req.url,
            "http://redmine.test/issues/7.json?include=journals"
        );
        ok(ISSUE)
    });
    let seen = h.run(|| Redmine::observe(rec("release", "7"))).unwrap();
    assert_eq!(seen.state, "in-progress");
    assert_eq!(seen.revision.as_deref(), Some("2026-11-22T10:00:00Z"));
    assert_eq!(seen.field("release_id"), Some("R-1"));
    assert_eq!(seen.field("tags"), Some("a,b"));
    assert_eq!(seen.field("subject"), Some("Release R-1"));
    assert_eq!(seen.links, vec!["https://e.example/R-1.tar"]);
    assert_eq!(seen.applied_keys, vec!["hk1-abc"]);
}

#[test]
fn a_missing_issue_is_observed_as_not_existing() {
    let h = redmine().on_http(|_| status(404));
    let seen = h.run(|| Redmine::observe(rec("release", "9"))).unwrap();
    assert!(!seen.exists);
}

#[test]
fn a_write_whose_key_the_issue_already_carries_is_not_sent_again() {
    let h = redmine().on_http(|req| {
        assert_eq!(req.method, "GET", "no write expected");
        ok(ISSUE)
    });
    let link = Link {
        url: "https://e.example/R-1.tar".into(),
        title: "Evidence".into(),
    };
    h.run(|| {
        Redmine::apply(
            rec("release", "7"),
            Action::AttachLink(link),
            "hk1-abc".into(),
        )
    })
    .unwrap();
    assert_eq!(h.requests().len(), 2, "read, then observe");
}

#[test]
fn set_state_sends_the_status_id_and_a_note_with_the_key() {
    let h = redmine().on_http(|req| match (req.method.as_str(), req.url.as_str()) {
        ("GET", "http://redmine.test/issue_statuses.json") => ok(STATUSES),
        ("GET", _) => ok(ISSUE),
        ("PUT", "http://redmine.test/issues/7.json") => status(204),
        other => panic!("unexpected {other:?}"),
    });
    h.run(|| {
        Redmine::apply(
            rec("release", "7"),
            Action::SetState("closed".into()),
            "hk1-new".into(),
        )
    })
    .unwrap();
    let put = h
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    let body: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["issue"]["status_id"], 5);
    assert!(
        body["issue"]["notes"]
            .as_str()
            .unwrap()
            .ends_with("handoff-key: hk1-new")
    );
}

#[test]
fn a_notes_text_shows_as_written_and_only_its_url_is_a_link() {
    let h = redmine().on_http(|req| match (req.method.as_str(), req.url.as_str()) {
        ("GET", _) => ok(ISSUE),
        ("PUT", "http://redmine.test/issues/7.json") => status(204),
        other => panic!("unexpected {other:?}"),
    });
    let title = "\"Approve\":https://evil.example !p.png! [x](y) {{toc}} @admin R_1";
    h.run(|| {
        Redmine::apply(
            rec("release", "7"),
            Action::AttachLink(Link {
                url: "https://e.example/R-2.tar".into(),
                title: title.into(),
            }),
            "hk1-new".into(),
        )
    })
    .unwrap();
    let put = h
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
    let notes = body["issue"]["notes"].as_str().unwrap();
    let (shown, rest) = notes.split_once(": https://e.example/R-2.tar").unwrap();
    assert!(
        !shown.contains(['"', ':', '!', '[', '{', '@', '_']),
        "no markup left live: {shown}"
    );
    assert!(
        shown.starts_with("&#34;Approve&#34;&#58;https&#58;//evil.example"),
        "{shown}"
    );
    assert!(rest.ends_with("handoff-key: hk1-new"), "{rest}");

    // A URL that is not one word is refused before anything is sent.
    let h = redmine().on_http(|req| match req.method.as_str() {
        "GET" => ok(ISSUE),
        other => panic!("unexpected {other}"),
    });
    let err = h
        .run(|| {
            Redmine::apply(
                rec("release", "7"),
                Action::AttachLink(Link {
                    url: "https://e.example/x \"Approve\":https://evil.example".into(),
                    title: "Evidence".into(),
                }),
                "hk1-new".into(),
            )
        })
        .unwrap_err();
    assert_eq!(err.kind(), "invalid", "{}", err.message());
}

#[test]
fn an_unknown_status_is_refused_naming_the_ones_redmine_has() {
    let h = redmine().on_http(|req| {
        if req.url.ends_with("issue_statuses.json") {
            ok(STATUSES)
        } else {
            ok(ISSUE)
        }
    });
    let err = h
        .run(|| {
            Redmine::apply(
                rec("release", "7"),
                Action::SetState("shipped".into()),
                "k".into(),
            )
        })
        .unwrap_err();
    assert_eq!(err.kind(), "invalid");
    assert!(
        err.message().contains("in-progress, closed"),
        "{}",
        err.message()
    );
}

#[test]
fn kinds_and_ids_outside_the_configuration_are_refused() {
    let h = redmine().on_http(|_| panic!("no request expected"));
    let err = h.run(|| Redmine::observe(rec("wiki", "1"))).unwrap_err();
    assert_eq!(err.kind(), "unsupported");
    let err = h
        .run(|| Redmine::observe(rec("release", "R-1")))
        .unwrap_err();
    assert_eq!(err.kind(), "invalid");
}

#[test]
fn a_refused_change_is_a_conflict_carrying_redmines_reason() {
    let h = redmine().on_http(|req| match req.method.as_str() {
        "PUT" => Response {
            status: 422,
            headers: vec![],
            body: br#"{"errors":["Subject cannot be blank"]}"#.to_vec(),
        },
        _ => ok(ISSUE),
    });
    let err = h
        .run(|| {
            Redmine::apply(
                rec("release", "7"),
                Action::Annotate("x".into()),
                "k2".into(),
            )
        })
        .unwrap_err();
    assert_eq!(err.kind(), "conflict");
    assert!(err.message().contains("Subject cannot be blank"));
}

/// An issue of a listing: `id`, status name, `updated_on`.
fn listed(id: u64, status: &str, updated_on: &str) -> String {
    format!(
        r#"{{"id":{id},"project":{{"id":1,"name":"P"}},"tracker":{{"id":1,"name":"Bug"}},"status":{{"id":1,"name":"{status}"}},"updated_on":"{updated_on}"}}"#
    )
}

/// The ids of a page's changes, in order.
fn ids(page: &ChangePage) -> Vec<&str> {
    page.changes.iter().map(|c| c.record.id.as_str()).collect()
}

/// A listing as Redmine answers it at `date` (an HTTP date).
fn listing(date: &str, issues: &[String]) -> Response {
    Response {
        status: 200,
        headers: vec![("Date".into(), date.into())],
        body: format!(r#"{{"issues":[{}]}}"#, issues.join(",")).into_bytes(),
    }
}

#[test]
fn changes_are_listed_after_the_cursor_oldest_first() {
    let h = redmine().on_http(|req| {
        assert!(
            req.url.contains("updated_on=%3E%3D2026-11-22T10:00:00Z"),
            "{}",
            req.url
        );
        listing(
            "Sun, 22 Nov 2026 10:06:00 GMT",
            &[
                listed(3, "Accepted", "2026-11-22T10:00:00Z"),
                listed(8, "Accepted", "2026-11-22T10:00:00Z"),
                listed(4, "Reopened", "2026-11-22T10:05:00Z"),
            ],
        )
    });
    let page = h
        .run(|| Redmine::list_changes("2026-11-22T10:00:00Z/3".into(), 10))
        .unwrap();
    assert_eq!(ids(&page), ["8", "4"]);
    assert_eq!(page.changes[1].state, "reopened");
    assert_eq!(page.changes[0].record.kind, "release");
    assert_eq!(page.next_cursor, "2026-11-22T10:05:00Z/4");
}

#[test]
fn an_update_in_a_second_that_is_not_over_is_listed_again_with_those_that_join_it() {
    // At 10:05:01, issue 8's update at 10:05:00 is listed, but the cursor
    // stops before it: issue 3 may still be updated in that second.
    let first = redmine().on_http(|_| {
        listing(
            "Sun, 22 Nov 2026 10:05:01 GMT",
            &[
                listed(5, "Accepted", "2026-11-22T10:00:00Z"),
                listed(8, "In Progress", "2026-11-22T10:05:00Z"),
            ],
        )
    });
    let page = first
        .run(|| Redmine::list_changes(String::new(), 10))
        .unwrap();
    assert_eq!(ids(&page), ["5", "8"]);
    assert_eq!(page.next_cursor, "2026-11-22T10:00:00Z/5");

    // It was: issue 3 sorts before issue 8 in 10:05:00. A cursor at
    // (10:05:00, 8) would have passed over it for good.
    let cursor = page.next_cursor.clone();
    let second = redmine().on_http(|req| {
        assert!(
            req.url.contains("updated_on=%3E%3D2026-11-22T10:00:00Z"),
            "{}",
            req.url
        );
        listing(
            "Sun, 22 Nov 2026 10:05:30 GMT",
            &[
                listed(5, "Accepted", "2026-11-22T10:00:00Z"),
                listed(3, "Accepted", "2026-11-22T10:05:00Z"),
                listed(8, "In Progress", "2026-11-22T10:05:00Z"),
            ],
        )
    });
    let page = second.run(|| Redmine::list_changes(cursor, 10)).unwrap();
    assert_eq!(ids(&page), ["3", "8"]);
    assert_eq!(
        page.next_cursor, "2026-11-22T10:05:00Z/8",
        "that second is over now"
    );
}

#[test]
fn how_long_an_update_takes_to_settle_is_the_operators_to_set() {
    let answer = || {
        listing(
            "Sun, 22 Nov 2026 10:05:01 GMT",
            &[listed(8, "Accepted", "2026-11-22T10:05:00Z")],
        )
    };
    let page = redmine()
        .config("settle-seconds", "0")
        .on_http(move |_| answer())
        .run(|| Redmine::list_changes(String::new(), 10))
        .unwrap();
    assert_eq!(page.next_cursor, "2026-11-22T10:05:00Z/8");
    let err = redmine()
        .config("settle-seconds", "soon")
        .on_http(move |_| answer())
        .run(|| Redmine::list_changes(String::new(), 10))
        .unwrap_err();
    assert!(matches!(err, AdapterError::Invalid(_)), "{err:?}");
    assert!(
        err.message().contains("settle-seconds"),
        "{}",
        err.message()
    );
}

#[test]
fn the_listing_is_limited_to_a_project_named_by_its_identifier_only() {
    let answer = || listing("Sun, 22 Nov 2026 10:05:01 GMT", &[]);
    let asked = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = asked.clone();
    redmine()
        .config("project", "release-readiness_2")
        .on_http(move |req| {
            *seen.lock().unwrap() = req.url.clone();
            answer()
        })
        .run(|| Redmine::list_changes(String::new(), 10))
        .unwrap();
    assert!(
        asked
            .lock()
            .unwrap()
            .ends_with("&project_id=release-readiness_2"),
        "{}",
        asked.lock().unwrap()
    );
    for bad in ["rel&status_id=closed", "rel#x", "", "a b"] {
        let err = redmine()
            .config("project", bad)
            .on_http(move |_| answer())
            .run(|| Redmine::list_changes(String::new(), 10))
            .unwrap_err();
        assert!(
            matches!(&err, AdapterError::Invalid(m) if m.contains("config project")),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn without_a_date_in_the_answer_now_is_this_machines_clock() {
    // Redmine's own server (thin) sends no Date. An update stamped far in
    // the future (a server clock ahead of this one) is not over yet; one
    // far in the past is.
    let page = redmine()
        .on_http(|_| {
            ok(&format!(
                r#"{{"issues":[{},{}]}}"#,
                listed(8, "Accepted", "2001-01-01T00:00:00Z"),
                listed(3, "Accepted", "2999-01-01T00:00:00Z")
            ))
        })
        .run(|| Redmine::list_changes(String::new(), 10))
        .unwrap();
    assert_eq!(ids(&page), ["8", "3"]);
    assert_eq!(page.next_cursor, "2001-01-01T00:00:00Z/8");
}
