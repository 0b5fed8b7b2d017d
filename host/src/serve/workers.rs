//! The workers that drive accepted runs: a fixed number of threads, each
//! with its own single-threaded runtime and an engine on the process's one
//! host (one wasmtime engine, one set of loaded adapters and clients) and
//! its shared store connection, taking run tickets from one bounded queue.
//! A fixed count bounds how many runs touch the targets at once. The
//! reconciler is a door like the others: what it finds goes through the
//! commit path, with room in the queue reserved first.

use super::App;
use super::metrics::Metrics;
use crate::pipeline::{Engine, RunError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{Mutex, mpsc, watch};

/// What a worker needs to drive a run: its id, and its event's id (for the
/// run's span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTicket {
    pub run_id: String,
    pub event_id: String,
    /// The trace the request that brought the event was in (its
    /// `traceparent` header), for the run to join.
    pub traceparent: Option<String>,
}

pub(super) fn spawn(
    engines: Vec<Engine>,
    receiver: mpsc::Receiver<RunTicket>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let receiver = Arc::new(Mutex::new(receiver));
    engines
        .into_iter()
        .enumerate()
        .map(|(n, engine)| {
            let (receiver, stop, metrics) = (receiver.clone(), stop.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("handoff-worker-{n}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a worker's runtime starts");
                    runtime.block_on(work(engine, receiver, stop, metrics));
                })
                .expect("a worker thread starts")
        })
        .collect()
}

async fn work(
    mut engine: Engine,
    receiver: Arc<Mutex<mpsc::Receiver<RunTicket>>>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let next = {
            let mut queue = receiver.lock().await;
            tokio::select! {
                biased;
                _ = stop.changed() => None,
                ticket = queue.recv() => ticket,
            }
        };
        let Some(ticket) = next else { return };
        metrics.queued.fetch_sub(1, Ordering::Relaxed);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        // The run is its own span (see Engine::drive_traced).
        let result = engine
            .drive_traced(&ticket.run_id, ticket.traceparent.as_deref())
            .await;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let (run_id, event_id) = (&ticket.run_id, &ticket.event_id);
        match result {
            Ok(report) => tracing::info!(
                %run_id,
                %event_id,
                outcome = report.outcome.name(),
                follow_up = report.follow_up,
                "run finished"
            ),
            // Another process holds its lease and drives it.
            Err(RunError::Busy { owner, .. }) => {
                tracing::info!(%run_id, %event_id, %owner, "run driven elsewhere")
            }
            Err(e) => tracing::error!(
                %run_id,
                %event_id,
                error = %e,
                "run could not be driven; it stays unfinished"
            ),
        }
    }
}

/// Passes of `pass` on a thread of its own, with its own runtime: one at
/// start, then one every `every` until the service stops; a pass that says
/// more is waiting goes again at once. Between passes the adapters are
/// loaded afresh: approvals may have changed.
fn spawn_periodic(
    name: &str,
    mut engine: Engine,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
    mut pass: impl AsyncFnMut(&mut Engine) -> bool + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("handoff-{name}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a pass thread's runtime starts");
            runtime.block_on(async move {
                loop {
                    if pass(&mut engine).await {
                        continue;
                    }
                    engine.reload_adapters();
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(every) => {},
                    }
                }
            });
        })
        .expect("a pass thread starts")
}

/// Reconciliation polling on its own thread: a pass at start, then every
/// `every`. Each decision it finds is taken in through the commit path
/// like a webhook's, its run queued with the room reserved first.
pub(super) fn spawn_reconciler(
    engine: Engine,
    every: std::time::Duration,
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    spawn_periodic(
        "reconcile",
        engine,
        every,
        stop,
        async move |engine: &mut Engine| {
            let pass = engine
                .reconcile_with(async |_, event| {
                    let permit = app.queue.clone().reserve_owned().await.map_err(|_| {
                        RunError::Store(crate::store::StoreError::Unavailable(
                            "the run queue has closed",
                        ))
                    })?;
                    let (accepted, _) =
                        super::intake::take(&app, event, permit, Instant::now(), None).await?;
                    if matches!(accepted, crate::pipeline::Accepted::New { .. }) {
                        app.metrics.reconciled.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(accepted)
                })
                .await;
            match pass {
                Ok(found) if !found.new_runs.is_empty() => tracing::info!(
                    runs = found.new_runs.len(),
                    duplicates = found.duplicates,
                    "reconciliation found decisions no event brought"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation pass failed; next pass retries")
                }
            }
            false
        },
    )
}

/// The delivery loop: every `every`, the notices whose time has come are
/// sent (on a thread of its own, like the reconciler: a slow mail server
/// holds up no run).
pub(super) fn spawn_deliverer(
    engine: Engine,
    every: std::time::Duration,
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    spawn_periodic(
        "deliver",
        engine,
        every,
        stop,
        async move |engine: &mut Engine| {
            match engine.deliver(jiff::Timestamp::now()).await {
                Ok(done) => {
                    app.metrics
                        .notice_retries
                        .fetch_add(done.retried as u64, Ordering::Relaxed);
                    if done != Default::default() {
                        tracing::info!(
                            sent = done.sent,
                            retried = done.retried,
                            failed = done.failed,
                            cancelled = done.cancelled,
                            "notices delivered"
                        );
                    }
                    // A full pass leaves more due: go on at once.
                    done.sent + done.retried + done.failed + done.cancelled
                        >= crate::pipeline::deliver::NOTICES_PER_PASS
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delivery pass failed; next pass retries");
                    false
                }
            }
        },
    )
}
