//! The workers that drive accepted runs: a fixed number of threads, each
//! with its own engine (its own loaded adapters; the store connection is
//! the one all workers share) and its own single-threaded runtime, taking
//! run ids from one bounded queue.
//! A fixed count bounds how many runs touch the targets at once.

use super::metrics::Metrics;
use crate::pipeline::{Engine, RunError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use tokio::sync::{Mutex, mpsc, watch};
use tracing::Instrument;

pub(super) fn spawn(
    engines: Vec<Engine>,
    receiver: mpsc::Receiver<String>,
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
    receiver: Arc<Mutex<mpsc::Receiver<String>>>,
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
                run_id = queue.recv() => run_id,
            }
        };
        let Some(run_id) = next else { return };
        metrics.queued.fetch_sub(1, Ordering::Relaxed);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let event_id = engine.event_id_of(&run_id).unwrap_or_default();
        let span = tracing::info_span!("run", run_id = %run_id, event_id = %event_id);
        let result = engine.drive(&run_id).instrument(span.clone()).await;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _enter = span.enter();
        match result {
            Ok(report) => tracing::info!(
                outcome = report.outcome.name(),
                follow_up = report.follow_up,
                "run finished"
            ),
            // Another process holds its lease and drives it.
            Err(RunError::Busy { owner, .. }) => tracing::info!(%owner, "run driven elsewhere"),
            Err(e) => tracing::error!(error = %e, "run could not be driven; it stays unfinished"),
        }
    }
}

/// Reconciliation polling on its own thread and engine: a pass at start,
/// then every `every`; the runs it creates join the queue (waiting for
/// room, since they are already stored).
pub(super) fn spawn_reconciler(
    mut engine: Engine,
    every: std::time::Duration,
    context: serde_json::Value,
    queue: mpsc::Sender<String>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("handoff-reconcile".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the reconciler's runtime starts");
            runtime.block_on(async move {
                loop {
                    match engine.reconcile(&context).await {
                        Ok(found) => {
                            if !found.new_runs.is_empty() {
                                tracing::info!(
                                    runs = found.new_runs.len(),
                                    duplicates = found.duplicates,
                                    "reconciliation found decisions no event brought"
                                );
                            }
                            for run_id in found.new_runs {
                                metrics.reconciled.fetch_add(1, Ordering::Relaxed);
                                metrics.queued.fetch_add(1, Ordering::Relaxed);
                                if queue.send(run_id).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reconciliation pass failed; next pass retries"),
                    }
                    // Approvals may have changed between passes.
                    engine.reload_adapters();
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(every) => {},
                    }
                }
            });
        })
        .expect("the reconciler thread starts")
}
