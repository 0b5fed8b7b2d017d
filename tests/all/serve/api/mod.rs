//! The people's API on a running `handoff serve`: bearer tokens per role,
//! a role's reach limited to its own packets (and those escalated to it),
//! a reviewer who reads and cannot act, every action audited with its
//! role, refusals as JSON and counted, callers rate limited; and a packet
//! resolved with `resume` carried through to completion by the service.
//! Rate limits: `limits.rs`; the OpenAPI document: `openapi.rs`.

use crate::pipeline::another_decision;
use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::{Value, json};

mod limits;
mod openapi;

pub(super) const COORDINATOR: &str = "coordinator-token-0123456789abcdef";
pub(super) const MANAGER: &str = "manager-token-0123456789abcdef-xyz";
pub(super) const REVIEWER: &str = "reviewer-token-0123456789abcdef-xy";
pub(super) const OTHER: &str = "other-team-token-0123456789abcdef-x";

/// The example with a halted run (follow-up 1, routed to the release
/// coordinator) and four roles holding tokens, served.
pub(super) fn served() -> (Scenario, Service, String) {
    let s = scenario(1, 100);
    with_role_tokens(
        &s,
        &[
            (
                "release-coordinator",
                COORDINATOR,
                "escalate-to = \"release-manager\"\n",
            ),
            ("release-manager", MANAGER, ""),
            ("security-review", REVIEWER, "scope = \"reviewer\"\n"),
            ("other-team", OTHER, ""),
        ],
    );
    let event = another_decision(&s, "RV-400", "reopened");
    let o = s.handoff(&[
        "run",
        "--event",
        &event,
        "--context",
        "context.json",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let run_id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let service = Service::start(&s, None);
    (s, service, run_id)
}

/// A request with `token` (none: no Authorization header); status and JSON.
pub(super) fn call(
    service: &Service,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = ureq::request(method, &format!("{}{path}", service.url));
    if let Some(token) = token {
        request = request.set("authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Some(b) => request
            .set("content-type", "application/json")
            .send_string(b),
        None => request.call(),
    };
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("retry-after").map(str::to_string);
    let challenge = response.header("www-authenticate").map(str::to_string);
    let mut value: Value = response.into_json().unwrap_or(Value::Null);
    if let Some(r) = retry_after {
        value["retry-after"] = json!(r);
    }
    if let Some(c) = challenge {
        value["www-authenticate"] = json!(c);
    }
    (status, value)
}

/// `GET /v1/follow-ups` with these `Authorization` header values, as they
/// are (a client library keeps one of a name): status and body.
fn with_authorization(service: &Service, values: &[&str]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = service.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request =
        format!("GET /v1/follow-ups HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for v in values {
        request.push_str(&format!("Authorization: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let code = answer[9..12].parse().unwrap();
    (code, answer)
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn roles_read_and_act_on_their_own_packets_a_reviewer_only_reads_and_each_action_is_audited() {
    let (s, service, run_id) = served();

    // Nobody known: 401 with a reason, and a challenge.
    let (code, body) = call(&service, "GET", "/v1/follow-ups", None, None);
    assert_eq!(
        (code, body["reason"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    assert_eq!(body["www-authenticate"], "Bearer");
    let (code, body) = call(
        &service,
        "GET",
        "/v1/runs",
        Some("not-a-token-of-anyone-at-all"),
        None,
    );
    assert_eq!(
        (code, body["reason"].as_str()),
        (401, Some("unauthenticated"))
    );
    // The scheme's name in any case; but two credentials at once (a proxy
    // may add one) name no caller, whichever comes first.
    let (code, answer) = with_authorization(&service, &[&format!("bearer {COORDINATOR}")]);
    assert_eq!(code, 200, "{answer}");
    for both in [
        [OTHER, COORDINATOR],
        [COORDINATOR, "not-a-token-of-anyone-at-all"],
    ] {
        let lines = both.map(|t| format!("Bearer {t}"));
        let (code, answer) = with_authorization(&service, &[&lines[0], &lines[1]]);
        assert_eq!(code, 401, "{answer}");
        assert!(answer.contains("send one Authorization header"), "{answer}");
    }

    // The coordinator sees its packet; the manager too (it is on the
    // coordinator's escalation chain); another team neither sees nor acts.
    let (code, list) = call(&service, "GET", "/v1/follow-ups", Some(COORDINATOR), None);
    assert_eq!((code, ids(&list)), (200, vec![1]), "{list}");
    let (code, one) = call(&service, "GET", "/v1/follow-ups/1", Some(MANAGER), None);
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["packet"]["route_to"], "release-coordinator");
    let (_, list) = call(&service, "GET", "/v1/follow-ups", Some(OTHER), None);
    assert!(ids(&list).is_empty(), "{list}");
    for (method, path, body) in [
        ("GET", "/v1/follow-ups/1", None),
        ("GET", "/v1/follow-ups?role=release-coordinator", None),
        ("POST", "/v1/follow-ups/1/ack", Some("")),
    ] {
        let (code, refused) = call(&service, method, path, Some(OTHER), body);
        assert_eq!(
            (code, refused["reason"].as_str()),
            (403, Some("forbidden")),
            "{path}: {refused}"
        );
    }

    // The reviewer reads everything and changes nothing.
    let (code, list) = call(
        &service,
        "GET",
        "/v1/follow-ups?status=all",
        Some(REVIEWER),
        None,
    );
    assert_eq!((code, ids(&list)), (200, vec![1]));
    let (code, runs) = call(&service, "GET", "/v1/runs", Some(REVIEWER), None);
    assert_eq!(
        (code, runs[0]["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{runs}"
    );
    let (code, refused) = call(
        &service,
        "POST",
        "/v1/follow-ups/1/resolve",
        Some(REVIEWER),
        Some(r#"{"action": "abandon"}"#),
    );
    assert_eq!(
        (code, refused["reason"].as_str()),
        (403, Some("forbidden")),
        "{refused}"
    );

    // Bad requests say what is wrong.
    for (body, expected) in [
        (r#"{"action": "close-it"}"#, 400),
        (r#"{"action": "abandon", "by": "someone-else"}"#, 400),
        ("not json", 400),
        (r#"{"action": "resume", "verdict": "unnecessary"}"#, 400),
        (r#"{"action": "abandon", "verdict": "maybe"}"#, 400),
        (r#"{"action": "abandon", "note": "clear\u001b[2J"}"#, 400),
    ] {
        let (code, refused) = call(
            &service,
            "POST",
            "/v1/follow-ups/1/resolve",
            Some(COORDINATOR),
            Some(body),
        );
        assert_eq!(code, expected, "{body}: {refused}");
        assert!(
            refused["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{refused}"
        );
    }
    // A body is JSON, and says so (or says nothing): a form, as `curl -d`
    // sends one, is refused rather than read as JSON anyway.
    for (kind, expected) in [
        ("application/x-www-form-urlencoded", 415),
        ("text/plain", 415),
        // Past the check: the action is what is refused.
        ("application/json; charset=utf-8", 400),
    ] {
        let answer = ureq::post(&format!("{}/v1/follow-ups/1/resolve", service.url))
            .set("authorization", &format!("Bearer {COORDINATOR}"))
            .set("content-type", kind)
            .send_string(r#"{"action": "close-it"}"#);
        let Err(ureq::Error::Status(code, refused)) = answer else {
            panic!("{kind}: {answer:?}");
        };
        let refused: Value = refused.into_json().unwrap();
        assert_eq!(code, expected, "{kind}: {refused}");
        if code == 415 {
            assert_eq!(refused["reason"], "unsupported-media-type", "{refused}");
            assert!(
                refused["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Content-Type: application/json")),
                "{refused}"
            );
        }
    }
    let long_note = json!({ "action": "abandon", "note": "x".repeat(5000) }).to_string();
    let (code, _) = call(
        &service,
        "POST",
        "/v1/follow-ups/1/resolve",
        Some(COORDINATOR),
        Some(&long_note),
    );
    assert_eq!(code, 413);
    // Refusals are JSON wherever they arise: a body over the limit, an id
    // that is no follow-up's, a path or a method the service does not have.
    // A caller without a token learns only that.
    let big = json!({ "action": "abandon", "note": "x".repeat(20 * 1024) }).to_string();
    let long_run = format!("/v1/runs/{}", "r".repeat(4000));
    // Values of a query or a body that an error would repeat: long, and
    // with a character that turns the text around it.
    let long_field = format!("/v1/runs?{}=1", "f".repeat(5000));
    let long_outcome = format!("/v1/runs?outcome={}", "o".repeat(5000));
    let turned_role = format!("/v1/follow-ups?role=%E2%80%AE{}", "r".repeat(5000));
    let long_action = json!({ "action": "a".repeat(8000) }).to_string();
    for (method, path, token, body, expected) in [
        (
            "POST",
            "/v1/follow-ups/1/resolve",
            Some(COORDINATOR),
            Some(big.as_str()),
            (413, "too-large"),
        ),
        (
            "POST",
            "/v1/follow-ups/1/resolve",
            None,
            Some(big.as_str()),
            (401, "unauthenticated"),
        ),
        (
            "GET",
            "/v1/follow-ups/x",
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "GET",
            "/v1/follow-ups/99999999999999999999",
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "GET",
            "/v1/follow-ups/99999999999999999999",
            None,
            None,
            (401, "unauthenticated"),
        ),
        (
            "POST",
            "/v1/follow-ups/1x/ack",
            Some(COORDINATOR),
            Some(""),
            (404, "not-found"),
        ),
        // One packet, one address: no sign, no leading zero.
        (
            "GET",
            "/v1/follow-ups/+1",
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "GET",
            "/v1/follow-ups/01",
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "GET",
            long_run.as_str(),
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "GET",
            "/v1/no-such-thing",
            Some(COORDINATOR),
            None,
            (404, "not-found"),
        ),
        (
            "DELETE",
            "/v1/runs",
            Some(COORDINATOR),
            None,
            (405, "method-not-allowed"),
        ),
        ("GET", "/v1/events", None, None, (405, "method-not-allowed")),
        (
            "GET",
            long_field.as_str(),
            Some(COORDINATOR),
            None,
            (400, "bad-query"),
        ),
        (
            "GET",
            long_outcome.as_str(),
            Some(COORDINATOR),
            None,
            (400, "bad-query"),
        ),
        (
            "GET",
            turned_role.as_str(),
            Some(COORDINATOR),
            None,
            (403, "forbidden"),
        ),
        (
            "POST",
            "/v1/follow-ups/1/resolve",
            Some(COORDINATOR),
            Some(long_action.as_str()),
            (400, "bad-body"),
        ),
    ] {
        let (code, refused) = call(&service, method, path, token, body);
        assert_eq!(
            (code, refused["reason"].as_str()),
            (expected.0, Some(expected.1)),
            "{method} {path:.60}: {refused}"
        );
        // What was asked is repeated in part at most.
        let error = refused["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty() && error.len() < 400, "{error}");
        assert!(!error.contains('\u{202e}'), "written out: {error}");
    }
    let (code, _) = call(
        &service,
        "GET",
        "/v1/follow-ups?status=lost",
        Some(COORDINATOR),
        None,
    );
    assert_eq!(code, 400);
    // A number that is none is refused in words, with what the list takes.
    let (code, refused) = call(
        &service,
        "GET",
        "/v1/runs?limit=-1",
        Some(COORDINATOR),
        None,
    );
    let error = refused["error"].as_str().unwrap_or_default();
    assert_eq!(code, 400, "{refused}");
    assert!(
        error.starts_with("this list takes outcome=O")
            && error.contains("limit=N (a whole number")
            && error.ends_with("the query does not read: limit: invalid digit found in string"),
        "{error}"
    );
    let (code, _) = call(
        &service,
        "GET",
        "/v1/follow-ups/99",
        Some(COORDINATOR),
        None,
    );
    assert_eq!(code, 404);
    // An endpoint that reads no parameters refuses one rather than pass it
    // over as if it had been applied.
    for (method, path, body) in [
        ("GET", "/v1/follow-ups/1?role=release-manager", None),
        ("GET", "/v1/runs/run-1?steps=none", None),
        ("GET", "/v1/audit/head?seq=1", None),
        ("POST", "/v1/follow-ups/1/ack?by=someone-else", Some("")),
    ] {
        let (code, refused) = call(&service, method, path, Some(COORDINATOR), body);
        assert_eq!(
            (code, refused["reason"].as_str()),
            (400, Some("bad-query")),
            "{path}: {refused}"
        );
    }

    // Who takes it on is the token's role: an ack's body naming someone
    // else, or anything but none or `{}`, is refused. A resolution is an
    // object: serde would read its struct from an array by position, past
    // the names it checks. Neither takes anything on.
    let ack = "/v1/follow-ups/1/ack";
    let resolve = "/v1/follow-ups/1/resolve";
    for (path, body, says) in [
        (ack, r#"{"by": "someone-else"}"#, "token's role"),
        (ack, "[1]", "token's role"),
        (ack, "ack", "token's role"),
        (
            resolve,
            r#"["abandon", "by position", null]"#,
            "not an object",
        ),
        (resolve, "null", "not an object"),
    ] {
        let (code, refused) = call(&service, "POST", path, Some(COORDINATOR), Some(body));
        assert_eq!(
            (code, refused["reason"].as_str()),
            (400, Some("bad-body")),
            "{path} {body}: {refused}"
        );
        assert!(
            refused["error"].as_str().unwrap().contains(says),
            "{refused}"
        );
    }
    let (code, open) = call(&service, "GET", "/v1/follow-ups/1", Some(COORDINATOR), None);
    assert_eq!(
        (code, &open["acknowledged_by"], &open["resolution"]),
        (200, &Value::Null, &Value::Null),
        "{open}"
    );

    // The coordinator takes it on, once.
    let (code, acked) = call(
        &service,
        "POST",
        "/v1/follow-ups/1/ack",
        Some(COORDINATOR),
        Some("{}"),
    );
    assert_eq!(
        (code, acked["acknowledged_by"].as_str()),
        (200, Some("release-coordinator")),
        "{acked}"
    );
    let (code, again) = call(
        &service,
        "POST",
        "/v1/follow-ups/1/ack",
        Some(COORDINATOR),
        Some(""),
    );
    assert_eq!(
        (code, again["reason"].as_str()),
        (409, Some("conflict")),
        "{again}"
    );

    // The decision is authoritative again; resume, and the service
    // carries the run through.
    s.set(
        "governance",
        "review",
        "RV-400",
        &["state"],
        json!("accepted"),
    );
    let (code, resolved) = call(
        &service,
        "POST",
        "/v1/follow-ups/1/resolve",
        Some(COORDINATOR),
        Some(r#"{"action": "resume", "note": "the reopen was a mistake"}"#),
    );
    assert_eq!(
        (code, resolved["run_id"].as_str()),
        (202, Some(run_id.as_str())),
        "{resolved}"
    );
    assert_eq!(outcome_of(&s, &run_id), "completed");

    // Every action with the role that took it, in the chain, which holds.
    let (code, run) = call(
        &service,
        "GET",
        &format!("/v1/runs/{run_id}"),
        Some(COORDINATOR),
        None,
    );
    assert_eq!(code, 200);
    let by: Vec<(String, String)> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"].as_str().unwrap().starts_with("follow-up-"))
        .map(|r| {
            let payload: Value = serde_json::from_str(r["payload"].as_str().unwrap()).unwrap();
            (
                r["kind"].as_str().unwrap().to_string(),
                payload["by"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        by.contains(&(
            "follow-up-acknowledged".into(),
            "release-coordinator".into()
        )),
        "{by:?}"
    );
    assert!(
        by.contains(&("follow-up-resolved".into(), "release-coordinator".into())),
        "{by:?}"
    );
    let (code, head) = call(&service, "GET", "/v1/audit/head", Some(REVIEWER), None);
    assert_eq!(code, 200);
    assert!(head["seq"].as_u64().unwrap() > 0 && head["anchor"].as_str().unwrap().contains(':'));
    assert!(s.handoff(&["audit", "verify"]).status.success());

    // Refusals are counted by reason.
    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &[
            "handoff_requests_refused_total{reason=\"api-unauthenticated\"} 6",
            "handoff_requests_refused_total{reason=\"api-forbidden\"} 5",
            "handoff_requests_refused_total{reason=\"api-conflict\"} 1",
            "handoff_requests_refused_total{reason=\"api-too-large\"} 2",
            "handoff_requests_refused_total{reason=\"api-method-not-allowed\"} 2",
            "handoff_requests_refused_total{reason=\"api-unsupported-media-type\"} 2",
        ],
    );
}
