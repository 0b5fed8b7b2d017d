//! Intake for everything the service takes in. One thread owns the intake
//! engine; each door (HTTP, NATS) hands it an event and waits for the
//! answer. The thread takes whatever has arrived while it was storing the
//! previous lot and stores it all in one write, on the runs' shared
//! connection, so its rows join the runs' group commits and syncs
//! (`store/group/`) instead of paying for commits and syncs of their own;
//! alone, an event is committed at once. No answer leaves before its
//! commit (and, with `durability = "power"`, its sync).

use crate::model::CloudEvent;
use crate::pipeline::{Accepted, Engine, RunError};
use crate::store::StoreError;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// The most events stored in one transaction: enough to carry a burst, few
/// enough that the first of them is not kept waiting long.
const MAX_BATCH: usize = 64;

struct Job {
    event: CloudEvent,
    reply: oneshot::Sender<Result<Accepted, RunError>>,
}

/// Where the doors send events to be stored.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Start the committing thread. It stops when every `Committer` clone
    /// is dropped.
    pub fn start(mut engine: Engine, context: Value) -> std::io::Result<Committer> {
        let (jobs, mut queue) = mpsc::channel::<Job>(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("handoff-intake".into())
            .spawn(move || {
                while let Some(first) = queue.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let events: Vec<&CloudEvent> = batch.iter().map(|j| &j.event).collect();
                    let mut answers = engine.accept_batch(&events, &context);
                    // No answer before the group carrying the events is
                    // durable (intake writes on the runs' connection).
                    if let Err(e) = engine.store().durable_blocking() {
                        tracing::error!(error = %e, "stored events could not be made durable");
                        for answer in answers.iter_mut().filter(|a| a.is_ok()) {
                            *answer = Err(RunError::Store(StoreError::Unavailable(
                                "the event could not be made durable",
                            )));
                        }
                    }
                    for (job, answer) in batch.into_iter().zip(answers) {
                        // The door may have gone (client hung up): the event is stored anyway.
                        let _ = job.reply.send(answer);
                    }
                }
            })?;
        Ok(Committer { jobs })
    }

    /// Store `event` with its run (or recognise a duplicate). When this
    /// returns `Ok`, the event is durable.
    pub async fn accept(&self, event: CloudEvent) -> Result<Accepted, RunError> {
        let stopped = || RunError::Store(StoreError::Unavailable("the intake writer has stopped"));
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { event, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
