//! The release-readiness example (`examples/release-readiness`) set up in a
//! temporary directory: its seed copied to `state/`, its configuration
//! pointed at the packages this build made, adapters and policy approved.
//! Tests drive it through the real `handoff` binary and read the results
//! back from the targets' own files and journals.

use handoff::config::Config;
use handoff::pipeline::throttle::Throttle;
use handoff::pipeline::{Engine, Host};
use handoff::policy::Policy;
use handoff::sandbox::package::Package;
use handoff::store::Store;
use handoff::store::adapters::NewApproval;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use tempfile::TempDir;

pub const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/release-readiness");

/// The systems of the example, each an adapter instance with its own directory.
pub const TARGETS: [&str; 4] = ["checklist", "tracker", "queue", "notify"];

pub struct Scenario {
    pub dir: TempDir,
}

impl Scenario {
    /// The example, seeded and approved.
    pub fn new() -> Scenario {
        Scenario::with_config("handoff.toml", &["fs-records", "fs-archive"])
    }

    /// The example under another of its operator configurations, with these
    /// packages approved.
    pub fn with_config(config: &str, packages: &[&str]) -> Scenario {
        let s = Scenario::unapproved_with(config);
        let mut store = s.store();
        for name in packages {
            let pkg = Package::read(&crate::support::built(name)).unwrap();
            store
                .approve_adapter(&NewApproval::of(&pkg, "security-review"))
                .unwrap();
        }
        s.approve_policy();
        s
    }

    /// The example, seeded, nothing approved.
    pub fn unapproved() -> Scenario {
        Scenario::unapproved_with("handoff.toml")
    }

    fn unapproved_with(config: &str) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(EXAMPLE);
        copy_dir(&example.join("seed"), &dir.path().join("state"));
        copy_dir(&example.join("policies"), &dir.path().join("policies"));
        copy_dir(&example.join("events"), &dir.path().join("events"));
        std::fs::copy(
            example.join("context.json"),
            dir.path().join("context.json"),
        )
        .unwrap();
        // Packages from this build; compiled artifacts shared across tests.
        let config = std::fs::read_to_string(example.join(config))
            .unwrap()
            .replace("../../target/handoff-packages", handoff::BUILT_PACKAGES_DIR)
            .replace(
                "cache-dir = \"state/cache\"",
                &format!(
                    "cache-dir = \"{}/artifact-cache\"",
                    env!("CARGO_TARGET_TMPDIR")
                ),
            )
            .replace("base-delay-ms = 100", "base-delay-ms = 5")
            .replace("max-delay-ms = 1000", "max-delay-ms = 20");
        std::fs::write(dir.path().join("handoff.toml"), config).unwrap();
        Scenario { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> Store {
        Store::open(&self.path("state/handoff.db")).unwrap()
    }

    /// The example's workflow context.
    pub fn context(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path("context.json")).unwrap()).unwrap()
    }

    /// An engine on the configuration as it stands, with its throttle
    /// shared with the test (to hold room or a record's turn, as another
    /// caller would), and a runtime to drive it on.
    pub fn engine_sharing_throttle(&self) -> (Engine, Arc<Throttle>, tokio::runtime::Runtime) {
        let config = Config::load(&self.path("handoff.toml")).unwrap();
        let host = Host::new(&config).unwrap();
        let throttle = host.throttle().clone();
        let engine = Engine::with_host(Arc::new(host), self.store());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (engine, throttle, rt)
    }

    pub fn approve_policy(&self) {
        let policy = Policy::load(&self.path("policies/release-readiness.toml")).unwrap();
        self.store()
            .approve_policy(&policy, "release-owner")
            .unwrap();
    }

    /// Change the configuration text (e.g. to add adapter config).
    pub fn edit_config(&self, from: &str, to: &str) {
        self.edit("handoff.toml", from, to);
    }

    /// Change the example policy's text (it is then no longer the
    /// approved one).
    pub fn edit_policy(&self, from: &str, to: &str) {
        self.edit("policies/release-readiness.toml", from, to);
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in {file}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_under(&[], args)
    }

    /// As [`Scenario::command`], run through `wrapper` (a program and its
    /// arguments, such as `prlimit --nofile=1024`), which then runs handoff.
    pub fn command_under(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_handoff");
        let mut c = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
        };
        c.current_dir(self.dir.path())
            .env_remove("HANDOFF_CONFIG")
            .env_remove("HANDOFF_STORE")
            .env_remove("HANDOFF_FAULT_PAUSE")
            .env("HANDOFF_LOG", "error")
            .args(args);
        c
    }

    pub fn handoff(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run handoff")
    }

    /// `handoff run` with the example's accepted event and context.
    pub fn run(&self) -> Output {
        self.run_event("events/accepted.json")
    }

    pub fn run_event(&self, event: &str) -> Output {
        self.handoff(&["run", "--event", event, "--context", "context.json"])
    }

    /// Serve `notify` with the package at `package` (approved here)
    /// instead of the example's `fs-records` channel: its `sent` directory
    /// under `state/sent`, and `config` (the inside of a TOML inline table).
    pub fn notify_through(&self, package: &Path, config: &str) {
        crate::support::approve(&mut self.store(), package);
        std::fs::create_dir_all(self.path("state/sent")).unwrap();
        self.edit_config(
            &format!(
                "[adapters.notify]\nconcurrency = 4\npackage = \"{}/fs-records\"\n\
                 directories = {{ records = \"state/notify\" }}",
                handoff::BUILT_PACKAGES_DIR
            ),
            &format!(
                "[adapters.notify]\npackage = \"{}\"\ndirectories = {{ sent = \"state/sent\" }}\n\
                 config = {{ {config} }}",
                package.display()
            ),
        );
    }

    /// `handoff run` of the example's accepted event, SIGKILLed from
    /// outside: `kill` is told its pid (and kills it when its moment
    /// comes); the run's end is checked to be that kill.
    pub fn run_killed(&self, kill: impl FnOnce(u32)) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self
            .command(&[
                "run",
                "--event",
                "events/accepted.json",
                "--context",
                "context.json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn handoff");
        kill(child.id());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    /// `handoff resume --json`: its exit code and report.
    pub fn resume_json(&self) -> (i32, Value) {
        let o = self.handoff(&["resume", "--json"]);
        let report = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("resume: {e}: {}", text(&o.stderr)));
        (o.status.code().unwrap(), report)
    }

    /// `follow-ups resolve ID --action resume` by the example's role: the
    /// run's report.
    pub fn resume_follow_up(&self, id: i64) -> Value {
        let o = self.handoff(&[
            "follow-ups",
            "resolve",
            &id.to_string(),
            "--action",
            "resume",
            "--by",
            "release-coordinator",
            "--json",
        ]);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("resolve {id}: {e}: {}", text(&o.stderr)))
    }

    /// `handoff run` in the background, stopping at a fault point.
    pub fn spawn_paused(&self, point: &str) -> Child {
        self.spawn_paused_with("events/accepted.json", point)
    }

    /// `handoff run` of this event in the background, stopping at a fault point.
    pub fn spawn_paused_with(&self, event: &str, point: &str) -> Child {
        self.command(&["run", "--event", event, "--context", "context.json"])
            .env("HANDOFF_FAULT_PAUSE", point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn handoff")
    }

    /// A system's journal: one JSON object per real write.
    pub fn journal(&self, system: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(&format!("state/{system}/journal.jsonl")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every real write, across all targets.
    pub fn writes(&self) -> Vec<Value> {
        TARGETS.iter().flat_map(|t| self.journal(t)).collect()
    }

    pub fn record(&self, system: &str, kind: &str, id: &str) -> Value {
        let text = std::fs::read_to_string(self.path(&format!("state/{system}/{kind}/{id}.json")))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The messages published to a channel, oldest first.
    pub fn messages(&self, system: &str, channel: &str) -> Vec<Value> {
        let path = self.path(&format!("state/{system}/channel/{channel}.messages.jsonl"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn write_record(&self, system: &str, kind: &str, id: &str, value: Value) {
        let path = self.path(&format!("state/{system}/{kind}/{id}.json"));
        std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    }

    /// Change one field of a stored record.
    pub fn set(&self, system: &str, kind: &str, id: &str, path: &[&str], value: Value) {
        let mut record = self.record(system, kind, id);
        let mut slot = &mut record;
        for p in path {
            slot = &mut slot[*p];
        }
        *slot = value;
        self.write_record(system, kind, id, record);
    }

    /// Set a value in the example's review, `governance/review/RV-118`,
    /// the decision its event announces.
    pub fn set_review(&self, path: &[&str], value: Value) {
        self.set("governance", "review", "RV-118", path, value);
    }

    /// Every run, newest first (through the store's API).
    pub fn runs(&self) -> Vec<handoff::store::runs::RunRecord> {
        let store = self.store();
        let conn = store.conn().unwrap();
        handoff::store::runs::list(&conn, usize::MAX >> 1, handoff::store::runs::Which::All)
            .unwrap()
    }

    /// The runs not ended yet.
    pub fn unfinished(&self) -> usize {
        let store = self.store();
        handoff::store::runs::unfinished(&store.conn().unwrap())
            .unwrap()
            .len()
    }

    /// Every event stored, oldest first: (source, id).
    pub fn events(&self) -> Vec<(String, String)> {
        let store = self.store();
        handoff::store::events::list(&store.conn().unwrap()).unwrap()
    }

    /// A count the store's API has no question for (the schema checked
    /// as a whole: every table's rows, a sum of sizes, a recount).
    pub fn count(&self, sql: &str) -> i64 {
        self.store()
            .conn()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    /// The open follow-up of the only run, as JSON.
    pub fn follow_up(&self, id: i64) -> Value {
        let out = self.handoff(&["follow-ups", "show", &id.to_string(), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Each of `lines` is a whole line of `text` (a metrics exposition, say).
/// Every step of run `run_id` got where the store says it is by a walk
/// its lifecycle allows: its audit rows, read as the events they record,
/// replayed through the one transition table from `planned`, end in the
/// stored state (so no transition the driver made is outside the table).
pub fn assert_steps_walked_their_lifecycle(store: &Store, run_id: &str) {
    use handoff::model::{StepEvent, StepState};
    let rows = store.audit_rows(Some(run_id)).unwrap();
    let stored = handoff::store::steps::for_run(&store.conn().unwrap(), run_id).unwrap();
    assert!(!stored.is_empty(), "run {run_id} has no steps");
    for step in &stored {
        let mut state = StepState::Planned;
        let mut walk = vec![state.name().to_string()];
        for row in &rows {
            let payload: Value = serde_json::from_str(&row.payload).unwrap();
            if payload["step"] != step.plan.id.as_str() {
                continue;
            }
            let event = match (row.kind.as_str(), &payload) {
                ("step-observed", p) if p["done"] == false => StepEvent::IntentRecorded,
                ("step-skipped", _) => StepEvent::FoundDone,
                ("step-applied", p) if p["recovered"] == true => StepEvent::FoundOurs,
                ("step-verified", _) if state == StepState::Observed => StepEvent::Confirmed,
                ("step-failed", _) => StepEvent::Failed,
                _ => continue,
            };
            state = state.on(event).unwrap_or_else(|e| {
                panic!("step {}: {e}, after {}", step.plan.id, walk.join(" → "))
            });
            walk.push(format!("{event}:{state}"));
        }
        assert_eq!(
            state,
            step.state,
            "step {}: the audit walks {} but the store says {}",
            step.plan.id,
            walk.join(" → "),
            step.state
        );
    }
}

pub fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "{line:?} not in:\n{text}");
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exit code, and stdout and stderr for messages.
pub fn outcome(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}
