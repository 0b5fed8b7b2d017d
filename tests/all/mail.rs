//! The `smtp` adapter over STARTTLS, against the receiver that
//! `scripts/test-servers start` runs beside the plain one: it refuses mail
//! before STARTTLS and presents a certificate for smtp.handoff.test from a
//! CA made on each start. What arrived is read from its Maildir.

use crate::servers::env_var;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::approval::Change;
use handoff::sandbox::{Action, AdapterError, LoadError, Message};
use handoff::store::Store;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const CERTIFICATE_NAME: &str = "smtp.handoff.test";

/// The built smtp adapter with its mail grant for `server` over
/// `transport` (the manifest lines for `tls`, or none).
fn smtp_package(server: &str, transport: &str) -> TempDir {
    let manifest = std::fs::read_to_string(built("smtp").join("adapter.toml")).unwrap();
    let start = manifest.find("[[capabilities.smtp]]").unwrap();
    let end = start + manifest[start..].find("senders").unwrap();
    let grant = format!("[[capabilities.smtp]]\nserver = \"{server}\"\n{transport}");
    package(
        "smtp",
        &format!("{}{grant}{}", &manifest[..start], &manifest[end..]),
    )
}

/// The grant's lines for STARTTLS with the certificate verified for `name`.
fn starttls(name: &str) -> String {
    format!("tls = \"starttls\"\ntls-name = \"{name}\"\n")
}

/// The instance an operator binds: the server, sender and role address as
/// config, the sent log's directory, and the CA file when given.
fn instance(dir: &Path, server: &str, sent: &Path, ca: Option<PathBuf>) -> AdapterInstance {
    let mut i = AdapterInstance::new("notify", dir);
    for (k, v) in [
        ("server", server),
        ("from", "handoff@example.internal"),
        (
            "to-release-coordinators",
            "release-coordinators@example.internal",
        ),
    ] {
        i.config.insert(k.into(), v.into());
    }
    i.directories.insert("sent".into(), sent.to_path_buf());
    i.smtp_ca_file = ca;
    i
}

/// Publish one message with `key` through the adapter; its answer.
fn publish(loaded: &handoff::sandbox::LoadedAdapter, key: &str) -> Result<(), AdapterError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut instance = loaded.instantiate().await.unwrap();
        let message = Action::Publish(Message {
            subject: "Release R-1 closure done".into(),
            body: String::new(),
            links: vec![],
        });
        instance
            .apply(&rec("channel", "release-coordinators"), &message, key)
            .await
            .unwrap()
            .map(|_| ())
    })
}

/// How many mails in the STARTTLS receiver's Maildir carry `key`.
fn received(key: &str) -> usize {
    let dir = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_MAILDIR")).join("new");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            std::fs::read_to_string(e.as_ref().unwrap().path())
                .unwrap()
                .contains(key)
        })
        .count()
}

fn unique_key(what: &str) -> String {
    format!("hk1-{what}-{}", std::process::id())
}

#[test]
fn mail_over_starttls_arrives_once_with_the_servers_certificate_verified() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let ca = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_CA"));
    let dir = smtp_package(&server, &starttls(CERTIFICATE_NAME));
    let sent = tempfile::tempdir().unwrap();
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &instance(dir.path(), &server, sent.path(), Some(ca)),
    );
    let key = unique_key("starttls");
    publish(&loaded, &key).unwrap();
    assert_eq!(received(&key), 1);
    // The sent log recognises it: a second publish sends nothing.
    publish(&loaded, &key).unwrap();
    assert_eq!(received(&key), 1);
}

#[test]
fn a_certificate_for_another_name_or_from_an_unknown_ca_stops_the_mail() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let ca = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_CA"));
    for (name, ca, case) in [
        ("other.handoff.test", Some(ca), "another name"),
        (CERTIFICATE_NAME, None, "the public roots only"),
    ] {
        let dir = smtp_package(&server, &starttls(name));
        let sent = tempfile::tempdir().unwrap();
        let loaded = approved(
            &sandbox(),
            dir.path(),
            &instance(dir.path(), &server, sent.path(), ca),
        );
        let key = unique_key(&case.replace(' ', "-"));
        let err = publish(&loaded, &key).unwrap_err();
        // Final, not retried: it would not verify the next time either.
        let AdapterError::Denied(why) = &err else {
            panic!("{case}: {err:?}");
        };
        assert!(why.contains("invalid peer certificate"), "{case}: {why}");
        assert_eq!(received(&key), 0, "{case}");
    }
}

#[test]
fn plain_text_to_a_server_that_requires_starttls_is_refused_by_the_server() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let dir = smtp_package(&server, "");
    let sent = tempfile::tempdir().unwrap();
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &instance(dir.path(), &server, sent.path(), None),
    );
    let key = unique_key("plain");
    let err = publish(&loaded, &key).unwrap_err();
    assert!(matches!(err, AdapterError::Conflict(_)), "{err:?}");
    assert!(format!("{err:?}").contains("STARTTLS"), "{err:?}");
    assert_eq!(received(&key), 0);
}

#[test]
fn a_grant_that_drops_starttls_is_refused_until_approved_again() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let dir = smtp_package(&server, &starttls(CERTIFICATE_NAME));
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sent = tempfile::tempdir().unwrap();
    let bound = instance(dir.path(), &server, sent.path(), None);
    let sandbox = sandbox();
    load(&sandbox, &store, dir.path(), &bound).expect("loads as approved");

    let plain = smtp_package(&server, "");
    std::fs::copy(
        plain.path().join("adapter.toml"),
        dir.path().join("adapter.toml"),
    )
    .unwrap();
    let err = load(&sandbox, &store, dir.path(), &bound).unwrap_err();
    let LoadError::Widened { changes, .. } = &err else {
        panic!("expected widened, got {err}");
    };
    assert!(
        changes.contains(&Change::Widened(format!("smtp {server} over plain"))),
        "{changes:?}"
    );
}

#[test]
fn a_ca_file_that_is_not_a_certificate_stops_the_load() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let dir = smtp_package(&server, &starttls(CERTIFICATE_NAME));
    let sent = tempfile::tempdir().unwrap();
    let not_pem = sent.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &instance(dir.path(), &server, sent.path(), Some(not_pem.clone())),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("smtp-ca-file") && text.contains(&not_pem.display().to_string()),
        "{text}"
    );
}
