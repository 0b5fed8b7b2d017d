//! The release-readiness scenario on real servers on 127.0.0.1 (started by
//! `scripts/test-servers start`): Redmine holds the review, the checklist,
//! the release and its milestone; NATS JetStream the review queue (a
//! key-value bucket) and the scheduler-intake subject; the coordinators get
//! mail through the SMTP receiver. Tests seed them and read every result
//! back with independent clients (Redmine REST, async-nats, the receiver's
//! Maildir), never through the adapters.

use crate::support::scenario::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

mod handover;
mod mail;
mod nats;
pub use handover::*;
pub use mail::*;
pub use nats::*;

/// The Redmine the tests seed and read back, as an admin.
pub struct Redmine {
    pub url: String,
    key: String,
}

impl Redmine {
    pub fn from_env() -> Redmine {
        Redmine {
            url: env_var("HANDOFF_TEST_REDMINE_URL"),
            key: env_var("HANDOFF_TEST_REDMINE_KEY"),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let request = ureq::request(method, &format!("{}{path}", self.url))
            .set("X-Redmine-API-Key", &self.key);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e} ({NEEDS})"));
        let text = response.into_string().unwrap();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub fn get(&self, path: &str) -> Value {
        self.call("GET", path, None)
    }

    pub fn status_id(&self, name: &str) -> u64 {
        self.get("/issue_statuses.json")["issue_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| {
                panic!("no status {name}; was Redmine set up by scripts/test-servers?")
            })["id"]
            .as_u64()
            .unwrap()
    }

    pub fn field_id(&self, name: &str, customized: &str) -> u64 {
        self.get("/custom_fields.json")["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name && f["customized_type"] == customized)
            .unwrap_or_else(|| panic!("no {customized} field {name:?}"))["id"]
            .as_u64()
            .unwrap()
    }

    pub fn issue(&self, id: u64) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals"))["issue"].clone()
    }

    pub fn status_of(&self, id: u64) -> String {
        self.issue(id)["status"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The notes written on an issue (journals with text).
    pub fn notes(&self, id: u64) -> Vec<String> {
        self.issue(id)["journals"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|j| j["notes"].as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn set_status(&self, id: u64, status: &str) {
        let status_id = self.status_id(status);
        self.call(
            "PUT",
            &format!("/issues/{id}.json"),
            Some(json!({ "issue": { "status_id": status_id } })),
        );
        assert_eq!(self.status_of(id), status, "the test's own status change");
    }

    pub fn create_issue(&self, project: u64, subject: &str, fields: Value) -> u64 {
        self.call(
            "POST",
            "/issues.json",
            Some(json!({ "issue": {
                "project_id": project, "tracker_id": 2, "subject": subject,
                "custom_fields": fields,
            }})),
        )["issue"]["id"]
            .as_u64()
            .unwrap()
    }
}

pub const NEEDS: &str = "this test needs the real test servers: run `scripts/test` \
     (starts them, runs every test, stops them), or `scripts/test-servers start` \
     and then `. target/test-servers/env` before `cargo test`";

pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS}"))
}

/// What one test seeded in its own project.
pub struct Seeded {
    pub review: u64,
    pub checklist: u64,
    pub release: u64,
    pub milestone: u64,
    /// This test's own subject prefix, so its messages are its own.
    pub prefix: String,
}

/// What a reviewer wrote in the review: must never leave Redmine.
pub const NARRATIVE: &str = "Reviewer narrative: the rollback drill exposed CONFIDENTIAL-7731";

static PROJECTS: AtomicU32 = AtomicU32::new(0);

pub fn seed(r: &Redmine, nats: &Nats) -> Seeded {
    let n = PROJECTS.fetch_add(1, Ordering::SeqCst);
    let ident = format!("rr-{}-{n}", std::process::id());
    let project = r.call(
        "POST",
        "/projects.json",
        Some(json!({ "project": {
            "name": format!("Release readiness {ident}"), "identifier": ident,
            "tracker_ids": [1, 2, 3],
        }})),
    )["project"]["id"]
        .as_u64()
        .unwrap();
    let review_version = r.field_id("Review version", "issue");
    let release_field = r.field_id("Release ID", "issue");
    let version_release = r.field_id("Release ID", "version");
    let milestone = r.call(
        "POST",
        &format!("/projects/{project}/versions.json"),
        Some(json!({ "version": {
            "name": "M-2026.11",
            "custom_fields": [{ "id": version_release, "value": "R-2026.11" }],
        }})),
    )["version"]["id"]
        .as_u64()
        .unwrap();
    let review = r.create_issue(
        project,
        "Release review RV for R-2026.11",
        json!([{ "id": review_version, "value": "3" }, { "id": release_field, "value": "R-2026.11" }]),
    );
    r.call(
        "PUT",
        &format!("/issues/{review}.json"),
        Some(json!({ "issue": { "description": NARRATIVE, "notes": NARRATIVE } })),
    );
    r.set_status(review, "Accepted");
    nats.put_entry(
        &review.to_string(),
        json!({ "review_id": review.to_string(), "release_id": "R-2026.11" }),
    );
    let checklist = r.create_issue(project, "Readiness checklist R-2026.11", json!([]));
    let release = r.create_issue(
        project,
        "Release R-2026.11",
        json!([{ "id": release_field, "value": "R-2026.11" }]),
    );
    r.set_status(release, "In Progress");
    Seeded {
        review,
        checklist,
        release,
        milestone,
        prefix: format!("handoff.{ident}"),
    }
}

/// The example under its server configuration, with an event and context
/// naming the seeded records.
pub fn scenario(r: &Redmine, nats: &Nats, seeded: &Seeded) -> Scenario {
    let s = Scenario::with_config("handoff-servers.toml", &SERVER_PACKAGES);
    // The adapters' manifests declare these servers; a reviewer approved them.
    assert_eq!(
        r.url, "http://127.0.0.1:3100",
        "the redmine manifest grants only this origin"
    );
    if nats.server != SHARED_NATS {
        // A test's own NATS server: what an operator does for theirs,
        // declare it in the manifest and have that manifest approved.
        approved_copy(&s, "nats", SHARED_NATS, &nats.server);
        s.edit_config(
            &format!("server = \"{SHARED_NATS}\""),
            &format!("server = \"{}\"", nats.server),
        );
    }
    s.edit_config(
        "subject-prefix = \"handoff\"",
        &format!("subject-prefix = \"{}\"", seeded.prefix),
    );
    std::fs::create_dir_all(s.path("state/sent")).unwrap();
    let event = json!({
        "specversion": "1.0", "id": format!("redmine-{}", seeded.review),
        "source": "redmine/release-reviews", "type": "release.review.decided",
        "subject": seeded.review.to_string(), "time": "2026-11-22T09:14:03Z",
        "data": { "review_id": seeded.review.to_string(), "review_version": "3",
                  "release_id": "R-2026.11", "state": "accepted" },
    });
    std::fs::write(s.path("events/redmine.json"), event.to_string()).unwrap();
    let mut resent = event.clone();
    resent["id"] = json!(format!("redmine-{}-resent", seeded.review));
    std::fs::write(s.path("events/redmine-resent.json"), resent.to_string()).unwrap();
    let mut context: Value =
        serde_json::from_slice(&std::fs::read(s.path("context.json")).unwrap()).unwrap();
    context["checklist_id"] = json!(seeded.checklist.to_string());
    context["release_record"] = json!(seeded.release.to_string());
    context["milestone_id"] = json!(seeded.milestone.to_string());
    // This test's own copy of the evidence bundle in the S3 archive, so a
    // test that changes it changes only its own.
    let bundle = format!("{}/R-2026.11/evidence.tar", seeded.prefix);
    let seed = std::fs::read(s.path("state/archive/R-2026.11/evidence.tar")).unwrap();
    S3Store::from_env().put(&format!("releases/{bundle}"), &seed);
    context["evidence_bundle"] = json!(bundle);
    std::fs::write(s.path("context.json"), context.to_string()).unwrap();
    s
}

/// The built package `name` copied into the scenario with `from` in its
/// manifest replaced by `to` (another server), approved as a reviewer
/// would, and the configuration pointed at the copy: what an operator does
/// for a server of their own.
pub fn approved_copy(s: &Scenario, name: &str, from: &str, to: &str) {
    let package = s.path(&format!("packages/{name}"));
    std::fs::create_dir_all(&package).unwrap();
    let built = crate::support::built(name);
    let wasm = format!("{name}.wasm");
    std::fs::copy(built.join(&wasm), package.join(&wasm)).unwrap();
    let manifest = std::fs::read_to_string(built.join("adapter.toml")).unwrap();
    std::fs::write(package.join("adapter.toml"), manifest.replace(from, to)).unwrap();
    let pkg = handoff::sandbox::package::Package::read(&package).unwrap();
    s.store()
        .approve_adapter(&handoff::store::adapters::NewApproval::of(
            &pkg,
            "security-review",
        ))
        .unwrap();
    s.edit_config(
        &format!("{}/{name}\"", handoff::BUILT_PACKAGES_DIR),
        &format!("{}\"", package.display()),
    );
}

/// The packages the example's server configuration runs.
pub const SERVER_PACKAGES: [&str; 4] = ["redmine", "nats", "smtp", "s3-archive"];

/// The test S3 store, reached through its filer (not through S3).
pub struct S3Store {
    pub endpoint: String,
    pub filer: String,
    pub bucket: String,
}

impl S3Store {
    pub fn from_env() -> S3Store {
        S3Store {
            endpoint: env_var("HANDOFF_TEST_S3_ENDPOINT"),
            filer: env_var("HANDOFF_TEST_S3_FILER"),
            bucket: env_var("HANDOFF_TEST_S3_BUCKET"),
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/buckets/{}/{key}", self.filer, self.bucket)
    }

    pub fn put(&self, key: &str, bytes: &[u8]) {
        ureq::put(&self.url(key))
            .send_bytes(bytes)
            .unwrap_or_else(|e| panic!("putting {key} through the filer: {e}"));
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match ureq::get(&self.url(key)).call() {
            Ok(response) => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut response.into_reader(), &mut out).unwrap();
                Some(out)
            }
            Err(ureq::Error::Status(404, _)) => None,
            Err(e) => panic!("reading {key} through the filer: {e}"),
        }
    }
}

/// The scenario against the real servers, with its decision made in
/// Redmine and the governance adapter listing this test's project only.
pub fn polling_scenario() -> (Scenario, Redmine, Seeded) {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    let project = seeded.prefix.trim_start_matches("handoff.");
    s.edit_config(
        "issue-kinds = \"review\" }",
        &format!("issue-kinds = \"review\", project = \"{project}\" }}"),
    );
    (s, r, seeded)
}

/// `handoff run`; the report carries its follow-up packet, if any.
pub fn run(s: &Scenario, event: &str) -> (i32, Value) {
    let o = s.handoff(&[
        "run",
        "--event",
        event,
        "--context",
        "context.json",
        "--json",
    ]);
    let out = text(&o.stdout);
    let mut report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {out}\n{}", text(&o.stderr)));
    if let Some(id) = report["follow_up"].as_i64() {
        report["packet"] = s.follow_up(id)["packet"].clone();
    }
    (o.status.code().unwrap(), report)
}

pub fn keys_in(notes: &[String]) -> Vec<String> {
    notes
        .iter()
        .flat_map(|n| n.lines())
        .filter_map(|l| l.strip_prefix("handoff-key: "))
        .map(str::to_string)
        .collect()
}
