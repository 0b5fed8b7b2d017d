//! Runs in flight against targets that take their time, printed as
//! numbers (not a pass/fail test).
//!
//! Run: `cargo bench -p handoff --bench latency [-- DELAYS_MS... [--in-flight N]... [--https]]`
//! (default delays 0 5 20, in flight 1 16 64 256; the store's durability
//! is `power` unless `HANDOFF_STORE_DURABILITY` says otherwise; with
//! `--https` the target speaks HTTPS, its certificate for 127.0.0.1 from a
//! CA made with `openssl` for the run and trusted through the instance's
//! `http-ca-file`).
//!
//! `handoff serve` runs in this process on 127.0.0.1 with a policy of five
//! `publish` steps through the `webhook` adapter, whose target is a
//! loopback HTTP server in this process that answers each post after a set
//! delay (so a run waits five delays). Signed events for decisions of
//! their own arrive from 8 client threads; for each delay and each
//! `max-in-flight` (1, 16, 64, 256) it prints runs per second (from the
//! first event sent to the last run finished), the run latency from the
//! store's own times (p50, p99, from the event's arrival: queueing
//! included), what `in-flight / run latency` would allow, the process's
//! CPU time per run, and its resident memory before and at its peak (the
//! service with its load generator and target).

mod common;

use common::{cpu_time, rss_mib};
use handoff::config::Config;
use handoff::demo::Workspace;
use handoff::serve::signature::standard_key;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STEPS: usize = 5;
const IN_FLIGHT: [usize; 4] = [1, 16, 64, 256];

/// A runtime of one thread for a target, and a listener on 127.0.0.1.
fn loopback_listener() -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    (runtime, listener)
}

/// A loopback target that answers every request after `delay`.
fn slow_target(delay: Duration) -> (String, tokio::runtime::Runtime) {
    let (runtime, listener) = loopback_listener();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "ok"
    });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, runtime)
}

/// What an HTTPS target needs: a CA and a certificate for 127.0.0.1 signed
/// by it (P-256 keys, so that the target's signing weighs little in the
/// process's CPU), made in `dir` with `openssl`. The CA's path.
fn certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("--https needs the openssl command");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = ["req", "-x509", "-days", "2", "-subj", "/CN=bench CA"];
    let ca_files = ["-keyout", "ca.key", "-out", "ca.pem"];
    openssl(&[&ca[..], &key, &ca_files].concat());
    let server = ["req", "-subj", "/CN=127.0.0.1", "-keyout", "server.key"];
    openssl(&[&server[..], &key, &["-out", "server.csr"]].concat());
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}

/// A loopback HTTPS target that answers every request after `delay`, with
/// the certificate [`certificates`] made in `dir`: its origin and runtime.
fn slow_tls_target(delay: Duration, dir: &Path) -> (String, tokio::runtime::Runtime) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let (runtime, listener) = loopback_listener();
    let origin = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let answer = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let _ = request.into_body().collect().await;
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(hyper::body::Bytes::from_static(b"ok")),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), answer)
                    .await;
            });
        }
    });
    (origin, runtime)
}

/// The example workspace with a `fanout` policy (five posts through the
/// webhook adapter to `origin`, trusting `ca` for HTTPS when given) taking
/// signed events, and `n` accepted reviews for it.
fn workspace(root: &Path, origin: &str, ca: Option<&Path>, n: usize, in_flight: usize) -> Config {
    let built = Path::new(handoff::BUILT_PACKAGES_DIR);
    // One artifact cache for every measurement: adapters are compiled once,
    // not inside each measurement's clock.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("latency-artifact-cache");
    let ws = Workspace::create(&root.join("ws"), built, &cache).unwrap();
    let package = ws.path("packages/webhook");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::copy(
        built.join("webhook/webhook.wasm"),
        package.join("webhook.wasm"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(built.join("webhook/adapter.toml")).unwrap();
    std::fs::write(
        package.join("adapter.toml"),
        manifest.replace("https://hooks.slack.com", origin),
    )
    .unwrap();
    let mut store = handoff::store::Store::open(&ws.config.store_path).unwrap();
    let pkg = handoff::sandbox::package::Package::read(&package).unwrap();
    store
        .approve_adapter(&handoff::store::adapters::NewApproval::of(&pkg, "bench"))
        .unwrap();
    std::fs::create_dir_all(ws.path("state/sent")).unwrap();
    // Channels in use: each one's index of sent keys has its 256 bucket
    // files (the SDK's `sent` format) already, as after its first few
    // hundred posts. Made inside the clock, their creation measured the
    // file system's inode allocator more than handoff (see
    // docs/benchmarks.md).
    for k in 1..=STEPS {
        let index = ws.path(&format!("state/sent/c{k}.index"));
        std::fs::create_dir_all(&index).unwrap();
        for bucket in 0..=255u8 {
            std::fs::write(index.join(format!("{bucket:02x}")), b"").unwrap();
        }
        std::fs::write(index.join(".complete"), b"").unwrap();
    }
    let steps: String = (1..=STEPS)
        .map(|k| {
            format!(
                "[[step]]\nid = \"tell-{k}\"\nadapter = \"hook\"\n\
                 record = {{ kind = \"channel\", id = \"c{k}\" }}\n\
                 action = {{ publish = {{ subject = \"{{{{event.data.review_id}}}} step {k}\" }} }}\n\
                 done-when = {{ applied = true }}\n"
            )
        })
        .collect();
    std::fs::write(
        ws.path("policies/fanout.toml"),
        format!(
            "[policy]\nid = \"fanout\"\nversion = \"1\"\n\
             [trigger]\ntype = \"fanout.decided\"\nstates = [\"accepted\"]\n\
             [source]\nadapter = \"governance\"\n\
             record = {{ kind = \"review\", id = \"{{{{event.data.review_id}}}}\" }}\n\
             must-match = {{ state = \"accepted\" }}\nrevalidate = \"once\"\n\
             business-key = [\"{{{{event.data.review_id}}}}\"]\n{steps}\
             [follow-up]\nroute-to = \"release-coordinator\"\n"
        ),
    )
    .unwrap();
    let policy = handoff::policy::Policy::load(&ws.path("policies/fanout.toml")).unwrap();
    store.approve_policy(&policy, "bench").unwrap();
    for i in 0..=n {
        std::fs::write(
            ws.path(&format!("state/governance/review/RV-f{i}.json")),
            r#"{ "state": "accepted", "revision": 1, "fields": {} }"#,
        )
        .unwrap();
    }
    std::fs::write(ws.path("webhook-secret"), SECRET).unwrap();
    let urls: Vec<String> = (1..=STEPS)
        .map(|k| format!("url-c{k} = \"{origin}/hooks/c{k}\""))
        .collect();
    let config_path = ws.path("handoff.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "policies = [\"policies/release-readiness.toml\"]",
        "policies = [\"policies/release-readiness.toml\", \"policies/fanout.toml\"]",
    ) + &format!(
        "\n[adapters.hook]\npackage = \"packages/webhook\"\n{}\
             directories = {{ sent = \"state/sent\" }}\nconfig = {{ {} }}\n\n\
             [serve]\ncontext = \"context.json\"\nmax-in-flight = {in_flight}\n\
             max-queued = {}\nreconcile-seconds = 0\ndeliver-seconds = 0\n\n\
             [serve.sources.\"governance/bench\"]\nsignature = \"standard-webhooks\"\n\
             secrets = [{{ file = \"webhook-secret\" }}]\n",
        ca.map(|ca| format!("http-ca-file = {:?}\n", ca.display().to_string()))
            .unwrap_or_default(),
        urls.join(", "),
        n + 10
    );
    std::fs::write(&config_path, config).unwrap();
    Config::load(&config_path).unwrap()
}

fn body(i: usize) -> Vec<u8> {
    json!({
        "specversion": "1.0", "id": format!("fanout-{i}"), "source": "governance/bench",
        "type": "fanout.decided",
        "data": {"review_id": format!("RV-f{i}"), "state": "accepted"},
    })
    .to_string()
    .into_bytes()
}

fn main() {
    // SAFETY: first thing in main, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        handoff::backtraces::leave_off_unless_asked()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut delays: Vec<u64> = Vec::new();
    let mut in_flights: Vec<usize> = Vec::new();
    let mut https = false;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--https" {
            https = true;
        } else if word == "--in-flight" {
            in_flights.extend(words.next().and_then(|n| n.parse::<usize>().ok()));
        } else if let Ok(delay) = word.parse() {
            delays.push(delay);
        }
    }
    if in_flights.is_empty() {
        in_flights = IN_FLIGHT.to_vec();
    }
    if delays.is_empty() {
        delays = vec![0, 5, 20];
    }
    println!(
        "runs in flight: {STEPS} publish steps per run through the webhook adapter to a loopback \
         {} target answering after a delay; on-disk SQLite, durability {}; {} cores",
        if https { "HTTPS" } else { "HTTP" },
        std::env::var("HANDOFF_STORE_DURABILITY").unwrap_or_else(|_| "power".into()),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for delay in delays {
        for &in_flight in &in_flights {
            measure(Duration::from_millis(delay), in_flight, https);
        }
    }
}

fn measure(delay: Duration, in_flight: usize, https: bool) {
    // Enough runs to fill the slots many times over (bounded), so the
    // first wave's start and the last one's end weigh little.
    let n = (in_flight * 16).clamp(100, 1000);
    let dir = tempfile::tempdir().unwrap();
    let (origin, ca, _target) = if https {
        let ca = certificates(dir.path());
        let (origin, target) = slow_tls_target(delay, dir.path());
        (origin, Some(ca), target)
    } else {
        let (origin, target) = slow_target(delay);
        (origin, None, target)
    };
    let config = workspace(dir.path(), &origin, ca.as_deref(), n, in_flight);
    let store_path = config.store_path.clone();
    let service = common::Service::start(config, 1);
    let idle_rss = rss_mib();
    let url = service.events_url.clone();
    let key = standard_key(SECRET).unwrap();
    let post = |agent: &ureq::Agent, i: usize| {
        common::post_signed(agent, &url, &key, &format!("msg-{i}"), &body(i));
    };
    // Warm up outside the clock: one run loads every adapter it calls.
    let reader = handoff::store::Store::open_unshared(&store_path).unwrap();
    let finished = |reader: &handoff::store::Store| -> usize {
        reader
            .conn()
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE outcome IS NOT NULL AND policy_id = 'fanout'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as usize
    };
    post(&ureq::AgentBuilder::new().build(), n);
    while finished(&reader) < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }

    let start = Instant::now();
    let cpu_start = cpu_time();
    let clients = 8;
    let handles: Vec<_> = std::thread::scope(|scope| {
        let post = &post;
        let senders: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    for i in (0..n).filter(|i| i % clients == c) {
                        post(&agent, i);
                    }
                })
            })
            .collect();
        senders.into_iter().map(|h| h.join()).collect()
    });
    for h in handles {
        h.unwrap();
    }
    // Every run finished, as the store says (looked at every 10 ms).
    let mut peak_rss = rss_mib();
    loop {
        peak_rss = peak_rss.max(rss_mib());
        if finished(&reader) > n {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "runs stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu_start;
    // The service's shared connection, found by its path in this process.
    let groups = handoff::store::Store::open(&store_path)
        .unwrap()
        .group_counts()
        .expect("serve commits in groups");
    let mut latencies: Vec<f64> = {
        let conn = reader.conn().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT (julianday(updated_at) - julianday(created_at)) * 86400000.0 FROM runs \
                 WHERE policy_id = 'fanout' AND event_id != ?1",
            )
            .unwrap();
        stmt.query_map([format!("fanout-{n}")], |r| r.get::<_, f64>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let ideal = if delay.is_zero() {
        f64::INFINITY
    } else {
        in_flight as f64 / (STEPS as f64 * delay.as_secs_f64())
    };
    println!(
        "delay {:>4} ms  in flight {:>3}: {:>6.0} runs/s  (in-flight / run latency allows {:>6.0})  \
         run latency p50 {:>7.1} ms  p99 {:>7.1} ms   cpu {:.2} ms/run   {:.1} writes/commit, {:.1} commits/sync   RSS idle {:>5.0} MiB, peak {:>5.0} MiB  ({n} runs in {:.2?})",
        delay.as_millis(),
        in_flight,
        n as f64 / elapsed.as_secs_f64(),
        ideal,
        pct(50),
        pct(99),
        cpu.as_secs_f64() * 1000.0 / n as f64,
        groups.writes as f64 / groups.commits.max(1) as f64,
        groups.commits as f64 / groups.syncs.max(1) as f64,
        idle_rss,
        peak_rss,
        elapsed
    );
    service.stop();
}
