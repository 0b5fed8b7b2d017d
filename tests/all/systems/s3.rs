//! The S3 surface and the `s3-archive` adapter against the real store that
//! `scripts/test-servers start` runs (SeaweedFS, with an `evidence` bucket
//! and credentials made on each start). Objects are put and read back by
//! the test through the store's own filer API, not through handoff.
//!
//! The hostile cases: another bucket, a key outside the prefix (and one
//! that reads as another path), a write under a read-only grant, more put
//! in one call than a call may, a presigned URL smuggled through HTTP, and
//! credentials that never reach the adapter.

use crate::support::servers::{S3Store as Store, env_var};
use crate::support::*;
use handoff::config::{AdapterInstance, SecretSource};
use handoff::sandbox::decision::{CapabilityDecision, Verdict};
use handoff::sandbox::{Action, AdapterError, Instance, Link, LoadedAdapter, Observed};
use rusty_s3::S3Action;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tempfile::TempDir;

/// A key of this test's own under the granted prefix.
fn fresh(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("releases/{name}-{nanos}")
}

/// The built s3-archive with its grant for the test store: the bucket and
/// prefix as given, in `mode`.
fn archive_package(store: &Store, bucket: &str, prefix: &str, mode: &str) -> TempDir {
    let manifest = std::fs::read_to_string(built("s3-archive").join("adapter.toml")).unwrap();
    let start = manifest.find("[[capabilities.s3]]").unwrap();
    let end = start + manifest[start..].find("[limits]").unwrap();
    let grant = format!(
        "[[capabilities.s3]]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n\
         mode = \"{mode}\"\ncredentials = {{ access-key = \"s3_access_key\", secret-key = \"s3_secret_key\" }}\n\n",
        store.endpoint
    );
    package(
        "s3-archive",
        &format!("{}{grant}{}", &manifest[..start], &manifest[end..]),
    )
}

/// The instance an operator binds: endpoint and bucket as config, the
/// credentials as secrets from the environment.
fn archive_instance(dir: &std::path::Path, store: &Store, bucket: &str) -> AdapterInstance {
    let mut i = AdapterInstance::new("archive", dir);
    i.config.insert("endpoint".into(), store.endpoint.clone());
    i.config.insert("bucket".into(), bucket.into());
    i.config.insert(
        "base_url".into(),
        "https://evidence.example.internal".into(),
    );
    with_credentials(&mut i);
    i
}

/// The store's credentials as the instance's secrets, from the environment.
fn with_credentials(i: &mut AdapterInstance) {
    for (name, var) in [
        ("s3_access_key", "HANDOFF_TEST_S3_ACCESS_KEY"),
        ("s3_secret_key", "HANDOFF_TEST_S3_SECRET_KEY"),
    ] {
        i.secrets
            .sources
            .insert(name.into(), SecretSource::Env(var.into()));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One observe on a fresh instance: its answer and the decisions it made.
fn observe(
    loaded: &LoadedAdapter,
    id: &str,
) -> (Result<Observed, AdapterError>, Vec<CapabilityDecision>) {
    runtime().block_on(async {
        let mut instance = loaded.instantiate().await.unwrap();
        let answer = instance.observe(&rec("bundle", id)).await.unwrap();
        (answer, instance.take_decisions())
    })
}

/// One attach-link on a fresh instance.
fn attach(
    loaded: &LoadedAdapter,
    id: &str,
    key: &str,
) -> (Result<Observed, AdapterError>, Vec<CapabilityDecision>) {
    runtime().block_on(async {
        let mut instance: Instance = loaded.instantiate().await.unwrap();
        let action = Action::AttachLink(Link {
            url: "https://tracker.example.internal/releases/R-42".into(),
            title: "Release record".into(),
        });
        let answer = instance
            .apply(&rec("bundle", id), &action, key)
            .await
            .unwrap();
        (answer, instance.take_decisions())
    })
}

fn denied_s3(decisions: &[CapabilityDecision]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.surface.name == "s3" && d.verdict == Verdict::Denied)
        .map(|d| format!("{} ({})", d.target, d.reason))
        .collect()
}

#[test]
fn a_bundle_is_hashed_as_the_host_streams_it_and_a_link_is_attached_once() {
    let store = Store::from_env();
    // Larger than one chunk (4 MiB), so the hash spans several reads.
    let bundle: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let key = fresh("bundle") + "/evidence.tar";
    store.put(&key, &bundle);
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-write");
    let loaded = approved(
        &sandbox(),
        pkg.path(),
        &archive_instance(pkg.path(), &store, &store.bucket),
    );

    let (seen, decisions) = observe(&loaded, &key);
    let seen = seen.unwrap();
    assert!(seen.exists);
    assert_eq!(field(&seen, "sha256"), hex::encode(Sha256::digest(&bundle)));
    assert_eq!(field(&seen, "size"), bundle.len().to_string());
    assert_eq!(
        seen.links,
        [format!("https://evidence.example.internal/{key}")]
    );
    assert!(denied_s3(&decisions).is_empty(), "{decisions:?}");
    assert!(
        decisions.iter().any(|d| d.surface.name == "s3"
            && d.verdict == Verdict::Allowed
            && d.target.contains(&key)),
        "{decisions:?}"
    );

    let (after, _) = attach(&loaded, &key, "hk1-attach");
    let after = after.unwrap();
    assert!(
        after.applied_keys.contains(&"hk1-attach".to_string()),
        "{after:?}"
    );
    assert!(
        after
            .links
            .contains(&"https://tracker.example.internal/releases/R-42".into())
    );
    // Applied again with the same key (a resumed run): nothing written.
    let (again, _) = attach(&loaded, &key, "hk1-attach");
    assert_eq!(again.unwrap().applied_keys, ["hk1-attach"]);
    let links: serde_json::Value =
        serde_json::from_slice(&store.get(&format!("{key}.links.json")).unwrap()).unwrap();
    assert_eq!(links["links"].as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links["links"][0]["key"], "hk1-attach");

    // A bundle that is not there is missing, not an error.
    let (missing, _) = observe(&loaded, &fresh("none"));
    assert!(!missing.unwrap().exists);
}

#[test]
fn another_bucket_is_denied_before_anything_is_sent() {
    let store = Store::from_env();
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-only");
    let loaded = approved(
        &sandbox(),
        pkg.path(),
        &archive_instance(pkg.path(), &store, "other-bucket"),
    );
    let (answer, decisions) = observe(&loaded, "rel-1/evidence.tar");
    let err = answer.unwrap_err();
    assert!(matches!(err, AdapterError::Denied(_)), "{err:?}");
    let denied = denied_s3(&decisions);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("bucket \"other-bucket\" is not granted"),
        "{denied:?}"
    );
}

#[test]
fn a_key_outside_the_prefix_or_reading_as_another_path_is_denied() {
    let store = Store::from_env();
    let secret_key = "secrets/release-signing.key";
    store.put(secret_key, b"not for adapters");
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-write");
    let mut instance = archive_instance(pkg.path(), &store, &store.bucket);
    instance.config.insert("prefix".into(), "releases/".into());
    let loaded = approved(&sandbox(), pkg.path(), &instance);
    // `releases/../secrets/...`: S3 would take it literally, a proxy or a
    // filer may not; it never leaves the host.
    let (answer, decisions) = observe(&loaded, "../secrets/release-signing.key");
    assert!(matches!(answer, Err(AdapterError::Denied(_))), "{answer:?}");
    assert!(
        denied_s3(&decisions)[0].contains("'..' segment"),
        "{decisions:?}"
    );

    let mut outside = archive_instance(pkg.path(), &store, &store.bucket);
    outside.config.insert("prefix".into(), "secrets/".into());
    let loaded = approved(&sandbox(), pkg.path(), &outside);
    let (answer, decisions) = observe(&loaded, "release-signing.key");
    assert!(matches!(answer, Err(AdapterError::Denied(_))), "{answer:?}");
    let denied = denied_s3(&decisions);
    assert!(
        denied[0].contains("outside the granted prefixes (releases/*)"),
        "{denied:?}"
    );
}

#[test]
fn a_write_under_a_read_only_grant_is_denied_and_nothing_is_written() {
    let store = Store::from_env();
    let key = fresh("read-only") + "/evidence.tar";
    store.put(&key, b"bundle");
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-only");
    let loaded = approved(
        &sandbox(),
        pkg.path(),
        &archive_instance(pkg.path(), &store, &store.bucket),
    );
    assert!(
        observe(&loaded, &key).0.unwrap().exists,
        "reading is granted"
    );
    let (answer, decisions) = attach(&loaded, &key, "hk1-ro");
    assert!(matches!(answer, Err(AdapterError::Denied(_))), "{answer:?}");
    let denied = denied_s3(&decisions);
    assert!(denied[0].starts_with("put s3"), "{denied:?}");
    assert!(denied[0].contains("is read-only"), "{denied:?}");
    assert_eq!(store.get(&format!("{key}.links.json")), None);
}

/// A read-write grant says where an adapter may put, not how much: one
/// call puts at most 64 MiB; the put past it is denied before anything is
/// sent, and the next call may put again.
#[test]
fn what_one_call_puts_is_bounded_and_the_put_past_it_is_never_sent() {
    use handoff::sandbox::surfaces::s3::MOST_PUT_BYTES_PER_CALL;
    let store = Store::from_env();
    let prefix = fresh("flood") + "/part-";
    let grant = format!(
        "[[capabilities.s3]]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"releases/\"\n\
         mode = \"read-write\"\ncredentials = {{ access-key = \"s3_access_key\", secret-key = \"s3_secret_key\" }}\n",
        store.endpoint, store.bucket
    );
    // Sixty-odd MiB through a debug build take more than the probe's second.
    let manifest = probe_manifest("flooder", &grant)
        .replace("call-timeout-ms = 1000", "call-timeout-ms = 60000");
    let pkg = package("probe", &manifest);
    let mut flooder = AdapterInstance::new("flooder", pkg.path());
    with_credentials(&mut flooder);
    let loaded = approved(&sandbox(), pkg.path(), &flooder);
    let fits = MOST_PUT_BYTES_PER_CALL / (4 << 20);
    let put = |instance: &mut Instance, count: u64, from: &str| {
        runtime().block_on(instance.observe(&rec(
            "s3-put",
            &format!("{count} {} {} {prefix}{from}", store.endpoint, store.bucket),
        )))
    };
    let mut instance = runtime().block_on(loaded.instantiate()).unwrap();
    let answer = put(&mut instance, fits + 4, "a").unwrap();
    assert!(
        matches!(&answer, Err(AdapterError::Denied(m)) if m.contains("64 MiB")),
        "{answer:?}"
    );
    let denied = denied_s3(&instance.take_decisions());
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains(&format!("{prefix}a{fits}")),
        "{denied:?}"
    );
    // Every put up to the bound is there, whole; the one past it is not.
    assert_eq!(
        store
            .get(&format!("{prefix}a{}", fits - 1))
            .map(|b| b.len()),
        Some(4 << 20)
    );
    assert_eq!(store.get(&format!("{prefix}a{fits}")), None);
    // The next call has the whole budget again.
    let again = put(&mut instance, 1, "b").unwrap();
    assert!(again.is_ok(), "{again:?}");
    assert!(store.get(&format!("{prefix}b0")).is_some());
}

#[test]
fn a_presigned_url_smuggled_through_http_is_refused_by_the_http_gate() {
    let store = Store::from_env();
    let key = "secrets/presigned-target.key";
    store.put(key, b"reachable only with a signature");
    // A valid presigned URL, made with the store's real credentials: the
    // test fetches it itself to show it works.
    let bucket = rusty_s3::Bucket::new(
        url::Url::parse(&store.endpoint).unwrap(),
        rusty_s3::UrlStyle::Path,
        store.bucket.clone(),
        "us-east-1",
    )
    .unwrap();
    let credentials = rusty_s3::Credentials::new(
        env_var("HANDOFF_TEST_S3_ACCESS_KEY"),
        env_var("HANDOFF_TEST_S3_SECRET_KEY"),
    );
    let presigned = bucket
        .get_object(Some(&credentials), key)
        .sign(Duration::from_secs(300));
    let direct = ureq::get(presigned.as_str())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(direct, "reachable only with a signature");

    // An adapter granted plain HTTP to the store's origin, handed that URL.
    let origin = url::Url::parse(&store.endpoint).unwrap();
    let grant = format!(
        "[[capabilities.http]]\nurl = \"{}://{}:{}\"\nmethods = [\"GET\"]\n",
        origin.scheme(),
        origin.host_str().unwrap(),
        origin.port().unwrap()
    );
    let manifest = probe_manifest("smuggler", &grant)
        .replace("[[capabilities.http]]\nurl = \"http://127.0.0.1:1\"\n", "");
    let pkg = package("probe", &manifest);
    let loaded = approved(
        &sandbox(),
        pkg.path(),
        &AdapterInstance::new("smuggler", pkg.path()),
    );
    let (answer, decisions) = runtime().block_on(async {
        let mut instance = loaded.instantiate().await.unwrap();
        let answer = instance
            .observe(&rec("http", &format!("GET {presigned}")))
            .await
            .unwrap();
        (answer, instance.take_decisions())
    });
    let err = answer.unwrap_err();
    assert!(matches!(err, AdapterError::Denied(_)), "{err:?}");
    let denied: Vec<&CapabilityDecision> = decisions
        .iter()
        .filter(|d| d.surface.name == "http" && d.verdict == Verdict::Denied)
        .collect();
    assert_eq!(denied.len(), 1, "{decisions:?}");
    assert!(
        denied[0].reason.contains("presigned S3 request"),
        "{decisions:?}"
    );
    // The same origin without a signature is reachable: the refusal is
    // about the signature, not the origin.
    let (plain, _) = runtime().block_on(async {
        let mut instance = loaded.instantiate().await.unwrap();
        let answer = instance
            .observe(&rec("http", &format!("GET {}/", store.endpoint)))
            .await
            .unwrap();
        (answer, instance.take_decisions())
    });
    assert_eq!(field(&plain.unwrap(), "status"), "403");
}

#[test]
fn the_credentials_never_reach_the_adapter_and_wrong_ones_are_refused_by_the_store() {
    let store = Store::from_env();
    let secret = env_var("HANDOFF_TEST_S3_SECRET_KEY");
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-only");
    let key = fresh("wrong-secret") + "/evidence.tar";
    store.put(&key, b"bundle");

    // Not bound: the load says which secret and where to set it.
    let mut unbound = archive_instance(pkg.path(), &store, &store.bucket);
    unbound.secrets.sources.remove("s3_secret_key");
    let mut approvals = handoff::store::Store::in_memory().unwrap();
    approve(&mut approvals, pkg.path());
    let err = load(&sandbox(), &approvals, pkg.path(), &unbound)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3_secret_key") && err.contains("[adapters.archive.secrets]"),
        "{err}"
    );

    // Bound to the wrong value: the store refuses, and the refusal is a
    // denial naming the store's reason, not the secret.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-secret").unwrap();
    let mut bad = archive_instance(pkg.path(), &store, &store.bucket);
    bad.secrets.sources.insert(
        "s3_secret_key".into(),
        SecretSource::File(wrong.path().to_path_buf()),
    );
    let loaded = load(&sandbox(), &approvals, pkg.path(), &bad).unwrap();
    let (answer, decisions) = observe(&loaded, &key);
    let err = answer.unwrap_err();
    assert!(
        matches!(err, AdapterError::Denied(ref m) if m.contains("403")),
        "{err:?}"
    );

    // With the right one nothing the adapter or the record can see holds it.
    let good = approved(
        &sandbox(),
        pkg.path(),
        &archive_instance(pkg.path(), &store, &store.bucket),
    );
    let (seen, more) = observe(&good, &key);
    let shown = format!("{seen:?} {decisions:?} {more:?}");
    assert!(!shown.contains(&secret), "the secret leaked: {shown}");
    assert!(
        !shown.contains("X-Amz-Signature"),
        "a signature leaked: {shown}"
    );
}

/// A conditional put writes only over what the writer read: an object made
/// only where none is, replaced only while it is the one read; otherwise
/// the store refuses, nothing is written, and the adapter gets `conflict`.
#[test]
fn a_conditional_put_writes_only_over_the_object_it_read() {
    let store = Store::from_env();
    let key = fresh("conditional");
    let grant = format!(
        "[[capabilities.s3]]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"releases/\"\n\
         mode = \"read-write\"\ncredentials = {{ access-key = \"s3_access_key\", secret-key = \"s3_secret_key\" }}\n",
        store.endpoint, store.bucket
    );
    let pkg = package("probe", &probe_manifest("writer", &grant));
    let mut writer = AdapterInstance::new("writer", pkg.path());
    with_credentials(&mut writer);
    let loaded = approved(&sandbox(), pkg.path(), &writer);
    let put = |expected: &str, body: &str| {
        runtime().block_on(async {
            let mut instance = loaded.instantiate().await.unwrap();
            let arg = format!(
                "{} {} {key} {expected} {body}",
                store.endpoint, store.bucket
            );
            let answer = instance.observe(&rec("s3-put-if", &arg)).await.unwrap();
            answer.map(|seen| {
                seen.fields
                    .iter()
                    .find(|(k, _)| k == "etag")
                    .map(|(_, v)| v.clone())
                    .unwrap()
            })
        })
    };
    let conflict = |answer: Result<String, AdapterError>, says: &str| match answer {
        Err(AdapterError::Conflict(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    };

    let first = put("absent", "one").unwrap();
    assert_eq!(store.get(&key).as_deref(), Some(&b"one"[..]));
    // Another writer made it first.
    conflict(put("absent", "two"), "an object is there");
    assert_eq!(store.get(&key).as_deref(), Some(&b"one"[..]));
    // Replaced while it is the one read...
    let second = put(&first, "three").unwrap();
    assert_ne!(first, second);
    assert_eq!(store.get(&key).as_deref(), Some(&b"three"[..]));
    // ...and not once another write came between.
    conflict(put(&first, "four"), "not the one read");
    assert_eq!(store.get(&key).as_deref(), Some(&b"three"[..]));
    // An entity tag that is no header's is refused before anything is sent.
    let answer = put("a\"b", "five");
    assert!(
        matches!(&answer, Err(AdapterError::Invalid(m)) if m.contains("entity tag")),
        "{answer:?}"
    );
    assert_eq!(store.get(&key).as_deref(), Some(&b"three"[..]));
}

/// Writers attaching links to one bundle at once, each on an instance of
/// its own (as two services on one bucket would: no per-record turn
/// between them), lose none of each other's links.
#[test]
fn links_attached_at_once_by_many_writers_are_all_kept() {
    const WRITERS: usize = 6;
    let store = Store::from_env();
    let pkg = archive_package(&store, &store.bucket, "releases/", "read-write");
    let loaded = approved(
        &sandbox(),
        pkg.path(),
        &archive_instance(pkg.path(), &store, &store.bucket),
    );
    let key = fresh("crowded") + "/evidence.tar";
    store.put(&key, b"evidence");
    let start = std::sync::Barrier::new(WRITERS);
    let answers: Vec<_> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (loaded, key, start) = (&loaded, &key, &start);
                s.spawn(move || {
                    runtime().block_on(async {
                        let mut instance = loaded.instantiate().await.unwrap();
                        let action = Action::AttachLink(Link {
                            url: format!("https://tracker.example.internal/w/{i}"),
                            title: format!("writer {i}"),
                        });
                        start.wait();
                        instance
                            .apply(&rec("bundle", key), &action, &format!("race-{i}"))
                            .await
                            .unwrap()
                    })
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for answer in &answers {
        assert!(answer.is_ok(), "{answer:?}");
    }
    let links: serde_json::Value =
        serde_json::from_slice(&store.get(&format!("{key}.links.json")).unwrap()).unwrap();
    let mut keys: Vec<&str> = links["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    keys.sort();
    let expected: Vec<String> = (0..WRITERS).map(|i| format!("race-{i}")).collect();
    assert_eq!(keys, expected, "{links}");
}
