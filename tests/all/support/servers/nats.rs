//! NATS JetStream read back by the tests' own client (async-nats).

use super::*;

/// NATS JetStream as the tests see it: the stream that captures `handoff.>`
/// and the `review-queue` bucket, through async-nats directly.
pub struct Nats {
    pub server: String,
    rt: tokio::runtime::Runtime,
    js: async_nats::jetstream::Context,
}

impl Nats {
    pub fn from_env() -> Nats {
        let url = env_var("HANDOFF_TEST_NATS_URL");
        Nats::connect(url.trim_start_matches("nats://"))
    }

    /// Connect to a server at `IP:port` and make sure the stream and the
    /// bucket exist.
    pub fn connect(server: &str) -> Nats {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let js = rt.block_on(async {
            let client = async_nats::connect(server)
                .await
                .unwrap_or_else(|e| panic!("connect to NATS {server}: {e} ({NEEDS})"));
            let js = async_nats::jetstream::new(client);
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: STREAM.into(),
                subjects: vec!["handoff.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
            // The bucket's stream is made by hand, shaped the way the KV API
            // expects: async-nats 0.51's `create_key_value` cannot read the
            // answer of the NATS 2.9 server Debian ships, while reading and
            // deleting entries works.
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: format!("KV_{BUCKET}"),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 5,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .unwrap();
            js
        });
        Nats {
            server: server.to_string(),
            rt,
            js,
        }
    }

    pub fn put_entry(&self, key: &str, value: Value) {
        self.rt.block_on(async {
            let kv = self.js.get_key_value(BUCKET).await.unwrap();
            kv.put(key, value.to_string().into()).await.unwrap();
        });
    }

    /// The entry's latest operation (`Put`, `Delete`...) and value.
    pub fn entry(&self, key: &str) -> Option<(String, String)> {
        self.rt.block_on(async {
            let kv = self.js.get_key_value(BUCKET).await.unwrap();
            kv.entry(key).await.unwrap().map(|e| {
                (
                    format!("{:?}", e.operation),
                    String::from_utf8_lossy(&e.value).into_owned(),
                )
            })
        })
    }

    /// Every message the stream holds on a subject: (Nats-Msg-Id, payload).
    pub fn messages(&self, subject: &str) -> Vec<(String, Value)> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        use futures_util::StreamExt;
        self.rt.block_on(async {
            let stream = self.js.get_stream(STREAM).await.unwrap();
            let mut consumer = stream
                .create_consumer(pull::Config {
                    filter_subject: subject.into(),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::None,
                    ..Default::default()
                })
                .await
                .unwrap();
            let pending = consumer.info().await.unwrap().num_pending as usize;
            let mut out = Vec::new();
            if pending == 0 {
                return out;
            }
            let mut batch = consumer
                .batch()
                .max_messages(pending)
                .messages()
                .await
                .unwrap();
            while out.len() < pending {
                let m = batch.next().await.unwrap().unwrap();
                let id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                out.push((id, serde_json::from_slice(&m.payload).unwrap()));
            }
            out
        })
    }
}

/// The server scripts/test-servers starts, which the nats manifest declares.
pub const SHARED_NATS: &str = "127.0.0.1:4322";

pub const STREAM: &str = "HANDOFF";

pub const BUCKET: &str = "review-queue";
