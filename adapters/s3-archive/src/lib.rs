//! An evidence archive in an S3 bucket, reached through the host's `s3`
//! capability (the host signs every request with credentials this adapter
//! never sees).
//!
//! A `bundle` record's id is the bundle's key under `prefix`. `observe`
//! reports whether it exists, its sha256 (the host streams the object in
//! chunks and the adapter hashes them: nothing is trusted from metadata)
//! and size, its link, and the links attached to it. `attach-link` records
//! a link beside the bundle in one small object, `<key>.links.json`, which
//! holds each link with the idempotency key of the step that attached it:
//! `observe` reports those keys as applied, and an `attach-link` whose key
//! is already there writes nothing.
//!
//! Crash window: none. The key is inside the one object a write replaces
//! (a PUT is whole or not at all), so a run killed after the store took it
//! finds its key on the next observe. Two runs attaching to one bundle at
//! once could each read the list before the other wrote it. In one process
//! the manifest's `one-call-per-record` gives each bundle one call at a
//! time (as it does `fs-records`' records); across processes (two
//! services, or a service and `handoff run`) each write is conditional on
//! the list being the one read (`put-object-if`), so a writer that lost
//! the race reads the list again, with the other's link in it, and adds
//! its own to that.
//!
//! Config: `endpoint` and `bucket` (required), `prefix` (default none),
//! `base_url` (links are `<base_url>/<id>`; without it, `s3://<bucket>/<key>`).

use handoff_sdk::{
    Action, AdapterError, Link, Observed, RecordRef, Target, action_name, export, s3,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

struct Archive;

/// A bundle's attached links, as stored beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Attached {
    links: Vec<Attachment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    url: String,
    title: String,
    key: String,
}

/// The most a links object may weigh.
const MAX_LINKS_BYTES: u32 = 256 * 1024;

struct Place {
    endpoint: String,
    bucket: String,
    key: String,
    id: String,
}

fn required(key: &str) -> Result<String, AdapterError> {
    handoff_sdk::config(key)
        .ok_or_else(|| AdapterError::Invalid(format!("config `{key}` is not set")))
}

fn place(record: &RecordRef) -> Result<Place, AdapterError> {
    if record.kind != "bundle" {
        return Err(AdapterError::Unsupported(format!(
            "s3-archive holds bundles, not {:?}",
            record.kind
        )));
    }
    let id = record.id.trim_start_matches('/').to_string();
    let prefix = handoff_sdk::config("prefix").unwrap_or_default();
    Ok(Place {
        endpoint: required("endpoint")?,
        bucket: required("bucket")?,
        key: format!("{prefix}{id}"),
        id,
    })
}

fn links_key(place: &Place) -> String {
    format!("{}.links.json", place.key)
}

/// How many times an attach reads the list again after another writer
/// changed it between its read and its write.
const ATTEMPTS: u32 = 8;

fn attached(place: &Place) -> Result<Attached, AdapterError> {
    Ok(attached_as_read(place)?.0)
}

/// The attached links, and what a write replacing them must expect: the
/// object as read, or none.
fn attached_as_read(place: &Place) -> Result<(Attached, s3::Expected), AdapterError> {
    let chunk = s3::get_object(
        &place.endpoint,
        &place.bucket,
        &links_key(place),
        0,
        MAX_LINKS_BYTES,
    )?;
    let Some(chunk) = chunk else {
        return Ok((Attached::default(), s3::Expected::Absent));
    };
    if chunk.total_size > u64::from(MAX_LINKS_BYTES) {
        return Err(AdapterError::Invalid(format!(
            "{}: {} bytes of links; at most {MAX_LINKS_BYTES}",
            links_key(place),
            chunk.total_size
        )));
    }
    let links = serde_json::from_slice(&chunk.bytes).map_err(|e| {
        AdapterError::Invalid(format!("{} is not a links object: {e}", links_key(place)))
    })?;
    Ok((links, s3::Expected::Etag(chunk.etag)))
}

/// Add the link under `key` to the bundle's list unless it is there: a
/// write conditional on the list as read, read again when another writer
/// changed it first.
fn attach(place: &Place, link: Attachment) -> Result<(), AdapterError> {
    for _ in 0..ATTEMPTS {
        let (mut attached, expected) = attached_as_read(place)?;
        if attached.links.iter().any(|a| a.key == link.key) {
            return Ok(());
        }
        attached.links.push(link.clone());
        let body = serde_json::to_vec_pretty(&attached).expect("links encode");
        match s3::put_object_if(
            &place.endpoint,
            &place.bucket,
            &links_key(place),
            &body,
            "application/json",
            &expected,
        ) {
            Err(AdapterError::Conflict(_)) => continue,
            done => return done.map(drop),
        }
    }
    Err(AdapterError::Transient(format!(
        "{}: changed by another writer at each of {ATTEMPTS} attempts",
        links_key(place)
    )))
}

fn observe(place: &Place) -> Result<Observed, AdapterError> {
    let mut hasher = Sha256::new();
    let Some((size, etag)) = s3::read_each(&place.endpoint, &place.bucket, &place.key, |bytes| {
        hasher.update(bytes)
    })?
    else {
        return Ok(Observed::missing());
    };
    let link = match handoff_sdk::config("base_url") {
        Some(base) => format!("{}/{}", base.trim_end_matches('/'), place.id),
        None => format!("s3://{}/{}", place.bucket, place.key),
    };
    let attached = attached(place)?;
    let mut links = vec![link.clone()];
    links.extend(attached.links.iter().map(|a| a.url.clone()));
    Ok(Observed {
        exists: true,
        state: "archived".into(),
        revision: Some(etag),
        fields: vec![
            ("sha256".into(), hex::encode(hasher.finalize())),
            ("size".into(), size.to_string()),
            ("url".into(), link),
        ],
        links,
        applied_keys: attached.links.into_iter().map(|a| a.key).collect(),
    })
}

impl Target for Archive {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        observe(&place(&record)?)
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let place = place(&record)?;
        let Action::AttachLink(Link { url, title }) = action else {
            return Err(AdapterError::Unsupported(format!(
                "s3-archive only attaches links, not {}",
                action_name(&action)
            )));
        };
        if s3::head_object(&place.endpoint, &place.bucket, &place.key)?.is_none() {
            return Err(AdapterError::NotFound(format!(
                "no bundle {} in {}",
                place.key, place.bucket
            )));
        }
        attach(&place, Attachment { url, title, key })?;
        observe(&place)
    }
}

export!(Archive: target);

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_sdk::testing::Harness;

    #[test]
    fn only_bundles_are_held_and_the_store_is_reached_through_the_host() {
        let h = Harness::new()
            .config("endpoint", "http://127.0.0.1:8433")
            .config("bucket", "evidence")
            .config("prefix", "releases/");
        let other = RecordRef {
            system: "archive".into(),
            kind: "issue".into(),
            id: "1".into(),
        };
        let err = h.run(|| Archive::observe(other)).unwrap_err();
        assert!(matches!(err, AdapterError::Unsupported(_)), "{err:?}");
        let bundle = RecordRef {
            system: "archive".into(),
            kind: "bundle".into(),
            id: "rel-42/evidence.tar".into(),
        };
        // Natively there is no host: the call says so instead of guessing.
        let err = h.run(|| Archive::observe(bundle)).unwrap_err();
        assert!(matches!(err, AdapterError::Unsupported(_)), "{err:?}");
    }
}
