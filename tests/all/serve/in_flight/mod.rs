//! Many runs in flight: 200 decisions sent to `handoff serve` at once, each
//! run publishing five messages through the `webhook` adapter to a
//! receiver that answers each after 20 ms. The runs are driven together
//! (the receiver sees many requests at once), and the receiver's own
//! record shows one post per step per run: none lost, none doubled. A
//! command of another process writing to the store while the service's
//! runs commit in groups gets its turn. The service killed with runs in
//! flight: `kills.rs`; a run taken over by another driver while its post
//! waited: `taken_over.rs`; an adapter's concurrency and one call per
//! record held with many runs in flight: `limits.rs`; runs of different
//! decisions sharing a target record: `shared_records.rs`; a commit that
//! fails under runs in flight: `store_lost.rs`.

use crate::support::scenario::*;
use crate::support::service::*;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holding::Holding;

mod holding;
mod kills;
mod limits;
mod shared_records;
mod store_lost;
mod taken_over;

const RUNS: usize = 200;
const STEPS: usize = 5;
const DELAY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Seen {
    /// Each post's webhook-id (the step's key), by channel path.
    posts: Vec<(String, String)>,
    /// The connections posts came on (each its client address).
    connections: std::collections::BTreeSet<std::net::SocketAddr>,
    now: usize,
    peak: usize,
}

/// A loopback receiver that answers every POST after [`DELAY`].
struct SlowReceiver {
    origin: String,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl SlowReceiver {
    fn start() -> SlowReceiver {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let app = Router::new().fallback(answer).with_state(seen.clone());
        let (origin, runtime) = crate::support::serve_in_background(app);
        SlowReceiver {
            origin,
            seen,
            _runtime: runtime,
        }
    }
}

async fn answer(
    State(seen): State<Arc<Mutex<Seen>>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> (StatusCode, &'static str) {
    {
        let mut s = seen.lock().unwrap();
        s.now += 1;
        s.peak = s.peak.max(s.now);
    }
    tokio::time::sleep(DELAY).await;
    let mut s = seen.lock().unwrap();
    s.now -= 1;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    s.posts.push((uri.path().to_string(), id));
    s.connections.insert(peer);
    (StatusCode::OK, "ok")
}

/// The example with a second policy: decisions of type `fanout.decided`
/// publish five messages, one per channel, through `hook` (the webhook
/// adapter, its manifest declaring the receiver's origin, approved).
fn fanout(receiver: &SlowReceiver) -> Scenario {
    fanout_to(&receiver.origin)
}

/// [`fanout`], to a receiver at `origin`.
fn fanout_to(origin: &str) -> Scenario {
    let s = scenario(1, 1000);
    std::fs::create_dir_all(s.path("state/sent")).unwrap();
    let urls: Vec<String> = (1..=STEPS)
        .map(|n| format!("url-c{n} = \"{origin}/hooks/c{n}\""))
        .collect();
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    config = config.replace(
        "policies = [\"policies/release-readiness.toml\"]",
        "policies = [\"policies/release-readiness.toml\", \"policies/fanout.toml\"]",
    );
    config = config.replace("workers = 1\n", "max-in-flight = 256\n");
    config.push_str(&format!(
        "\n[adapters.hook]\npackage = \"{}/webhook\"\ndirectories = {{ sent = \"state/sent\" }}\n\
         config = {{ {} }}\n",
        handoff::BUILT_PACKAGES_DIR,
        urls.join(", ")
    ));
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    // Its manifest declares the receiver's origin, and is approved so.
    crate::support::servers::approved_copy(&s, "webhook", "https://hooks.slack.com", origin);
    let steps: String = (1..=STEPS)
        .map(|n| {
            format!(
                "[[step]]\nid = \"tell-{n}\"\nadapter = \"hook\"\n\
                 record = {{ kind = \"channel\", id = \"c{n}\" }}\n\
                 action = {{ publish = {{ subject = \"{{{{event.data.review_id}}}} step {n}\" }} }}\n\
                 done-when = {{ applied = true }}\n"
            )
        })
        .collect();
    let policy = format!(
        "[policy]\nid = \"fanout\"\nversion = \"1\"\n\
         [trigger]\ntype = \"fanout.decided\"\nstates = [\"accepted\"]\n\
         [source]\nadapter = \"governance\"\nrecord = {{ kind = \"review\", id = \"{{{{event.data.review_id}}}}\" }}\n\
         must-match = {{ state = \"accepted\" }}\nrevalidate = \"once\"\n\
         business-key = [\"{{{{event.data.review_id}}}}\"]\n{steps}\
         [follow-up]\nroute-to = \"release-coordinator\"\n"
    );
    std::fs::write(s.path("policies/fanout.toml"), policy).unwrap();
    let policy = handoff::policy::Policy::load(&s.path("policies/fanout.toml")).unwrap();
    s.store().approve_policy(&policy, "release-owner").unwrap();
    s
}

/// Accepted reviews `RV-f0` .. `RV-f{n-1}` in the governance system.
fn reviews(s: &Scenario, n: usize) {
    for i in 0..n {
        s.write_record(
            "governance",
            "review",
            &format!("RV-f{i}"),
            json!({ "state": "accepted", "revision": 1, "fields": {} }),
        );
    }
}

/// The decision on review `RV-f{i}`, as its source sends it.
fn decision(i: usize) -> serde_json::Value {
    json!({
        "specversion": "1.0", "id": format!("fanout-{i}"), "source": SOURCE,
        "type": "fanout.decided",
        "data": { "review_id": format!("RV-f{i}"), "state": "accepted" },
    })
}

/// Post decision `i`, signed, to the service's events `url` (from any
/// thread): the id of its run.
fn post_decision(url: &str, i: usize) -> String {
    let body = decision(i).to_string().into_bytes();
    let mut request = ureq::post(url);
    for (k, v) in signed(&format!("msg-{i}"), &body) {
        request = request.set(k, &v);
    }
    let r: serde_json::Value = request.send_bytes(&body).unwrap().into_json().unwrap();
    r["run_id"].as_str().unwrap().to_string()
}

/// Post decision `i` to `service`, which takes it (202): its run's id.
fn accept(service: &Service, i: usize) -> String {
    let body = decision(i).to_string().into_bytes();
    let (code, r) = service.post(&signed(&format!("msg-{i}"), &body), &body);
    assert_eq!(code, 202, "{r}");
    r["run_id"].as_str().unwrap().to_string()
}

#[test]
fn two_hundred_runs_at_once_write_each_step_once() {
    let receiver = SlowReceiver::start();
    let s = fanout(&receiver);
    reviews(&s, RUNS);
    let service = Service::start(&s, None);
    // Sent from 8 threads at once, as a busy source would.
    let url = format!("{}/v1/events", service.url);
    let runs: Vec<String> = std::thread::scope(|scope| {
        let url = &url;
        let senders: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    let mut runs = Vec::new();
                    for i in (0..RUNS).filter(|i| i % 8 == t) {
                        runs.push(post_decision(url, i));
                    }
                    runs
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let started = Instant::now();
    for run_id in &runs {
        assert_eq!(outcome_of(&s, run_id), "completed", "{run_id}");
    }
    let took = started.elapsed();

    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.posts.len(), RUNS * STEPS, "one post per step per run");
    let mut per_channel: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys: Vec<&str> = Vec::new();
    for (path, key) in &seen.posts {
        *per_channel.entry(path.as_str()).or_default() += 1;
        keys.push(key.as_str());
    }
    assert!(per_channel.values().all(|n| *n == RUNS), "{per_channel:?}");
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), RUNS * STEPS, "every key once");
    // The adapter's own record agrees: each channel's log holds each run's key once.
    for n in 1..=STEPS {
        let log = std::fs::read_to_string(s.path(&format!("state/sent/c{n}.sent"))).unwrap();
        assert_eq!(log.lines().count(), RUNS, "c{n}");
    }
    // Driven together, not one after another: many requests were open at
    // once (one at a time, 200 runs of five 20 ms posts would take 20 s).
    // How many depends on how fast runs start on this machine's cores;
    // eight is well above what two runs at a time could show.
    assert!(seen.peak >= 8, "at most {} posts at once", seen.peak);
    // Posts go on connections the adapter instance keeps open between
    // calls, not one connection each.
    let connections = seen.connections.len();
    assert!(
        connections <= RUNS * STEPS / 2,
        "{connections} connections for {} posts",
        RUNS * STEPS
    );
    eprintln!(
        "{RUNS} runs of {STEPS} posts at {DELAY:?} each: {took:?} after the last was accepted, \
         at most {} posts at once, on {connections} connections",
        seen.peak
    );
    drop(seen);
    // The service counts the same: a request on each new connection, the
    // others on kept ones.
    let (_, metrics) = service.get("/metrics");
    let count = |connection: &str| -> usize {
        let line = format!("handoff_outbound_requests_total{{connection=\"{connection}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line}in {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        (count("new"), count("new") + count("kept")),
        (connections, RUNS * STEPS)
    );
    the_chain_holds_each_runs_rows_in_their_order(&s, RUNS);
}

#[test]
fn a_command_of_another_process_writes_its_run_while_the_service_commits_in_groups() {
    let receiver = SlowReceiver::start();
    let s = fanout(&receiver);
    // Decisions keep arriving at the service until the command is done
    // (at most this many), so its runs are in flight all along.
    let most = 400;
    reviews(&s, most + 1);
    let service = Service::start(&s, None);
    let url = format!("{}/v1/events", service.url);
    // The last decision goes through `handoff run`, another process on
    // the same store, while the service's runs hold batches open.
    std::fs::write(s.path("cli-event.json"), decision(most).to_string()).unwrap();
    let cli_done = std::sync::atomic::AtomicBool::new(false);
    let (runs, cli) = std::thread::scope(|scope| {
        let (url, cli_done) = (&url, &cli_done);
        let sender = scope.spawn(move || {
            let mut runs = Vec::new();
            for i in 0..most {
                if cli_done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                runs.push(post_decision(url, i));
            }
            runs
        });
        let cli = s.handoff(&[
            "run",
            "--event",
            "cli-event.json",
            "--context",
            "context.json",
            "--json",
        ]);
        cli_done.store(true, std::sync::atomic::Ordering::SeqCst);
        (sender.join().unwrap(), cli)
    });
    let served = runs.len();
    assert_eq!(cli.status.code(), Some(0), "{}", text(&cli.stderr));
    let report: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(report["outcome"], "completed", "{report}");
    for run_id in &runs {
        assert_eq!(outcome_of(&s, run_id), "completed", "{run_id}");
    }
    drop(service);
    let seen = receiver.seen.lock().unwrap();
    let mut keys: Vec<&str> = seen.posts.iter().map(|(_, key)| key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(
        keys.len(),
        (served + 1) * STEPS,
        "every step of every run once"
    );
    drop(seen);
    the_chain_holds_each_runs_rows_in_their_order(&s, served + 1);
    // The command wrote while the service did: rows of the service's runs
    // lie between its first and its last.
    let cli_run = report["run_id"].as_str().unwrap();
    let store = s.store();
    let between: i64 = store
        .conn()
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE run_id != ?1 AND seq > \
             (SELECT MIN(seq) FROM audit WHERE run_id = ?1) AND seq < \
             (SELECT MAX(seq) FROM audit WHERE run_id = ?1)",
            [cli_run],
            |r| r.get(0),
        )
        .unwrap();
    assert!(between > 0, "the command ran alone: nothing to show");
}

/// Runs in flight together commit their rows in shared transactions: the
/// chain still verifies, and each run's rows are in the order of its
/// transitions (every step observed, then applied, then verified; the
/// run's end last).
fn the_chain_holds_each_runs_rows_in_their_order(s: &Scenario, runs: usize) {
    let verify = s.handoff(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let store = s.store();
    let conn = store.conn().unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT run_id, kind, json_extract(payload, '$.key') FROM audit \
             WHERE run_id IN (SELECT run_id FROM runs WHERE policy_id = 'fanout') ORDER BY seq",
        )
        .unwrap();
    let mut per_run: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
    {
        let (run, kind, key): (String, String, Option<String>) = row.unwrap();
        per_run.entry(run).or_default().push((kind, key));
    }
    assert_eq!(per_run.len(), runs);
    for (run, rows) in &per_run {
        assert_eq!(
            rows.first().map(|r| r.0.as_str()),
            Some("event-received"),
            "{run}"
        );
        assert_eq!(
            rows.last().map(|r| r.0.as_str()),
            Some("run-completed"),
            "{run}"
        );
        let at = |kind: &str, key: &str| {
            rows.iter()
                .rposition(|(k, x)| k == kind && x.as_deref() == Some(key))
        };
        let keys: std::collections::BTreeSet<&str> =
            rows.iter().filter_map(|(_, key)| key.as_deref()).collect();
        assert_eq!(keys.len(), STEPS, "{run}: {rows:?}");
        for key in keys {
            let (observed, applied, verified) = (
                at("step-observed", key),
                at("step-applied", key),
                at("step-verified", key),
            );
            // (A step found done under our key after a restart is verified
            // without being applied again.)
            let order_holds = match (observed, applied, verified) {
                (Some(o), Some(a), Some(v)) => o < a && a < v,
                (Some(o), None, Some(v)) => o < v,
                _ => false,
            };
            assert!(order_holds, "{run} {key}: {rows:?}");
        }
    }
}
