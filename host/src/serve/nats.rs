//! The NATS JetStream door: a durable pull consumer on the operator's
//! stream. Each message is one structured CloudEvent.
//!
//! A message is acknowledged only after its event is stored: a crash before
//! the ack gets it redelivered, and intake recognises it as a duplicate.
//! Room in the run queue is reserved before the next message is taken, so a
//! busy service simply stops pulling (the stream holds the backlog). An event
//! that can never be taken in (not JSON, not a CloudEvent, no policy) is
//! terminated, counted, and logged, rather than redelivered forever; a store
//! failure is negatively acknowledged and comes back.

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

/// Connect and make sure the durable consumer exists; refuse to start
/// otherwise, naming what is missing.
pub(super) async fn consumer(config: &NatsIntake) -> Result<jetstream::consumer::PullConsumer> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(config.server.as_str())
        .await
        .with_context(|| format!("serve.nats: connecting to {}", config.server))?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&config.stream).await.with_context(|| {
        format!(
            "serve.nats: stream {:?} on {} (create it for the subjects events are published on)",
            config.stream, config.server
        )
    })?;
    stream
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
        .with_context(|| format!("serve.nats: durable consumer {:?}", config.durable))
}

/// Take messages until `stop` flips.
pub(super) async fn run(
    app: Arc<App>,
    consumer: jetstream::consumer::PullConsumer,
    mut stop: watch::Receiver<bool>,
) {
    let faults = crate::pipeline::faults::Faults::from_env();
    let mut messages = match consumer.messages().await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "serve.nats: cannot pull; NATS intake is off");
            return;
        }
    };
    loop {
        // Room first: while the workers are behind, nothing is pulled.
        let permit = tokio::select! {
            _ = stop.changed() => return,
            permit = app.queue.clone().reserve_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let message = tokio::select! {
            _ = stop.changed() => return,
            next = messages.next() => match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "serve.nats: pull failed; retrying");
                    continue;
                }
                None => return,
            },
        };
        let arrived = Instant::now();
        let event = match CloudEvent::parse(&message.payload, &format!("NATS {}", message.subject))
        {
            Ok(e) => e,
            Err(e) => {
                app.metrics.refuse("nats-bad-event");
                tracing::warn!(error = %e, "serve.nats: not a CloudEvent; terminated");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let traceparent = message
            .headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .map(|v| v.as_str().to_string());
        match take(&app, event, permit, arrived, traceparent).await {
            Ok(_) => {
                faults.point("intake", "nats-before-ack");
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
}
