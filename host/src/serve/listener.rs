//! The HTTP listener, bounded: at most `max-connections` connections at
//! once, and each must send a request's headers within
//! `header-read-timeout-seconds` of the connection going quiet: a
//! connection that trickles its headers, or says nothing at all, or stays
//! idle between requests, is closed then. (A slow body is bounded in
//! [`super::intake`].)
//!
//! When every place is taken, the connection that has waited longest for
//! a request's headers, or for an event's body, is closed to make room for
//! the new one: so slow or silent clients cannot
//! hold every place, and a well-formed request is answered at once (a
//! request whose body has arrived is never cut). Only when every
//! connection is busy answering does a new one wait, in the kernel's
//! backlog, before it takes a file of this process.
//!
//! On shutdown, accepting stops and each open connection finishes the
//! request it is in, then closes.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

/// What bounds the listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// One open connection, as the listener knows it.
struct Open {
    /// Since when it has been waiting for a request's headers; none while
    /// a request is being answered.
    waiting_since: Option<Instant>,
    /// Dropped (or sent) to close it.
    close: Option<oneshot::Sender<()>>,
}

/// Every open connection, by number.
#[derive(Default)]
pub struct Connections(Mutex<BTreeMap<u64, Open>>);

/// Put in each `POST`'s extensions: intake says through it when the body
/// has arrived, from which point the connection is busy, not waiting.
#[derive(Clone)]
pub struct Reading {
    connections: Arc<Connections>,
    id: u64,
}

impl Reading {
    /// The body is in: the request is being answered.
    pub fn body_read(&self) {
        self.connections.set_waiting(self.id, false);
    }
}

impl Connections {
    fn set_waiting(&self, id: u64, waiting: bool) {
        if let Some(open) = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&id)
        {
            open.waiting_since = waiting.then(Instant::now);
        }
    }

    /// Close the connection that has waited longest for headers, if any
    /// is waiting.
    fn evict_the_longest_waiting(&self) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = open
            .iter()
            .filter(|(_, o)| o.close.is_some())
            .filter_map(|(id, o)| o.waiting_since.map(|t| (t, *id)))
            .min();
        match oldest.and_then(|(_, id)| open.get_mut(&id)) {
            Some(o) => {
                drop(o.close.take());
                true
            }
            None => false,
        }
    }
}

/// Serve `router` on `listener` until `shutdown` completes, then let the
/// open connections finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let room = Arc::new(Semaphore::new(limits.max_connections));
    let connections = Arc::new(Connections::default());
    let (close_all, closing) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match room.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Full: make room by closing the longest-waiting idle
                // connection, or wait for a busy one to finish.
                connections.evict_the_longest_waiting();
                tokio::select! {
                    () = &mut shutdown => break,
                    p = room.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let (close, closed) = oneshot::channel();
        connections
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Open {
                    waiting_since: Some(Instant::now()),
                    close: Some(close),
                },
            );
        let service = {
            let (router, connections) = (router.clone(), connections.clone());
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                let connections = connections.clone();
                if request.method() == http::Method::POST {
                    // Still waiting, for its body, until intake has it.
                    request.extensions_mut().insert(Reading {
                        connections: connections.clone(),
                        id,
                    });
                } else {
                    connections.set_waiting(id, false);
                }
                async move {
                    let answer = tower_service::Service::call(&mut router, request).await;
                    connections.set_waiting(id, true);
                    answer
                }
            })
        };
        let mut closing = closing.clone();
        let connections = connections.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // Evicted: it was waiting for headers, so nothing is cut.
                _ = closed => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            connections
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
        while tasks.try_join_next().is_some() {}
    }
    let _ = close_all.send(true);
    while tasks.join_next().await.is_some() {}
}
