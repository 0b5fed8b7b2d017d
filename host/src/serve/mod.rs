//! `handoff serve`: the long-lived service. Events arrive over HTTP
//! (`POST /v1/events`, signed per source) or from a durable NATS JetStream
//! consumer, or are found by reconciliation polling. Each is stored with
//! its run before the answer (or the ack) goes back; up to `max-in-flight`
//! runs are driven at once, each an async task on a fixed set of threads.
//!
//! ```text
//!  request ─► intake (size, mode, source, signature, event) ─► commit ─► 202
//!  NATS message ─► event ──────────────────────────────────────► (group) ─► ack
//!                                                               │
//!                               bounded run queue ◄─────────────┘ (full: 429)
//!                                      │
//!        max-in-flight run tasks on `threads` threads (one wasmtime engine
//!            and one host for them all, one shared store connection)
//! ```
//!
//! Shutdown (SIGTERM or Ctrl-C): intake answers 503, the listener closes,
//! each task finishes the run it is driving and stops; runs still queued
//! stay unfinished in the store and are queued again on the next start.

pub mod api;
mod commit;
pub mod console;
pub mod intake;
mod listener;
pub mod metrics;
mod nats;
mod probes;
pub mod signature;
mod unrouted;
mod workers;

use crate::config::{Config, Scheme};
use crate::pipeline::{Engine, Host};
use crate::store::Store;
use crate::store::checkpoint::{CHECKPOINT_EVERY, Checkpointer};
use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::routing::{get, post};
use metrics::Metrics;
use serde_json::Value;
use signature::Verifier;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Requests per second each API caller may make, after a burst of
/// [`API_BURST`].
const API_REQUESTS_PER_SECOND: f64 = 20.0;
const API_BURST: f64 = 40.0;

/// What the request handlers share.
pub struct App {
    /// Stores events (the doors' one commit path).
    committer: commit::Committer,
    /// A read connection for `/metrics`.
    reader: std::sync::Mutex<Store>,
    /// A handle on the runs' shared connection, for its group commit's
    /// counts in `/metrics`.
    shared: Store,
    verifiers: BTreeMap<String, Verifier>,
    pub metrics: Arc<Metrics>,
    queue: mpsc::Sender<workers::RunTicket>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    max_queued: usize,
    stopping: AtomicBool,
    ready: AtomicBool,
    /// The people's API: its tokens, rate limit and writing engine.
    api: api::Api,
    /// The web console's sessions and what it shows of the configuration.
    console: console::Console,
}

/// Every source's verifier, with its secrets read now: a missing or weak
/// secret stops the service from starting.
fn verifiers(config: &Config) -> Result<BTreeMap<String, Verifier>> {
    let mut out = BTreeMap::new();
    for (source, sc) in &config.serve.sources {
        let mut keys = Vec::new();
        for (i, secret) in sc.secrets.iter().enumerate() {
            let place = format!("serve.sources.{source:?}.secrets[{i}]");
            let value = secret.read().map_err(|e| anyhow!("{place}: {e}"))?;
            keys.push(match sc.scheme {
                Scheme::StandardWebhooks => {
                    signature::standard_key(&value).map_err(|e| anyhow!("{place}: {e}"))?
                }
                Scheme::GitHub if value.len() < 16 => {
                    return Err(anyhow!(
                        "{place}: the secret is {} bytes; use at least 16",
                        value.len()
                    ));
                }
                Scheme::GitHub => value.into_bytes(),
            });
        }
        let verifier = match sc.scheme {
            Scheme::StandardWebhooks => Verifier::StandardWebhooks {
                keys,
                tolerance_secs: sc.tolerance_secs,
            },
            Scheme::GitHub => Verifier::GitHub { secrets: keys },
        };
        out.insert(source.clone(), verifier);
    }
    Ok(out)
}

/// Serve until `shutdown` resolves. `on_ready` is told the bound address
/// once everything is set up and requests are about to be taken.
pub async fn serve(
    config: &Config,
    store_path: PathBuf,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let serve = &config.serve;
    let verifiers = verifiers(config)?;
    // Read now, kept as hashes: a token that cannot be read stops the start.
    let tokens = api::auth::Tokens::read(&config.access).map_err(|e| anyhow!(e))?;
    if tokens.is_empty() {
        tracing::info!("no [roles.NAME] tokens: the API under /v1 refuses every caller");
    }
    if verifiers.is_empty() {
        tracing::warn!("no [serve.sources]: every event will be refused as from an unknown source");
    }
    let context = match &serve.context {
        None => Value::Object(Default::default()),
        Some(path) => crate::files::read_json(path, "serve.context", serve.max_body_bytes)?,
    };
    // Connected before anything else starts, so a wrong stream or server
    // refuses the start with the reason.
    let nats_consumer = match &serve.nats {
        Some(n) => Some(nats::door(n).await?),
        None => None,
    };
    // Intake writes on the runs' shared connection, in their groups: its
    // events share the runs' commits and syncs, and it answers only once
    // the group carrying them is durable (`commit.rs`). Opened first, so
    // the store's directory and schema exist before the checkpointer
    // connects.
    let intake_store = Store::open(&store_path)
        .with_context(|| format!("opening the store at {}", store_path.display()))?;
    intake_store.commit_in_groups(config.durability)?;
    // Checkpoints happen on their own thread, not inside the commit of a
    // run or a request that happens to fill the log.
    let checkpointer = Checkpointer::start(&store_path, CHECKPOINT_EVERY)
        .with_context(|| format!("starting checkpoints of {}", store_path.display()))?;
    let open = || {
        let store = Store::open(&store_path)
            .with_context(|| format!("opening the store at {}", store_path.display()))?;
        // Many runs' writes share commits and syncs; each waits for them before its
        // next write to a target, and the API before it answers.
        store.commit_in_groups(config.durability)?;
        store.leave_checkpoints_to(&checkpointer)?;
        anyhow::Ok(store)
    };
    intake_store.leave_checkpoints_to(&checkpointer)?;
    // What would refuse events or stop runs is said at the start, not at
    // the first event that needs it (`handoff check` lists the same).
    let findings = crate::readiness::check(config, &intake_store)?;
    for finding in &findings {
        if let Some(problem) = &finding.problem {
            tracing::warn!(subject = %finding.subject, %problem, "not ready");
        }
    }
    // What the process builds once (the sandbox with its one wasmtime
    // engine and clients, loaded adapters, policies, one throttle so that
    // `[adapters.X] concurrency` limits the process): every engine below
    // shares it.
    let host = Host::for_runs(config, serve.max_in_flight)?;
    let metrics = Arc::new(Metrics::with_throttle(host.throttle().clone()));
    let timed = metrics.clone();
    let host = Arc::new(host.with_timings(Arc::new(move |what, took| timed.timed(what, took))));
    let shared = intake_store.handle();
    let intake_engine = Engine::with_host(host.clone(), intake_store);
    let unfinished = crate::store::runs::unfinished_with_events(&*intake_engine.store().conn()?)?;
    let (queue, receiver) = mpsc::channel(serve.max_queued);
    let mut engines = Vec::new();
    for _ in 0..serve.max_in_flight {
        engines.push(Engine::with_host(host.clone(), open()?));
    }

    let app = Arc::new(App {
        committer: commit::Committer::start(intake_engine, context.clone())
            .context("starting the intake thread")?,
        // The metrics count whole tables: on a connection of their own, so
        // the workers do not wait for them.
        reader: std::sync::Mutex::new(
            Store::open_unshared(&store_path)
                .with_context(|| format!("opening the store at {}", store_path.display()))?,
        ),
        shared,
        verifiers,
        metrics: metrics.clone(),
        queue: queue.clone(),
        max_body_bytes: serve.max_body_bytes,
        body_read_timeout: Duration::from_secs(serve.body_read_timeout_secs),
        max_queued: serve.max_queued,
        stopping: AtomicBool::new(false),
        ready: AtomicBool::new(false),
        api: api::Api {
            tokens,
            limit: api::auth::RateLimit::new(API_REQUESTS_PER_SECOND, API_BURST),
            roles: config.roles.clone(),
            writer: std::sync::Mutex::new(Engine::with_host(host.clone(), open()?)),
        },
        console: console::Console {
            sessions: console::session::Sessions::new(
                serve
                    .public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
            ),
            findings,
            verifying: tokio::sync::Mutex::new(()),
        },
    });
    let (stop, stopped) = watch::channel(false);
    let mut workers = workers::spawn(
        engines,
        serve.run_threads(),
        receiver,
        stopped.clone(),
        metrics.clone(),
    );
    if serve.deliver_secs > 0 {
        workers.push(workers::spawn_deliverer(
            Engine::with_host(host.clone(), open()?),
            Duration::from_secs(serve.deliver_secs),
            app.clone(),
            stopped.clone(),
        ));
    }
    if serve.reconcile_secs > 0 {
        workers.push(workers::spawn_reconciler(
            Engine::with_host(host.clone(), open()?),
            Duration::from_secs(serve.reconcile_secs),
            app.clone(),
            stopped,
        ));
    }

    // Runs left unfinished by an earlier process go first.
    if !unfinished.is_empty() {
        tracing::info!(runs = unfinished.len(), "resuming unfinished runs");
        let metrics = metrics.clone();
        tokio::spawn(async move {
            for (run_id, event_id) in unfinished {
                metrics.queued.fetch_add(1, Ordering::Relaxed);
                if queue
                    .send(workers::RunTicket {
                        run_id,
                        event_id,
                        traceparent: None,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }

    let nats_task =
        nats_consumer.map(|c| tokio::spawn(nats::run(app.clone(), c, stop.subscribe())));

    let router = Router::new()
        .route("/v1/events", post(intake::post_event))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::render_metrics))
        .merge(api::routes())
        .merge(console::routes())
        .fallback(unrouted::no_such_path)
        .method_not_allowed_fallback(unrouted::no_such_method)
        .with_state(app.clone());
    log_anchor(&app, "start");
    if serve.anchor_log_secs > 0 {
        tokio::spawn(log_anchors(
            app.clone(),
            Duration::from_secs(serve.anchor_log_secs),
            stop.subscribe(),
        ));
    }
    if let Some(days) = config.retain_days {
        tokio::spawn(prune_periodically(
            store_path.clone(),
            days,
            stop.subscribe(),
        ));
    }
    app.ready.store(true, Ordering::SeqCst);
    on_ready(listener.local_addr()?);
    let stopping = app.clone();
    let limits = listener::Limits {
        max_connections: serve.max_connections,
        header_read_timeout: Duration::from_secs(serve.header_read_timeout_secs),
    };
    // A store that refuses every write (a group of writes could not be
    // committed) stops the service as a signal does, and the process then
    // exits with an error: a supervisor that restarts what fails (systemd's
    // `Restart=on-failure`) starts it again, and the runs resume from what
    // the store holds. Until then it answers 503.
    listener::serve(listener, router, limits, async move {
        tokio::select! {
            () = shutdown => {
                tracing::info!("stopping: intake closed, letting the runs in flight finish");
            }
            why = stopping.shared.until_writes_refused() => {
                tracing::error!(
                    why = %crate::kept::render(&why, 200),
                    "stopping: the store refuses every write; handoff exits with an error, to \
                     be started again (the runs resume from what the store holds)"
                );
            }
        }
        stopping.stopping.store(true, Ordering::SeqCst);
        stopping.ready.store(false, Ordering::SeqCst);
    })
    .await;

    let _ = stop.send(true);
    if let Some(task) = nats_task {
        let _ = task.await;
    }
    let grace = Duration::from_secs(serve.shutdown_grace_secs);
    let joined = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    });
    if tokio::time::timeout(grace, joined).await.is_err() {
        tracing::warn!(
            "runs still in flight after {grace:?} (serve.shutdown-grace-seconds); they stay \
             unfinished in the store and resume on the next start"
        );
    }
    log_anchor(&app, "stop");
    match app.shared.writes_refused() {
        Some(why) => Err(anyhow!(
            "the store refuses every write ({}); start handoff again: the runs resume from \
             what the store holds",
            crate::kept::render(&why, 200)
        )),
        None => Ok(()),
    }
}

/// Log the audit head as an anchor: logs shipped elsewhere then hold
/// anchors that `handoff audit verify --anchor` can check the store against.
fn log_anchor(app: &App, when: &'static str) {
    // An anchor kept elsewhere names rows that are on disk.
    let synced = app
        .api
        .writer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .store()
        .durable_blocking();
    if let Err(e) = synced {
        tracing::warn!(error = %e, "the store could not be synced; no anchor logged");
        return;
    }
    let store = app.reader.lock().unwrap_or_else(|p| p.into_inner());
    match store.audit_head() {
        Ok(Some(anchor)) => tracing::info!(%anchor, when, "audit head (an anchor to keep)"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the audit head"),
    }
}

/// [`log_anchor`] every `every`, until the service stops.
async fn log_anchors(app: Arc<App>, every: Duration, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let app = app.clone();
                let _ = tokio::task::spawn_blocking(move || log_anchor(&app, "periodic")).await;
            }
            _ = stopped.changed() => return,
        }
    }
}

/// `[store] retain-days`: prune at the start and every hour.
async fn prune_periodically(path: PathBuf, days: u32, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_secs(3600);
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let path = path.clone();
                let pruned = tokio::task::spawn_blocking(move || {
                    Store::open(&path).and_then(|mut s| s.prune_older_than(days))
                })
                .await;
                match pruned {
                    Ok(Ok(p)) => tracing::info!(runs = p.runs, steps = p.steps, decisions = p.decisions, days, "pruned finished runs (store.retain-days)"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "pruning the store failed; it is tried again in an hour"),
                    Err(e) => tracing::warn!(error = %e, "pruning the store stopped"),
                }
            }
            _ = stopped.changed() => return,
        }
    }
}
