//! The web console on a running `handoff serve`, driven in headless
//! Chromium as a person would: log in with the role's token, find the
//! overdue packet in the inbox, resolve it with `resume`, watch the run
//! complete; the pages on a phone's width; screenshots kept under
//! `target/test-artifacts/console/`. And, with a plain HTTP client, what
//! the console refuses: no session, forms from other sites or without the
//! session's token, another role's packet, a reviewer acting.

use crate::pipeline::{another_decision, with_sla_hours};
use crate::support::browser::Browser;
use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::{Value, json};

const COORDINATOR: &str = "coordinator-token-0123456789abcdef";
const REVIEWER: &str = "reviewer-token-0123456789abcdef-xy";
const OTHER: &str = "other-team-token-0123456789abcdef-x";

/// The example with an overdue packet (follow-up 1, due the moment it was
/// raised, for the release coordinator) and three roles with tokens, served.
fn served() -> (Scenario, Service, String) {
    let s = scenario(1, 100);
    with_sla_hours(&s, 0);
    with_role_tokens(
        &s,
        &[
            ("release-coordinator", COORDINATOR, ""),
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

#[test]
fn a_coordinator_logs_in_finds_the_overdue_packet_resumes_it_and_sees_the_run_complete() {
    let (s, service, run_id) = served();
    let browser = Browser::start(1280, 900);

    // The link a notice carries leads to the login page, then back to it.
    browser.open(&format!("{}/ui/follow-ups/1", service.url));
    assert!(
        browser.url().contains("/ui/login?next="),
        "{}",
        browser.url()
    );
    browser.screenshot("1-login");
    browser.type_into("#token", "not-a-token-of-any-role-at-all");
    browser.click_to_next_page("#log-in");
    assert!(browser.text("#error").contains("not one of any role"));
    browser.type_into("#token", COORDINATOR);
    browser.click_to_next_page("#log-in");
    assert!(
        browser.url().ends_with("/ui/follow-ups/1"),
        "{}",
        browser.url()
    );
    let cookies = browser.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "handoff_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");

    // The inbox: the packet, overdue, first.
    browser.open(&format!("{}/ui/follow-ups", service.url));
    assert_eq!(browser.text("#role"), "release-coordinator");
    assert_eq!(browser.count("#follow-ups tbody tr"), 1);
    assert_eq!(browser.count("tr.overdue[data-follow-up=\"1\"]"), 1);
    assert!(browser.text("tr.overdue").contains("overdue since"));
    browser.screenshot("2-inbox-overdue");

    // The packet; the decision is authoritative again, so resume it.
    browser.click_to_next_page("tr.overdue a");
    assert!(browser.text("#status").contains("overdue"));
    s.set(
        "governance",
        "review",
        "RV-400",
        &["state"],
        json!("accepted"),
    );
    browser.type_into("#note", "the reopen was a mistake");
    browser.click("#action-resume");
    browser.screenshot("3-packet");
    browser.click_to_next_page("#resolve");
    assert!(
        browser
            .url()
            .contains(&format!("/ui/runs/{run_id}?resumed=1")),
        "{}",
        browser.url()
    );
    // The service carries the run on; the page shows it once it has.
    assert_eq!(outcome_of(&s, &run_id), "completed");
    browser.open(&browser.url());
    assert_eq!(browser.text("#outcome"), "completed");
    assert!(browser.text("#timeline").contains("follow-up-resolved"));
    browser.screenshot("4-run-completed");

    // Audited with the role that clicked, in a chain that holds.
    let exported = s.handoff(&["audit", "export", "--run", &run_id]);
    let by: Vec<(String, String)> = text(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"].as_str().unwrap().starts_with("follow-up-"))
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["payload"]["by"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        by.contains(&("follow-up-resolved".into(), "release-coordinator".into())),
        "{by:?}"
    );
    browser.open(&format!("{}/ui/audit", service.url));
    assert!(browser.text("#chain").starts_with("Verified"));
    let head = s.handoff(&["audit", "head"]);
    assert_eq!(browser.text("#anchor"), text(&head.stdout).trim());

    // The dashboard counts what happened; the inbox is empty now.
    browser.open(&format!("{}/ui/dashboard", service.url));
    assert_eq!(browser.text("#open"), "0");
    assert!(browser.text("#handoffs").contains("release-coordinator"));
    browser.open(&format!("{}/ui/follow-ups", service.url));
    assert!(browser.text("#empty").contains("no open follow-ups"));

    // On a phone: nothing wider than the screen.
    browser.resize(390, 844);
    for (page, name) in [
        ("/ui/follow-ups?status=all", "5-phone-inbox"),
        ("/ui/follow-ups/1", "6-phone-packet"),
        (&format!("/ui/runs/{run_id}"), "7-phone-run"),
        ("/ui/dashboard", "8-phone-dashboard"),
    ] {
        browser.open(&format!("{}{page}", service.url));
        let (page_width, screen) = browser.widths();
        assert!(
            page_width <= screen,
            "{page} is {page_width} px wide on a {screen} px screen"
        );
        browser.screenshot(name);
    }

    // Logging out ends the session: the pages ask for the token again.
    browser.click_to_next_page("form.who button");
    browser.open(&format!("{}/ui/runs", service.url));
    assert!(browser.url().contains("/ui/login"), "{}", browser.url());
}

/// A plain HTTP client with the console's session, redirects not followed.
struct Client {
    agent: ureq::Agent,
    url: String,
    cookie: Option<String>,
}

/// What the console answered.
struct Answer {
    code: u16,
    body: String,
    location: Option<String>,
    set_cookie: Option<String>,
    policy: Option<String>,
}

impl Client {
    fn new(service: &Service) -> Client {
        Client {
            agent: ureq::AgentBuilder::new().redirects(0).build(),
            url: service.url.clone(),
            cookie: None,
        }
    }

    fn send(&self, method: &str, path: &str, form: Option<&str>, extra: &[(&str, &str)]) -> Answer {
        let mut r = self.agent.request(method, &format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            r = r.set("cookie", c);
        }
        for (k, v) in extra {
            r = r.set(k, v);
        }
        let response = match form {
            Some(f) => r
                .set("content-type", "application/x-www-form-urlencoded")
                .send_string(f),
            None => r.call(),
        };
        let response = match response {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let header = |name: &str| response.header(name).map(str::to_string);
        let (location, set_cookie, policy) = (
            header("location"),
            header("set-cookie"),
            header("content-security-policy"),
        );
        Answer {
            code: response.status(),
            location,
            set_cookie,
            policy,
            body: response.into_string().unwrap(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[])
    }

    fn post(&self, path: &str, form: &str) -> Answer {
        self.send("POST", path, Some(form), &[])
    }

    /// Log in with `token`; the session's CSRF token, read off a page.
    fn log_in(&mut self, token: &str) -> String {
        let a = self.post("/ui/login", &format!("token={token}"));
        assert_eq!(a.code, 303, "{}", a.body);
        let set = a.set_cookie.expect("a session cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        self.cookie = Some(set.split(';').next().unwrap().to_string());
        let page = self.get("/ui/follow-ups?status=all").body;
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a token")
            + 19;
        page[at..at + 64].to_string()
    }
}

#[test]
fn the_console_refuses_strangers_other_sites_missing_tokens_and_other_roles() {
    let (_s, service, _run_id) = served();
    let mut client = Client::new(&service);

    // No session: every page leads to the login page, nothing is shown.
    for page in [
        "/ui/follow-ups",
        "/ui/follow-ups/1",
        "/ui/runs",
        "/ui/audit",
        "/ui/adapters",
        "/ui/dashboard",
    ] {
        let a = client.get(page);
        assert_eq!(a.code, 303, "{page}");
        assert!(a.location.unwrap().starts_with("/ui/login?next="), "{page}");
        assert!(!a.body.contains("RV-400"), "{page}");
    }
    assert_eq!(
        client
            .post("/ui/follow-ups/1/resolve", "action=abandon")
            .code,
        401
    );
    // A login form posted from another site.
    let a = client.send(
        "POST",
        "/ui/login",
        Some(&format!("token={COORDINATOR}")),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!(a.code, 403, "{}", a.body);
    assert!(a.set_cookie.is_none());

    let csrf = client.log_in(COORDINATOR);
    // Forms without the session's token, with another token, with fields
    // the form does not have, or from another site.
    for (form, extra, expected) in [
        ("action=abandon".to_string(), vec![], 403),
        (
            format!("action=abandon&csrf={}", "0".repeat(64)),
            vec![],
            403,
        ),
        (
            format!("action=abandon&csrf={csrf}&by=someone"),
            vec![],
            400,
        ),
        (
            format!("action=abandon&csrf={csrf}&csrf={csrf}"),
            vec![],
            400,
        ),
        (
            format!("action=abandon&csrf={csrf}"),
            vec![("origin", "https://evil.example")],
            403,
        ),
        (format!("action=close-it&csrf={csrf}"), vec![], 400),
        (
            format!("action=abandon&csrf={csrf}&note={}", "x".repeat(5000)),
            vec![],
            413,
        ),
        (
            format!("action=abandon&csrf={csrf}&note={}", "x".repeat(20_000)),
            vec![],
            413,
        ),
    ] {
        let a = client.send("POST", "/ui/follow-ups/1/resolve", Some(&form), &extra);
        assert_eq!(a.code, expected, "{form:.80}: {}", a.body);
        assert!(
            a.body.contains("id=\"error\""),
            "a page saying why: {}",
            a.body
        );
    }
    assert!(
        client
            .get("/ui/follow-ups/1")
            .body
            .contains("id=\"resolve\""),
        "still open, the form is there"
    );
    // A path that is no packet's, or no page's, is a page saying so.
    for (path, code) in [
        ("/ui/follow-ups/x", 404),
        ("/ui/follow-ups/99999999999999999999", 404),
        ("/ui/no-such-page", 404),
    ] {
        let a = client.get(path);
        assert_eq!(a.code, code, "{path}: {}", a.body);
        assert!(a.body.contains("id=\"error\""), "{path}: {}", a.body);
        // In the frame of the person logged in.
        assert!(a.body.contains("id=\"role\""), "{path}: {}", a.body);
    }
    // A parameter a page does not take, one given twice, or a value it
    // does not know is refused, not shown as if applied (a mistyped
    // filter listed everything).
    for (path, says) in [
        ("/ui/follow-ups?stat=resolved", "stat"),
        ("/ui/follow-ups?status=closed", "closed"),
        ("/ui/follow-ups?status=all&status=open", "status"),
        ("/ui/follow-ups/1?done=everything", "everything"),
        ("/ui/follow-ups/1?role=reviewer", "role"),
        ("/ui/runs?outcome=completed&polcy=x", "polcy"),
        ("/ui/runs/r?resumed=first", "resumed"),
        ("/ui/dashboard?days=90", "days"),
        ("/ui/audit?from=1", "from"),
        ("/ui/adapters?all=1", "all"),
        ("/ui/shadow?run=1", "run"),
    ] {
        let a = client.get(path);
        assert_eq!(a.code, 400, "{path}: {}", a.body);
        assert!(
            a.body.contains("id=\"error\"") && a.body.contains(says),
            "{path}: a page naming {says:?}: {}",
            a.body
        );
        assert!(!a.body.contains("Failed to deserialize"), "{}", a.body);
    }
    // What the pages' own links and forms ask for is taken.
    for path in [
        "/ui/runs?outcome=&policy=",
        "/ui/runs?outcome=completed&policy=release-readiness-closure",
        "/ui/follow-ups?status=overdue",
        "/ui/follow-ups/1?done=acknowledged",
        "/ui/follow-ups/1?done=mark-resolved",
    ] {
        assert_eq!(client.get(path).code, 200, "{path}");
    }
    let long = format!("/ui/runs?{}=1", "p".repeat(20_000));
    let a = client.get(&long);
    assert_eq!(a.code, 400);
    assert!(a.body.len() < 8_000, "what it repeats is cut short");
    // A form posted to an address with a query, and the login page asked
    // with one, are refused the same way.
    let a = client.post("/ui/follow-ups/1/ack?as=reviewer", &format!("csrf={csrf}"));
    assert_eq!(a.code, 400, "{}", a.body);
    let a = Client::new(&service).get("/ui/login?next=/ui/runs&then=/ui/audit");
    assert_eq!(a.code, 400, "{}", a.body);
    assert!(a.body.contains("then"), "{}", a.body);

    // Another team sees neither the packet nor a form.
    let mut other = Client::new(&service);
    let other_csrf = other.log_in(OTHER);
    assert_eq!(other.get("/ui/follow-ups/1").code, 403);
    assert!(
        !other
            .get("/ui/follow-ups?status=all")
            .body
            .contains("data-follow-up=\"1\"")
    );
    assert_eq!(
        other
            .post("/ui/follow-ups/1/ack", &format!("csrf={other_csrf}"))
            .code,
        403
    );

    // A reviewer reads the packet, gets no form, and cannot act.
    let mut reviewer = Client::new(&service);
    let reviewer_csrf = reviewer.log_in(REVIEWER);
    let a = reviewer.get("/ui/follow-ups/1");
    assert_eq!(a.code, 200);
    assert!(!a.body.contains("id=\"resolve\"") && !a.body.contains("id=\"acknowledge\""));
    let a = reviewer.post(
        "/ui/follow-ups/1/resolve",
        &format!("action=abandon&csrf={reviewer_csrf}"),
    );
    assert_eq!(a.code, 403);
    // The adapters page shows each instance's grant as check --reach does.
    let a = reviewer.get("/ui/adapters");
    assert_eq!(a.code, 200);
    assert!(a.body.contains("actions"), "{}", a.body);

    // The coordinator takes it on through a form; the packet says so.
    let a = client.post("/ui/follow-ups/1/ack", &format!("csrf={csrf}"));
    assert_eq!(
        (a.code, a.location.as_deref()),
        (303, Some("/ui/follow-ups/1?done=acknowledged"))
    );
    let page = client.get("/ui/follow-ups/1").body;
    assert!(page.contains("taken on by release-coordinator"), "{page}");

    // Every page carries a policy that lets no script run.
    let policy = client.get("/ui/runs").policy.unwrap();
    assert!(
        policy.contains("default-src 'none'") && !policy.contains("script-src"),
        "{policy}"
    );

    // Refusals are counted.
    let (_, metrics) = service.get("/metrics");
    assert!(
        metrics.contains("handoff_requests_refused_total{reason=\"console-bad-csrf\"} 2"),
        "{metrics}"
    );
}

#[test]
fn the_shadow_page_says_what_people_did_with_a_shadowed_run() {
    let (s, run_id) = crate::pipeline::shadow::shadowed();
    with_serve(&s, serve_config(1, 100, 0, SOURCE));
    with_role_tokens(
        &s,
        &[("security-review", REVIEWER, "scope = \"reviewer\"\n")],
    );
    let service = Service::start(&s, None);
    let mut reviewer = Client::new(&service);
    reviewer.log_in(REVIEWER);
    let page = reviewer.get("/ui/shadow");
    assert_eq!(page.code, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("/ui/runs/{run_id}")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("nobody has done it yet"),
        "{}",
        page.body
    );
    // Looking again wrote nothing.
    assert!(s.writes().is_empty());
}
