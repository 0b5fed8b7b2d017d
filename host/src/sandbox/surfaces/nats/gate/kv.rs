//! The key-value half of the gate: a bucket's entries, read and deleted
//! (a delete marker left, carrying the step's key when asked).

use super::*;

impl NatsGate {
    async fn bucket(
        &self,
        server: &str,
        bucket: &str,
        key: &str,
        what: &str,
    ) -> Result<
        (
            async_nats::jetstream::kv::Store,
            async_nats::jetstream::Context,
        ),
        AdapterError,
    > {
        if !valid_key(key) {
            return Err(AdapterError::Invalid(format!(
                "{what}: key {key:?}: a key is letters, digits and '-/_=.', not starting or ending with '.'"
            )));
        }
        let addr = self.check(server, ScopeKind::Bucket, bucket, what)?;
        let js = self.jetstream(addr).await?;
        let store = js.get_key_value(bucket).await.map_err(|e| {
            use async_nats::jetstream::context::KeyValueErrorKind as K;
            match e.kind() {
                K::GetBucket => {
                    AdapterError::NotFound(format!("bucket {bucket} on nats {addr}: {e}"))
                }
                _ => AdapterError::Transient(format!("bucket {bucket} on nats {addr}: {e}")),
            }
        })?;
        Ok((store, js))
    }

    pub async fn kv_get(
        &self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<KvEntry>, AdapterError> {
        let (store, _) = self.bucket(&server, &bucket, &key, "kv-get").await?;
        let entry = store
            .entry(key.clone())
            .await
            .map_err(|e| AdapterError::Transient(format!("kv-get {bucket}/{key}: {e}")))?;
        Ok(entry.map(|e| KvEntry {
            revision: e.revision,
            deleted: e.operation != async_nats::jetstream::kv::Operation::Put,
            value: e.value.to_vec(),
        }))
    }

    pub async fn kv_delete(
        &self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<(), AdapterError> {
        let (store, _) = self.bucket(&server, &bucket, &key, "kv-delete").await?;
        store
            .delete(key.clone())
            .await
            .map_err(|e| AdapterError::Transient(format!("kv-delete {bucket}/{key}: {e}")))
    }

    /// A delete marker as `kv_delete` leaves it, carrying `msg_id`.
    pub async fn kv_delete_keyed(
        &self,
        server: String,
        bucket: String,
        key: String,
        msg_id: String,
    ) -> Result<(), AdapterError> {
        valid_msg_id("kv-delete-keyed", &msg_id)?;
        let (store, js) = self.bucket(&server, &bucket, &key, "kv-delete").await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let transient = |e: &dyn fmt::Display| {
            AdapterError::Transient(format!("kv-delete {bucket}/{key}: {e}"))
        };
        js.publish_with_headers(
            // Where the bucket takes its writes (another one's, for a
            // mirror), as the client's own delete sends it.
            format!(
                "{}{key}",
                store.put_prefix.as_ref().unwrap_or(&store.prefix)
            ),
            headers,
            "".into(),
        )
        .await
        .map_err(|e| transient(&e))?
        .await
        .map_err(|e| transient(&e))?;
        Ok(())
    }

    pub async fn kv_msg_id(
        &self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<String>, AdapterError> {
        let (store, _) = self.bucket(&server, &bucket, &key, "kv-get").await?;
        match store
            .stream
            .get_last_raw_message_by_subject(&format!("{}{key}", store.prefix))
            .await
        {
            Ok(message) => Ok(message.headers.get("Nats-Msg-Id").map(|id| id.to_string())),
            Err(e) => {
                use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
                match e.kind() {
                    K::NoMessageFound => Ok(None),
                    _ => Err(AdapterError::Transient(format!(
                        "kv-msg-id {bucket}/{key}: {e}"
                    ))),
                }
            }
        }
    }
}
