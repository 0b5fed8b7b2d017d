//! `handoff serve` intake under load, printed as numbers (not a pass/fail
//! test). Loopback only, bounded: N signed events from C client threads.
//!
//! Run: `cargo bench -p handoff --bench serve [-- N [C]]` (default 5000, 8).
//!
//! The service runs in this process on 127.0.0.1 with the example policy
//! and an on-disk SQLite store (WAL). Each request is a structured
//! CloudEvent signed as Standard Webhooks, for a decision of its own, so
//! each one is verified, parsed, matched to the policy, filled in and
//! stored with its run and audit row before the 202 goes back. Meanwhile
//! the workers drive those runs (each halts at revalidation, since the
//! benchmark's reviews do not exist in the records), competing for the same
//! two cores and the same database. Reported: events accepted per second,
//! and the latency from sending a request to reading its answer (p50, p99).
//! Also the process's resident memory once the service is ready and after
//! the events (the service with its clients). (Memory with runs in flight:
//! `--bench latency`.)
//! Goal on this machine: >= 2,000 events/s with p99 < 20 ms.

mod common;

use common::rss_mib;
use handoff::config::Config;
use handoff::demo::Workspace;
use handoff::serve::signature::standard_key;
use handoff::store::Durability;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The example as `handoff demo` writes it (adapters and policy approved),
/// with a `[serve]` section taking signed events from the benchmark.
fn workspace(root: &Path, n: usize) -> Config {
    let built = Path::new(handoff::BUILT_PACKAGES_DIR);
    let ws = Workspace::create(&root.join("ws"), built, &root.join("cache")).unwrap();
    std::fs::write(ws.path("webhook-secret"), SECRET).unwrap();
    let config_path = ws.path("handoff.toml");
    let config = std::fs::read_to_string(&config_path).unwrap()
        + &format!(
            "\n[serve]\ncontext = \"context.json\"\nworkers = 1\nmax-queued = {}\n\
             reconcile-seconds = 0\n\n[serve.sources.\"governance/bench\"]\n\
             signature = \"standard-webhooks\"\nsecrets = [{{ file = \"webhook-secret\" }}]\n",
            n + 10
        );
    std::fs::write(&config_path, config).unwrap();
    Config::load(&config_path).unwrap()
}

fn body(i: usize) -> Vec<u8> {
    json!({
        "specversion": "1.0", "id": format!("bench-{i}"), "source": "governance/bench",
        "type": "release.review.decided",
        "data": {"review_id": format!("RV-b{i}"), "review_version": "1",
                 "release_id": "R-2026.11", "state": "accepted"},
    })
    .to_string()
    .into_bytes()
}

fn main() {
    // As the `handoff` binary does: error values do not walk the stack
    // (`RUST_BACKTRACE=1` would otherwise slow every adapter call).
    // SAFETY: first thing in main, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        handoff::backtraces::leave_off_unless_asked()
    };
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(5000);
    let clients = args.next().unwrap_or(8).max(1);
    println!(
        "serve intake: {n} signed events from {clients} clients over loopback, on-disk SQLite (WAL)"
    );
    for durability in [Durability::Process, Durability::Power] {
        measure(n, clients, durability);
    }
}

fn measure(n: usize, clients: usize, durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = workspace(dir.path(), n);
    config.durability = durability;

    let service = common::Service::start(config, 0);
    let idle_rss = rss_mib();
    let url = service.events_url.clone();
    let key = standard_key(SECRET).unwrap();

    let start = Instant::now();
    let per_client: Vec<Vec<usize>> = (0..clients)
        .map(|c| (0..n).filter(|i| i % clients == c).collect())
        .collect();
    let handles: Vec<_> = per_client
        .into_iter()
        .map(|indexes| {
            let (url, key) = (url.clone(), key.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut latencies = Vec::with_capacity(indexes.len());
                for i in indexes {
                    let (id, body) = (format!("msg-{i}"), body(i));
                    let t = Instant::now();
                    common::post_signed(&agent, &url, &key, &id, &body);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    let busy_rss = rss_mib();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "durability {:<7}  {:>7.0} events/s accepted   p50 {:>9.2?}   p99 {:>9.2?}   max {:>9.2?}   RSS idle {:.0} MiB, after {:.0} MiB   ({} events in {:.2?})",
        format!("{durability:?}").to_lowercase(),
        n as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(99),
        latencies.last().unwrap(),
        idle_rss,
        busy_rss,
        n,
        elapsed
    );
    service.stop();
}
