//! Whole-pipeline throughput, printed as numbers (not a pass/fail test).
//!
//! Run: `cargo bench -p handoff --bench pipeline [-- N [W]]` (release
//! profile; N events, default 2000; W workers, default both 1 and 2).
//!
//! What it measures: N distinct accepted decisions from the
//! release-readiness example (each with its own review, checklist,
//! milestone, release and queue entry) submitted to W workers, each with
//! its own engine and runtime, all on one store connection (as `handoff
//! serve` runs them): intake, revalidation, two checks, six steps each
//! observed, applied and confirmed through the filesystem reference
//! adapters running as Wasm components, every transition committed to an
//! on-disk SQLite store (WAL) with its audit row. Reported: runs/s and
//! per-run latency (median, p99), and the process's CPU time per run (all
//! threads), for three shapes of run: the example policy (six steps, the
//! source read again before every write), the same with `revalidate =
//! "once"`, and the scenario's five closure steps (the example without
//! `tell-scheduler`), the shape the goal is stated for. Under each, from
//! the engine's own timings (`Host::with_timings`, which also feeds
//! `/metrics`): the adapters' time per run by call kind (count per run x
//! mean); then how long the store's one writer was held per run and for
//! what share of the time (`Store::writing_held`, also in `/metrics`).
//! Goal on this machine: >= 1,000 runs/s with 5 steps each.
//!
//! The store's WAL is checkpointed by a thread of its own, and its
//! transitions are committed in groups, as in `handoff serve` (with
//! `durability = "process"`: each intent committed before its write, no
//! sync).
//!
//! `PERF_CTL=<fifo>` writes `enable` / `disable` to that fifo around the
//! timed section, so `perf stat -D -1 --control fifo:<fifo>` (or `perf
//! record`) counts only the runs, not the build-up and warm-up.
//!
//! What it has measured, and where the time goes: `docs/benchmarks.md`.

mod common;

use common::cpu_time;
use handoff::config::Config;
use handoff::model::CloudEvent;
use handoff::pipeline::{Engine, Host, Outcome, Timed};
use handoff::policy::Policy;
use handoff::sandbox::package::Package;
use handoff::store::adapters::NewApproval;
use handoff::store::checkpoint::{CHECKPOINT_EVERY, Checkpointer};
use handoff::store::{Durability, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/release-readiness");

fn write(path: &Path, value: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&value).unwrap()).unwrap();
}

/// The records of decision `i`: its review, checklist, milestone, release
/// and queue entry.
fn seed_one(root: &Path, i: usize) {
    let state = root.join("state");
    let release = format!("R-{i}");
    write(
        &state.join(format!("governance/review/RV-{i}.json")),
        json!({"state": "accepted", "revision": 1, "fields": {"review_version": "1"}}),
    );
    write(
        &state.join(format!("checklist/checklist/CL-{i}.json")),
        json!({"state": "open", "revision": 1}),
    );
    write(
        &state.join(format!("tracker/milestone/M-{i}.json")),
        json!({"state": "open", "revision": 1,
               "fields": {"release_id": release, "name": format!("M-{i}")}}),
    );
    write(
        &state.join(format!("tracker/release/{release}.json")),
        json!({"state": "in-review", "revision": 1}),
    );
    write(
        &state.join(format!("queue/review-queue/RV-{i}.json")),
        json!({"state": "waiting", "revision": 1}),
    );
}

/// How each decision's run is shaped.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// The source read once, instead of before every write (the example).
    revalidate_once: bool,
    /// The scenario's five closure steps: the example without its sixth
    /// (`tell-scheduler`), the shape the goal is stated for.
    five_steps: bool,
}

/// The example policy's sixth step, which `Shape::five_steps` leaves out.
const SIXTH_STEP: &str = "[[step]]\nid = \"tell-scheduler\"";

/// A fresh copy of the example with `n` decisions seeded.
fn seed(root: &Path, n: usize, shape: Shape) -> Config {
    let state = root.join("state");
    for i in 0..n {
        seed_one(root, i);
    }
    std::fs::create_dir_all(state.join("notify")).unwrap();
    std::fs::create_dir_all(state.join("archive/R")).unwrap();
    std::fs::write(state.join("archive/R/evidence.tar"), b"evidence").unwrap();
    let mut policy =
        std::fs::read_to_string(Path::new(EXAMPLE).join("policies/release-readiness.toml"))
            .unwrap();
    if shape.revalidate_once {
        policy = policy.replace(
            "revalidate = \"before-each-write\"",
            "revalidate = \"once\"",
        );
    }
    if shape.five_steps {
        let start = policy.find(SIXTH_STEP).expect("the example's sixth step");
        let len = policy[start + 1..]
            .find("[[step]]")
            .expect("a step after it")
            + 1;
        policy.replace_range(start..start + len, "");
    }
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::write(root.join("policies/release-readiness.toml"), policy).unwrap();
    let config = std::fs::read_to_string(Path::new(EXAMPLE).join("handoff.toml"))
        .unwrap()
        .replace("../../target/handoff-packages", handoff::BUILT_PACKAGES_DIR);
    std::fs::write(root.join("handoff.toml"), &config).unwrap();
    Config::load(&root.join("handoff.toml")).unwrap()
}

fn event(i: usize) -> CloudEvent {
    let raw = json!({
        "specversion": "1.0", "id": format!("bench-{i}"), "source": "governance/bench",
        "type": "release.review.decided",
        "data": {"review_id": format!("RV-{i}"), "review_version": "1",
                 "release_id": format!("R-{i}"), "state": "accepted"},
    });
    CloudEvent::parse(raw.to_string().as_bytes(), "bench").unwrap()
}

fn context(i: usize) -> serde_json::Value {
    json!({
        "checklist_id": format!("CL-{i}"), "milestone_id": format!("M-{i}"),
        "milestone_name": format!("M-{i}"), "release_record": format!("R-{i}"),
        "evidence_bundle": "R/evidence.tar",
        "evidence_sha256": handoff::sandbox::package::sha256_hex(b"evidence"),
        "evidence_url": format!("https://evidence.example.internal/{i}"),
    })
}

/// Runs `label` and returns its CPU time per run.
fn run(label: &str, n: usize, shape: Shape, workers: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let config = seed(dir.path(), n, shape);
    let mut store = Store::open(&config.store_path).unwrap();
    for name in ["fs-records", "fs-archive"] {
        let pkg = Package::read(&Path::new(handoff::BUILT_PACKAGES_DIR).join(name)).unwrap();
        store
            .approve_adapter(&NewApproval::of(&pkg, "bench"))
            .unwrap();
    }
    let policy_path = dir.path().join("policies/release-readiness.toml");
    store
        .approve_policy(&Policy::load(&policy_path).unwrap(), "bench")
        .unwrap();
    // Where the time goes, from the engine's own timings of the measured
    // runs (not the warm-up): adapter calls by kind, across adapters.
    let calls: Arc<Mutex<BTreeMap<&'static str, (u32, Duration)>>> = Arc::default();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (timed, counting) = (calls.clone(), measuring.clone());
    // As `handoff serve` runs them: each worker its own engine and runtime
    // on the process's one host; the store connection shared by all.
    let host = Arc::new(
        Host::new(&config)
            .unwrap()
            .with_timings(Arc::new(move |what, took| {
                if let (Timed::Call { call, .. }, true) =
                    (what, counting.load(std::sync::atomic::Ordering::Relaxed))
                {
                    let mut calls = timed.lock().unwrap();
                    let (count, total) = calls.entry(call).or_default();
                    *count += 1;
                    *total += took;
                }
            })),
    );
    let checkpointer = Checkpointer::start(&config.store_path, CHECKPOINT_EVERY).unwrap();
    let mut engines: Vec<Engine> = (0..workers)
        .map(|_| {
            let engine = Engine::with_host(host.clone(), Store::open(&config.store_path).unwrap());
            engine.store().leave_checkpoints_to(&checkpointer).unwrap();
            // Transitions committed in groups, as `serve` commits them; the
            // durability the benchmark has always had (no sync).
            engine
                .store()
                .commit_in_groups(Durability::Process)
                .unwrap();
            engine
        })
        .collect();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    // Warm up: load and compile the adapters outside the clock.
    for (w, engine) in engines.iter_mut().enumerate() {
        let i = n + w;
        seed_one(dir.path(), i);
        let warm = runtime()
            .block_on(engine.submit(&event(i), &context(i)))
            .unwrap();
        assert_eq!(warm.outcome, Outcome::Completed, "{warm:?}");
    }

    measuring.store(true, std::sync::atomic::Ordering::Relaxed);

    let ctl = std::env::var("PERF_CTL").ok();
    if let Some(c) = &ctl {
        std::fs::write(c, "enable\n").unwrap();
    }
    let held_before = store.writing_held();
    let start = Instant::now();
    let cpu_start = cpu_time();
    let threads: Vec<_> = engines
        .into_iter()
        .enumerate()
        .map(|(w, mut engine)| {
            std::thread::spawn(move || {
                let rt = runtime();
                let mut latencies = Vec::new();
                for i in (w..n).step_by(workers) {
                    let t = Instant::now();
                    let report = rt.block_on(engine.submit(&event(i), &context(i))).unwrap();
                    latencies.push(t.elapsed());
                    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu_start;
    let held = store.writing_held() - held_before;
    if let Some(c) = &ctl {
        std::fs::write(c, "disable\n").unwrap();
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let rows: i64 = store
        .conn()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    let per_run = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let calls = calls.lock().unwrap();
    let parts: Vec<String> = calls
        .iter()
        .map(|(call, (count, total))| {
            format!(
                "{call} {:.1} x {:.0} us",
                f64::from(*count) / n as f64,
                total.as_secs_f64() * 1e6 / f64::from(*count)
            )
        })
        .collect();
    let in_calls: Duration = calls.values().map(|(_, total)| *total).sum();
    println!(
        "{label:<44} {workers} worker(s) {:>6.0} runs/s   p50 {:>9.2?}   p99 {:>9.2?}   cpu {:.2} ms/run   ({n} runs, {rows} audit rows, {:.1?})",
        n as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(99),
        cpu.as_secs_f64() * 1000.0 / n as f64,
        elapsed
    );
    println!(
        "{:<44} adapters {:.2} ms/run (wall, all workers): {}",
        "",
        per_run(in_calls) / 1000.0,
        parts.join(", ")
    );
    println!(
        "{:<44} store's one writer held {:.2} ms/run, {:.0}% of the time",
        "",
        per_run(held) / 1000.0,
        100.0 * held.as_secs_f64() / elapsed.as_secs_f64()
    );
    cpu / n as u32
}

/// Read and parse a record.
fn read_record(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Write a record as the record store does: a new file put in place.
fn replace_record(path: &Path, value: &serde_json::Value) {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::to_vec(value).unwrap()).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// The floor: the same file work as a run of the goal's five steps, done
/// by a plain loop with no engine, no sandbox and no store. Per decision:
/// the source read; the two checks' reads (the milestone, the evidence
/// bundle hashed); then for each step a read to look, a read, change,
/// write-and-rename and journal line to apply, and a read to confirm (the
/// message step appends its message instead). Its CPU time per run.
fn bare(n: usize, label: &str) -> Duration {
    use sha2::Digest as _;
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..n {
        seed_one(root, i);
    }
    let state = root.join("state");
    std::fs::create_dir_all(state.join("archive/R")).unwrap();
    std::fs::write(state.join("archive/R/evidence.tar"), b"evidence").unwrap();
    std::fs::create_dir_all(state.join("notify/channel")).unwrap();
    let journal = |system: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join(format!("{system}/journal.jsonl")))
            .unwrap()
    };
    let start = Instant::now();
    let cpu_start = cpu_time();
    for i in 0..n {
        let key = |step: &str| format!("k-{i}-{step}");
        let review = read_record(&state.join(format!("governance/review/RV-{i}.json")));
        assert_eq!(review["state"], "accepted");
        let milestone = read_record(&state.join(format!("tracker/milestone/M-{i}.json")));
        assert_eq!(milestone["fields"]["release_id"], format!("R-{i}"));
        let bundle = std::fs::read(state.join("archive/R/evidence.tar")).unwrap();
        let _ = sha2::Sha256::digest(&bundle);
        let targets = [
            (
                "checklist",
                format!("checklist/checklist/CL-{i}.json"),
                "closed",
            ),
            ("tracker", format!("tracker/release/R-{i}.json"), "approved"),
            ("tracker", format!("tracker/release/R-{i}.json"), "link"),
            (
                "queue",
                format!("queue/review-queue/RV-{i}.json"),
                "cleared",
            ),
        ];
        for (step, (system, path, to)) in targets.iter().enumerate() {
            let path = state.join(path);
            let _look = read_record(&path);
            let mut record = read_record(&path);
            if *to == "link" {
                record["links"] = json!(["https://evidence.example.internal/R/evidence.tar"]);
            } else {
                record["state"] = json!(to);
            }
            record["applied"] = json!([key(&step.to_string())]);
            replace_record(&path, &record);
            writeln!(
                journal(system),
                "{}",
                json!({"id": i, "key": key(&step.to_string())})
            )
            .unwrap();
            let _confirm = read_record(&path);
        }
        // The message step: look, append the message, confirm.
        let messages = state.join("notify/channel/release-coordinators.messages.jsonl");
        let _ = std::fs::read(&messages);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&messages)
            .unwrap();
        writeln!(
            file,
            "{}",
            json!({"key": key("notify"), "subject": format!("R-{i} closure done")})
        )
        .unwrap();
        let _ = std::fs::read(&messages);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu_start;
    println!(
        "{label:<44} {:>6.0} runs/s   cpu {:.2} ms/run   ({n} runs, {:.1?})",
        n as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / n as f64,
        elapsed
    );
    cpu / n as u32
}

fn main() {
    // As the `handoff` binary does: error values do not walk the stack
    // (`RUST_BACKTRACE=1` would otherwise slow every adapter call).
    // SAFETY: first thing in main, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        handoff::backtraces::leave_off_unless_asked()
    };
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = numbers.next().unwrap_or(2000);
    let workers: Vec<usize> = match numbers.next() {
        Some(w) => vec![w.max(1)],
        None => vec![1, 2],
    };
    println!(
        "pipeline: {n} accepted decisions, 2 checks + 6 or 5 steps each, on-disk SQLite (WAL)"
    );
    let shape = |revalidate_once, five_steps| Shape {
        revalidate_once,
        five_steps,
    };
    // The floor, before handoff's runs and again after them: on a file
    // system whose cost of making a file grows with the files removed in
    // the last minutes (ext4 without a journal, see docs/benchmarks.md)
    // the two differ, and the multiple is given against each.
    let floor_before = bare(n, "the bare file work, before handoff's runs");
    let mut five = Vec::new();
    for &w in &workers {
        run(
            "example: 6 steps, source before each write",
            n,
            shape(false, false),
            w,
        );
        run("6 steps, source read once", n, shape(true, false), w);
        five.push(run(
            "the goal's 5 steps, source before each write",
            n,
            shape(false, true),
            w,
        ));
    }
    let floor_after = bare(n, "the bare file work, after handoff's runs");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (w, cpu) in workers.iter().zip(five) {
        let times = |floor: Duration| ms(cpu) / ms(floor).max(1e-6);
        println!(
            "{:<44} {w} worker(s): {:.1}x / {:.1}x the bare work's CPU per run ({:.2} ms against {:.2} ms before / {:.2} ms after)",
            "handoff, the goal's 5 steps",
            times(floor_before),
            times(floor_after),
            ms(cpu),
            ms(floor_before),
            ms(floor_after)
        );
    }
}
