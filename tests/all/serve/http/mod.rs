//! The HTTP door: an event stored before the answer and driven once,
//! signatures, replays, CloudEvents modes and bodies cut short (slow
//! clients and a flood beyond the queue: [`crowds`]).

use crate::support::scenario::*;
use crate::support::service::*;
use handoff::serve::signature::{sign_github, standard_key};
use serde_json::{Value, json};

mod crowds;

#[test]
fn a_signed_event_is_stored_before_the_answer_then_driven_once_whatever_the_redeliveries() {
    let s = scenario(2, 100);
    let service = Service::start(&s, None);
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (status, answer) = service.post(&signed("msg-1", &body), &body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    // Durable before the answer: the event is in the store already.
    assert_eq!(events_stored(&s), 1);
    let run_id = answer["run_id"].as_str().unwrap().to_string();

    // The same delivery again, and the same decision under a new event id.
    let (status, again) = service.post(&signed("msg-1", &body), &body);
    assert_eq!(
        (status, &again["status"]),
        (200, &json!("duplicate")),
        "{again}"
    );
    assert_eq!(again["run_id"], run_id.as_str());
    let resent = std::fs::read(s.path("events/accepted-resent.json")).unwrap();
    let (status, resent) = service.post(&signed("msg-2", &resent), &resent);
    assert_eq!(
        (status, resent["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{resent}"
    );

    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.writes().len(), 6, "each step written once");
    assert_eq!(events_stored(&s), 1);

    let (code, metrics) = service.get("/metrics");
    assert_eq!(code, 200);
    assert_lines(
        &metrics,
        &[
            "handoff_events_accepted_total 1",
            "handoff_events_duplicate_total 2",
            "handoff_runs{outcome=\"completed\"} 1",
            "handoff_intake_seconds_count 3",
            "# TYPE handoff_adapter_log_lines_dropped_total counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
        ],
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("handoff_build_info{version=") && l.ends_with(" 1")),
        "{metrics}"
    );
    let rss: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss > 1e6, "a resident size of {rss} bytes");
    // The run's transitions were written in turns at the one writer.
    let held: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("handoff_store_write_held_seconds_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no writer time in {metrics}"));
    assert!(held > 0.0, "the writer was never held: {held}");
    // ...in groups: writes, the commits carrying them, the syncs.
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let (writes, commits, syncs) = (
        count("handoff_store_writes_total"),
        count("handoff_store_commits_total"),
        count("handoff_store_syncs_total"),
    );
    assert!(
        writes >= commits && commits >= 1 && syncs >= 1,
        "{writes} writes, {commits} commits, {syncs} syncs"
    );
    // The write-ahead log the writes went to, and its size.
    let log = count("handoff_store_log_bytes");
    assert!(log > 0, "a log of {log} bytes after {writes} writes");
    assert_eq!(service.get("/healthz").0, 200);
    assert_eq!(service.get("/readyz").0, 200);
}

#[test]
fn missing_wrong_expired_and_unknown_signatures_are_refused_counted_and_not_stored() {
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = decision("evt-sig", "RV-300");
    let key = standard_key(SECRET).unwrap();
    let other = standard_key("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let unsigned = vec![("content-type", "application/cloudevents+json".to_string())];
    // (what, headers, expected status, expected reason)
    let cases: Vec<(&str, Headers, u16, &str)> = vec![
        ("unsigned", unsigned, 401, "signature-missing"),
        (
            "wrong key",
            signed_at(&other, "m", now(), &body),
            401,
            "signature-mismatch",
        ),
        (
            "expired",
            signed_at(&key, "m", now() - 600, &body),
            401,
            "signature-expired",
        ),
        (
            "from the future",
            signed_at(&key, "m", now() + 600, &body),
            401,
            "signature-expired",
        ),
    ];
    for (name, headers, status, reason) in cases {
        let (code, answer) = service.post(&headers, &body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (status, Some(reason)),
            "{name}: {answer}"
        );
        assert!(
            answer["error"].as_str().unwrap().starts_with("signature"),
            "{answer}"
        );
    }
    // Signed for one body, sent with another.
    let tampered = decision("evt-sig", "RV-301");
    let (code, answer) = service.post(&signed("m", &body), &tampered);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (401, Some("signature-mismatch"))
    );

    let stranger = json!({"specversion": "1.0", "id": "x", "source": "elsewhere", "type": "t"})
        .to_string()
        .into_bytes();
    let (code, answer) = service.post(&signed("m", &stranger), &stranger);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (403, Some("unknown-source")),
        "{answer}"
    );
    // A long one is named by its start only, in the answer as in the log.
    let far = json!({"specversion": "1.0", "id": "x", "source": "s".repeat(6000), "type": "t"})
        .to_string()
        .into_bytes();
    let (code, answer) = service.post(&signed("m", &far), &far);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (403, Some("unknown-source"))
    );
    let error = answer["error"].as_str().unwrap();
    assert!(error.len() < 400 && error.contains("6000 bytes"), "{error}");

    let huge = vec![b' '; 9000];
    let (code, answer) = service.post(&signed("m", &huge), &huge);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (413, Some("too-large")),
        "{answer}"
    );

    assert_eq!(events_stored(&s), 0, "nothing refused is stored");
    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &[
            "handoff_requests_refused_total{reason=\"signature-missing\"} 1",
            "handoff_requests_refused_total{reason=\"signature-mismatch\"} 2",
            "handoff_requests_refused_total{reason=\"signature-expired\"} 2",
            "handoff_requests_refused_total{reason=\"unknown-source\"} 2",
            "handoff_requests_refused_total{reason=\"too-large\"} 1",
        ],
    );

    // Signed, but an identifying attribute holds a line break (which a
    // CloudEvents string may not) or is longer than any id needs.
    for (field, value) in [
        ("subject", "RV-302\nlevel=INFO msg=forged".to_string()),
        ("id", "x".repeat(1025)),
    ] {
        let mut odd: Value = serde_json::from_slice(&decision("evt-odd", "RV-302")).unwrap();
        odd[field] = json!(value);
        let odd = odd.to_string().into_bytes();
        let (code, answer) = service.post(&signed("m-odd", &odd), &odd);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (400, Some("bad-event")),
            "{answer}"
        );
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(&format!("attribute \"{field}\"")), "{error}");
    }
    // Signed, but naming a member twice: a relay reading the first `state`
    // and handoff the last would not agree on what was decided.
    let text = String::from_utf8(decision("evt-twice", "RV-302")).unwrap();
    let twice = text
        .replacen("\"data\":{", "\"data\":{\"state\":\"rejected\",", 1)
        .into_bytes();
    assert_eq!(
        String::from_utf8_lossy(&twice).matches("\"state\"").count(),
        2
    );
    let (code, answer) = service.post(&signed("m-twice", &twice), &twice);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (400, Some("bad-event")),
        "{answer}"
    );
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("\"state\" is given twice"), "{error}");
    // JSON, but no object: said as such, not as an event missing a source.
    for (body, says) in [
        (&b"[]"[..], "JSON an array, not an object"),
        (&b"null"[..], "JSON null, not an object"),
        (&br#"{"source": 7}"#[..], "source is not a string"),
    ] {
        let (code, answer) = service.post(&signed("m-shape", body), body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (400, Some("bad-event")),
            "{answer}"
        );
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
    }
    assert_eq!(events_stored(&s), 0, "nothing refused is stored");

    // The same request, correctly signed, is taken.
    let (code, answer) = service.post(&signed("m", &body), &body);
    assert_eq!(code, 202, "{answer}");
}

#[test]
fn a_replayed_request_inside_the_window_is_a_duplicate_not_a_second_run() {
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let headers = signed("msg-replayed", &body);
    let (first, answer) = service.post(&headers, &body);
    assert_eq!(first, 202, "{answer}");
    let (replay, again) = service.post(&headers, &body);
    assert_eq!((replay, &again["status"]), (200, &json!("duplicate")));
    assert_eq!(again["run_id"], answer["run_id"]);
    assert_eq!(
        outcome_of(&s, answer["run_id"].as_str().unwrap()),
        "completed"
    );
    assert_eq!(s.writes().len(), 6);
}

#[test]
fn binary_mode_is_refused_since_no_signature_covers_its_headers_and_github_signatures_are_accepted()
{
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    // Binary mode: attributes in headers, the data is the body. The
    // signature covers webhook-id and the body, not the ce-* headers: the
    // same capture under another ce-id would verify too.
    let data = json!({ "review_id": "RV-118", "review_version": "3",
                       "release_id": "R-2026.11", "state": "accepted" })
    .to_string()
    .into_bytes();
    for ce_id in ["bin-evt-1", "bin-evt-2"] {
        let mut headers = signed("bin-1", &data);
        headers[0] = ("content-type", "application/json".into());
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", ce_id),
            ("ce-source", SOURCE),
            ("ce-type", "release.review.decided"),
            ("ce-subject", "RV-118"),
        ] {
            headers.push((k, v.to_string()));
        }
        let (code, answer) = service.post(&headers, &data);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (400, Some("binary-mode")),
            "{answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("structured mode")
        );
    }
    assert_eq!(s.events().len() as i64, 0);

    let mut body: Value = serde_json::from_slice(&decision("gh-1", "RV-400")).unwrap();
    body["source"] = json!("github/releases");
    let body = body.to_string().into_bytes();
    let github = |secret: &str, delivery: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("x-github-delivery", delivery.to_string()),
            ("x-hub-signature-256", sign_github(secret.as_bytes(), &body)),
        ]
    };
    let (code, answer) = service.post(&github("not-the-secret-at-all", "d-1"), &body);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (401, Some("signature-mismatch"))
    );
    let (code, answer) = service.post(&github(GITHUB_SECRET, "d-1"), &body);
    assert_eq!(code, 202, "{answer}");
    // GitHub signs no timestamp: a capture can be sent again at any time,
    // under any delivery header. The event id is in the signed body, so it
    // is the same event: a duplicate.
    let (code, again) = service.post(&github(GITHUB_SECRET, "d-2"), &body);
    assert_eq!((code, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(again["run_id"], answer["run_id"]);
}

#[test]
fn a_body_cut_short_or_a_query_is_400_not_413_and_a_foreign_content_type_is_415() {
    use std::io::{Read, Write};
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = decision("cut-1", "RV-601");
    let headers = signed("cut-1", &body);
    let addr = service.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    // Either a 400 saying so, or the connection dropped: never a final 413.
    assert!(!answer.contains(" 413 "), "{answer}");
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("body-unreadable"), "{answer}");
    }
    // The door reads no query parameters: one given is refused, not
    // ignored as if it had been applied, and nothing is stored.
    let (code, answer) = service.post_to("/v1/events?source=other", &headers, &body);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (400, Some("bad-query")),
        "{answer}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("source=other"),
        "{answer}"
    );
    assert_eq!(events_stored(&s), 0);
    // The whole body, later, is taken (an empty query is no parameter).
    let (code, _) = service.post_to("/v1/events?", &headers, &body);
    assert_eq!(code, 202);

    let other = decision("cut-2", "RV-602");
    let mut headers = signed("cut-2", &other);
    headers[0] = ("content-type", "text/plain".into());
    let (code, answer) = service.post(&headers, &other);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (415, Some("unsupported-media-type")),
        "{answer}"
    );
    headers[0] = ("content-type", format!("text/{}", "x".repeat(4000)));
    let (code, answer) = service.post(&headers, &other);
    assert_eq!(code, 415, "{answer}");
    assert!(answer["error"].as_str().unwrap().len() < 400, "{answer}");
    headers[0] = (
        "content-type",
        "application/cloudevents+json; charset=utf-8".into(),
    );
    assert_eq!(service.post(&headers, &other).0, 202);
}

#[test]
fn a_body_declared_too_large_is_413_before_it_is_sent_and_one_that_stalls_is_408() {
    use std::io::{Read, Write};
    let s = Scenario::new();
    with_serve(
        &s,
        serve_config(1, 100, 0, SOURCE).replace(
            "shutdown-grace-seconds = 1",
            "shutdown-grace-seconds = 1\nbody-read-timeout-seconds = 1",
        ),
    );
    let service = Service::start(&s, None);
    let addr = service.url.trim_start_matches("http://").to_string();
    // Headers, then what the sender sends of its body without waiting.
    let ask = |declared: u64, expect: &str, sent: &[u8]| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {declared}\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(sent).unwrap();
        // The write side stays open: the answer cannot wait for its end.
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // A sender that waits for `100 Continue` and declares more than
    // max-body-bytes (8192) is refused before it sends a byte of it (were
    // it told to continue, it would be waited for until 408).
    let answer = ask(8193, "Expect: 100-continue\r\n", b"");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"too-large\""), "{answer}");
    assert!(answer.contains("8192 bytes"), "{answer}");
    // One within the limit is told to continue.
    let answer = ask(100, "Expect: 100-continue\r\n", b"");
    assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
    assert!(answer.contains("HTTP/1.1 408"), "{answer}");
    // A body sent without waiting is read up to the limit, then refused.
    let answer = ask(9000, "", &[b' '; 9000]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Declared within it, but the rest never comes: 408 once the body
    // has had its time (the answer is what the test waits for).
    let answer = ask(100, "", b"{");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body-timeout\""), "{answer}");
    assert_eq!(events_stored(&s), 0);
    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &[
            "handoff_requests_refused_total{reason=\"too-large\"} 2",
            "handoff_requests_refused_total{reason=\"body-timeout\"} 2",
        ],
    );
}
