//! The NATS JetStream door: a durable pull consumer on the operator's
//! stream. Each message is one structured CloudEvent.
//!
//! A message is acknowledged only after its event is stored: a crash before
//! the ack gets it redelivered, and intake recognises it as a duplicate.
//! Room in the run queue is reserved before each message is asked for, so
//! a busy service asks for nothing (the stream holds the backlog,
//! undelivered). An event that can never be taken in (larger than
//! `max-body-bytes`, not JSON, not a CloudEvent, no policy) is terminated,
//! counted, and logged, rather than redelivered forever; a store failure
//! is negatively acknowledged and comes back. A stop gives back what its
//! outstanding pull request brings and sends every acknowledgement before
//! the connection goes.

use super::App;
use super::intake::take;
use crate::config::serve::NatsIntake;
use crate::model::CloudEvent;
use crate::pipeline::RunError;
use anyhow::{Context, Result};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The connection and the durable consumer messages are taken from.
pub(super) struct Door {
    client: async_nats::Client,
    consumer: jetstream::consumer::PullConsumer,
}

/// Connect and make sure the durable consumer exists; refuse to start
/// otherwise, naming what is missing.
pub(super) async fn door(config: &NatsIntake) -> Result<Door> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(config.server.as_str())
        .await
        .with_context(|| format!("serve.nats: connecting to {}", config.server))?;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(&config.stream).await.with_context(|| {
        format!(
            "serve.nats: stream {:?} on {} (create it for the subjects events are published on)",
            config.stream, config.server
        )
    })?;
    let consumer = stream
        .get_or_create_consumer(
            &config.durable,
            pull::Config {
                durable_name: Some(config.durable.clone()),
                filter_subject: config.subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(config.ack_wait_seconds),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("serve.nats: durable consumer {:?}", config.durable))?;
    Ok(Door { client, consumer })
}

/// How long one pull request waits for a message before it is made again;
/// also the longest a stop waits for the one outstanding to end.
const WAIT_FOR_ONE: Duration = Duration::from_secs(1);

/// The most messages asked for at once when several wait in the stream
/// (each with a place in the queue reserved first; each at most the
/// server's largest message, all of them held until they are taken).
const TAKE_AT_MOST: usize = 16;

/// A run-queue place, reserved for the message it is given to.
type Place = tokio::sync::mpsc::OwnedPermit<super::workers::RunTicket>;

/// Take messages until `stop` flips. Every message asked of the server has
/// a place in the queue reserved first: one pull request for one message,
/// waited on with one place held, then, without waiting, as many of those
/// already in the stream as there are places free. A full queue asks for
/// nothing: the backlog stays in the stream, undelivered, with no
/// acknowledgement time running out.
pub(super) async fn run(app: Arc<App>, door: Door, stop: watch::Receiver<bool>) {
    take_until_stopped(&app, &door, stop).await;
    // Acknowledgements (and messages given back) are queued to the
    // connection: sent before the process lets it go, or they are lost and
    // their messages wait out their acknowledgement time. With the
    // connection down there is nothing to wait for.
    let unsent = if !connected(&door.client) {
        Some("the connection is down".to_string())
    } else {
        match tokio::time::timeout(FLUSH_AT_STOP, door.client.flush()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("not sent within {FLUSH_AT_STOP:?}")),
        }
    };
    if let Some(e) = unsent {
        tracing::warn!(error = %e, "serve.nats: acknowledgements not sent before the stop");
    }
    tracing::info!("serve.nats: stopped taking messages");
}

fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// The longest a stop waits for its acknowledgements to be sent.
const FLUSH_AT_STOP: Duration = Duration::from_secs(2);

async fn take_until_stopped(app: &Arc<App>, door: &Door, mut stop: watch::Receiver<bool>) {
    let consumer = &door.consumer;
    let faults = crate::pipeline::faults::Faults::from_env();
    loop {
        let place = tokio::select! {
            _ = stop.changed() => return,
            place = app.queue.clone().reserve_owned() => match place {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        // A stop while the request is being made (it waits only when the
        // connection is down) leaves it; one after is handled with the
        // request in hand.
        let asked = tokio::select! {
            _ = stop.changed() => return,
            asked = ask_for_one(consumer) => asked,
        };
        let first = match asked {
            Ok(mut one) => tokio::select! {
                _ = stop.changed() => {
                    give_back(&mut one, &door.client).await;
                    return;
                }
                first = one.next() => first.transpose(),
            },
            Err(e) => Err(e),
        };
        match first {
            Ok(Some(message)) => handle(app, message, place, &faults).await,
            // Nothing came before the request expired: ask again.
            Ok(None) => continue,
            Err(e) => {
                drop(place);
                tracing::warn!(error = %e, "serve.nats: pull failed; retrying in a second");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        }
        let mut places = Vec::new();
        while places.len() < TAKE_AT_MOST {
            match app.queue.clone().try_reserve_owned() {
                Ok(p) => places.push(p),
                Err(_) => break,
            }
        }
        if places.is_empty() {
            continue;
        }
        let waiting = match consumer.fetch().max_messages(places.len()).messages().await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "serve.nats: pull failed; retrying");
                continue;
            }
        };
        // A fetch answers at once with what is waiting; the places it did
        // not fill go back before any message is taken in.
        let fetched: Vec<_> = waiting.collect().await;
        places.truncate(fetched.len());
        // Each message the server sent has its place: take them all,
        // whatever `stop` says (one left unread would wait out its
        // acknowledgement time before it came back).
        for next in fetched {
            match (next, places.pop()) {
                (Ok(message), Some(place)) => handle(app, message, place, &faults).await,
                // More than asked for: given back, to come again.
                (Ok(message), None) => {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
                (Err(e), _) => {
                    tracing::warn!(error = %e, "serve.nats: pull failed; retrying");
                    break;
                }
            }
        }
    }
}

/// A pull request for one message, waiting for it up to [`WAIT_FOR_ONE`].
async fn ask_for_one(
    consumer: &jetstream::consumer::PullConsumer,
) -> Result<pull::Batch, async_nats::Error> {
    Ok(consumer
        .batch()
        .max_messages(1)
        .expires(WAIT_FOR_ONE)
        .messages()
        .await?)
}

/// Stopping with a pull request outstanding: the server may still hand it
/// a message (one already on its way, or one published before the request
/// ends). Dropped unread, that message would wait out its acknowledgement
/// time (30 s by default) before anyone else got it; so the request is
/// waited out and whatever it brings is given back at once.
async fn give_back(one: &mut pull::Batch, client: &async_nats::Client) {
    if !connected(client) {
        // The server can send nothing, and the request ends with the
        // connection.
        return;
    }
    let until = tokio::time::Instant::now() + WAIT_FOR_ONE + Duration::from_secs(1);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, one.next()).await {
        let _ = message.ack_with(AckKind::Nak(None)).await;
    }
}

/// Take one message in: stored with its run, then acknowledged; refused
/// for good (terminated) if it can never be taken (larger than
/// `max-body-bytes`, not a CloudEvent, not runnable); negatively
/// acknowledged if the store failed.
async fn handle(
    app: &Arc<App>,
    message: jetstream::Message,
    place: Place,
    faults: &crate::pipeline::faults::Faults,
) {
    let arrived = Instant::now();
    // Held to what a webhook's body may be: the same event may come by
    // either door.
    if message.payload.len() > app.max_body_bytes {
        app.metrics.refuse("nats-too-large");
        tracing::warn!(
            bytes = message.payload.len(),
            max_body_bytes = app.max_body_bytes,
            "serve.nats: larger than serve.max-body-bytes; terminated"
        );
        let _ = message.ack_with(AckKind::Term).await;
        return;
    }
    // The subject is the publisher's: shown bounded, and inert in the log.
    let origin = format!(
        "NATS {}",
        crate::kept::inert(&crate::kept::render(&message.subject, 128))
    );
    let event = match CloudEvent::parse(&message.payload, &origin) {
        Ok(e) => e,
        Err(e) => {
            app.metrics.refuse("nats-bad-event");
            tracing::warn!(error = %e, "serve.nats: not a CloudEvent; terminated");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_string());
    match take(app, event, place, arrived, traceparent).await {
        Ok(_) => {
            faults.point("intake", "nats-before-ack").await;
            if let Err(e) = message.ack().await {
                // Redelivered later, then suppressed as a duplicate.
                tracing::warn!(error = %e, "serve.nats: ack failed");
            }
        }
        Err(RunError::Store(e)) => {
            tracing::error!(error = %e, "serve.nats: not stored; redelivering");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        Err(e) => {
            app.metrics.refuse("nats-not-runnable");
            tracing::warn!(error = %e, "serve.nats: cannot run; terminated");
            let _ = message.ack_with(AckKind::Term).await;
        }
    }
}
