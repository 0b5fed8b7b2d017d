//! What drives accepted runs: up to `max-in-flight` at once, each an async
//! task on one of `threads` threads (three per core by default), each thread
//! a runtime of its own; each task's engine is on the process's one host
//! (one wasmtime engine, one set of loaded adapters and clients) and its
//! shared store connection, and the tickets come from one bounded queue. A run waiting on a target holds no thread, so the
//! count bounds how many runs touch the targets at once, not how many
//! threads the process has. The reconciler is a door like the others: what
//! it finds goes through the commit path, with room in the queue reserved
//! first.

use super::App;
use super::metrics::Metrics;
use crate::pipeline::{Engine, RunError};
use crate::store::StoreError;
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

/// Drive runs on `threads` threads of their own, the engines shared out
/// among them. On each thread a dispatcher takes a ticket only when one of
/// its engines is idle, and drives the run on it as a task of its own (a
/// local task: the pipeline's futures stay on the thread that started
/// them); the engine comes back when the run ends. Each handle ends once
/// `stop` is set and its runs in flight have finished.
pub(super) fn spawn(
    engines: Vec<Engine>,
    threads: usize,
    receiver: mpsc::Receiver<RunTicket>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let receiver = Arc::new(Mutex::new(receiver));
    let threads = threads.clamp(1, engines.len().max(1));
    let mut shares: Vec<Vec<Engine>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, engine) in engines.into_iter().enumerate() {
        shares[n % threads].push(engine);
    }
    shares
        .into_iter()
        .enumerate()
        .map(|(n, engines)| {
            let (receiver, stop, metrics) = (receiver.clone(), stop.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("handoff-runs-{n}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runs thread's runtime starts");
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&runtime, dispatch(engines, receiver, stop, metrics));
                })
                .expect("a runs thread starts")
        })
        .collect()
}

/// One thread's dispatcher: an idle engine, then a ticket, then the run as
/// a local task; at the end, every engine back.
async fn dispatch(
    engines: Vec<Engine>,
    receiver: Arc<Mutex<mpsc::Receiver<RunTicket>>>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let count = engines.len();
    let (idle_tx, mut idle) = mpsc::channel::<Engine>(count.max(1));
    for engine in engines {
        idle_tx.try_send(engine).expect("room for every engine");
    }
    loop {
        if *stop.borrow() {
            break;
        }
        // An idle engine first: while every one is busy, the queue fills
        // and the doors push back.
        let engine = tokio::select! {
            biased;
            _ = stop.changed() => None,
            engine = idle.recv() => engine,
        };
        let Some(mut engine) = engine else { break };
        let ticket = {
            let mut queue = receiver.lock().await;
            tokio::select! {
                biased;
                _ = stop.changed() => None,
                ticket = queue.recv() => ticket,
            }
        };
        let Some(ticket) = ticket else {
            let _ = idle_tx.try_send(engine);
            break;
        };
        let (back, metrics) = (idle_tx.clone(), metrics.clone());
        tokio::task::spawn_local(async move {
            drive(&mut engine, ticket, &metrics).await;
            let _ = back.send(engine).await;
        });
    }
    // Every engine back: every run in flight on this thread has finished.
    drop(idle_tx);
    let mut back = 0;
    while back < count && idle.recv().await.is_some() {
        back += 1;
    }
}

/// Drive one run, and say how it ended.
async fn drive(engine: &mut Engine, ticket: RunTicket, metrics: &Metrics) {
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
        // Held up past its lease (the process paused, say): another driver
        // claimed the run, and this one stopped before its next write.
        Err(RunError::Store(StoreError::LeaseLost { holder, .. })) => tracing::warn!(
            %run_id,
            %event_id,
            %holder,
            "run taken over by another driver while this one was held up; stopped without writing"
        ),
        Err(e) => tracing::error!(
            %run_id,
            %event_id,
            error = %e,
            "run could not be driven; it stays unfinished"
        ),
    }
}

/// Passes of `pass` on a thread of its own, with its own runtime: one at
/// start, then one every `every` until the service stops; a pass that says
/// more is waiting goes again at once. Between passes the loaded adapters
/// are forgotten if an approval was given or revoked meanwhile.
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
                    if let Err(e) = engine.host().follow_approvals(engine.store()) {
                        tracing::warn!(error = %e, "approvals could not be read; loaded adapters forgotten");
                        engine.reload_adapters();
                    }
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
            match &pass {
                Ok(found) => app
                    .metrics
                    .reconcile_passed_over
                    .fetch_add(found.passed_over as u64, Ordering::Relaxed),
                Err(_) => app.metrics.reconcile_failed.fetch_add(1, Ordering::Relaxed),
            };
            match pass {
                Ok(found) if !found.new_runs.is_empty() || found.passed_over > 0 => tracing::info!(
                    runs = found.new_runs.len(),
                    duplicates = found.duplicates,
                    passed_over = found.passed_over,
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
