//! The `smtp` adapter over TLS, against the receivers that
//! `scripts/test-servers start` runs beside the plain one: two refuse mail
//! before STARTTLS, the second of them also requiring a login, and one
//! speaks TLS from the first byte (SMTPS); all present a certificate for
//! smtp.handoff.test from a CA made on each start. What arrived is read
//! from their Maildirs.

use crate::support::servers::{env_var, mails_in};
use crate::support::*;
use handoff::config::{AdapterInstance, SecretSource};
use handoff::sandbox::approval::Change;
use handoff::sandbox::{Action, AdapterError, LoadError, Message};
use handoff::store::Store;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const CERTIFICATE_NAME: &str = "smtp.handoff.test";

/// The built smtp adapter with its mail grant for `server` over
/// `transport` (the manifest lines for `tls`, or none).
pub(super) fn smtp_package(server: &str, transport: &str) -> TempDir {
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
pub(super) fn instance(
    dir: &Path,
    server: &str,
    sent: &Path,
    ca: Option<PathBuf>,
) -> AdapterInstance {
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
    i.surfaces
        .files
        .directories
        .insert("sent".into(), sent.to_path_buf());
    i.surfaces.smtp.smtp_ca_file = ca;
    i
}

/// The smtp adapter granted `server` over `transport`, approved and loaded
/// with a sent log of its own (and the CA file, when given); the
/// directories live as long as it.
pub(super) struct Smtp {
    pub loaded: handoff::sandbox::LoadedAdapter,
    pub sent: TempDir,
    _package: TempDir,
}

pub(super) fn smtp(server: &str, transport: &str, ca: Option<PathBuf>) -> Smtp {
    let package = smtp_package(server, transport);
    let sent = tempfile::tempdir().unwrap();
    let loaded = approved(
        &sandbox(),
        package.path(),
        &instance(package.path(), server, sent.path(), ca),
    );
    Smtp {
        loaded,
        sent,
        _package: package,
    }
}

/// Publish one message with `key` through the adapter; its answer.
pub(super) fn publish(
    loaded: &handoff::sandbox::LoadedAdapter,
    key: &str,
) -> Result<(), AdapterError> {
    publish_as(loaded, key, false)
}

/// [`publish`], saying whether a person resumed the step
/// (`host.person-resumed`).
pub(super) fn publish_as(
    loaded: &handoff::sandbox::LoadedAdapter,
    key: &str,
    person_resumed: bool,
) -> Result<(), AdapterError> {
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
            .apply_as(
                &rec("channel", "release-coordinators"),
                &message,
                key,
                person_resumed,
            )
            .await
            .unwrap()
            .map(|_| ())
    })
}

/// How many mails in the STARTTLS receiver's Maildir carry `key`.
fn received(key: &str) -> usize {
    received_in("HANDOFF_TEST_SMTP_TLS_MAILDIR", key)
}

/// How many mails in the Maildir that `maildir_var` names carry `key`.
pub(super) fn received_in(maildir_var: &str, key: &str) -> usize {
    mails_in(maildir_var, key).len()
}

pub(super) fn unique_key(what: &str) -> String {
    format!("hk1-{what}-{}", std::process::id())
}

/// Publish a message that must not be sent; the adapter's error, once the
/// receiver whose Maildir `maildir_var` names shows it did not arrive.
fn refused(
    loaded: &handoff::sandbox::LoadedAdapter,
    maildir_var: &str,
    what: &str,
) -> AdapterError {
    let key = unique_key(what);
    let err = publish(loaded, &key).expect_err(what);
    assert_eq!(received_in(maildir_var, &key), 0, "{what}");
    err
}

/// The probe adapter granted `server`, from probe@example.internal to
/// example.internal, approved and loaded (its package directory first).
pub(super) fn probe_mailer(server: &str) -> (TempDir, handoff::sandbox::LoadedAdapter) {
    let grant = format!(
        "[[capabilities.smtp]]\nserver = \"{server}\"\nsenders = [\"probe@example.internal\"]\n\
         recipient-domains = [\"example.internal\"]\n"
    );
    let dir = package("probe", &probe_manifest("mailer", &grant));
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("mailer", dir.path()),
    );
    (dir, loaded)
}

/// A grant says who may be written to, not how often: one call sends at
/// most 16 messages; the one past them is denied before it is sent, and
/// the next call may send again.
#[test]
fn what_one_call_sends_is_bounded_and_the_mail_past_it_never_leaves() {
    use handoff::sandbox::surfaces::smtp::MOST_MESSAGES_PER_CALL;
    let server = env_var("HANDOFF_TEST_SMTP_ADDR");
    let (_dir, loaded) = probe_mailer(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = unique_key("flood");
    let mut instance = rt.block_on(loaded.instantiate()).unwrap();
    let mut send = |count: u32, key: &str| {
        rt.block_on(instance.observe(&rec(
            "mail",
            &format!("{count} {server} probe@example.internal ops@example.internal {key}"),
        )))
        .unwrap()
    };
    let answer = send(MOST_MESSAGES_PER_CALL + 4, &key);
    assert!(
        matches!(&answer, Err(AdapterError::Denied(m)) if m.contains("more than 16 messages")),
        "{answer:?}"
    );
    let arrived = |key: &str| mails_in("HANDOFF_TEST_MAILDIR", &format!("Subject: {key} ")).len();
    assert_eq!(arrived(&key) as u32, MOST_MESSAGES_PER_CALL);
    // The next call has the whole budget again.
    let again = unique_key("again");
    assert!(send(1, &again).is_ok());
    assert_eq!(arrived(&again), 1);
}

#[test]
fn mail_over_starttls_arrives_once_with_the_servers_certificate_verified() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let ca = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_CA"));
    let mailer = smtp(&server, &starttls(CERTIFICATE_NAME), Some(ca));
    let loaded = &mailer.loaded;
    let key = unique_key("starttls");
    publish(loaded, &key).unwrap();
    assert_eq!(received(&key), 1);
    // The sent log recognises it: a second publish sends nothing.
    publish(loaded, &key).unwrap();
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
        let mailer = smtp(&server, &starttls(name), ca);
        let loaded = &mailer.loaded;
        let err = refused(
            loaded,
            "HANDOFF_TEST_SMTP_TLS_MAILDIR",
            &case.replace(' ', "-"),
        );
        // Final, not retried: it would not verify the next time either.
        let AdapterError::Denied(why) = &err else {
            panic!("{case}: {err:?}");
        };
        assert!(why.contains("invalid peer certificate"), "{case}: {why}");
    }
}

/// The grant's lines for TLS from the first byte, the certificate
/// verified for `name`.
fn implicit_tls(name: &str) -> String {
    format!("tls = \"implicit\"\ntls-name = \"{name}\"\n")
}

#[test]
fn mail_over_implicit_tls_arrives_once_with_the_servers_certificate_verified() {
    let server = env_var("HANDOFF_TEST_SMTPS_ADDR");
    let ca = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_CA"));
    let dir = smtp_package(&server, &implicit_tls(CERTIFICATE_NAME));
    let sent = tempfile::tempdir().unwrap();
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &instance(dir.path(), &server, sent.path(), Some(ca.clone())),
    );
    let key = unique_key("implicit-tls");
    publish(&loaded, &key).unwrap();
    assert_eq!(received_in("HANDOFF_TEST_SMTPS_MAILDIR", &key), 1);
    publish(&loaded, &key).unwrap();
    assert_eq!(received_in("HANDOFF_TEST_SMTPS_MAILDIR", &key), 1);

    // A certificate for another name stops it, as over STARTTLS.
    let other = smtp_package(&server, &implicit_tls("other.handoff.test"));
    let loaded = approved(
        &sandbox(),
        other.path(),
        &instance(other.path(), &server, sent.path(), Some(ca)),
    );
    let err = refused(&loaded, "HANDOFF_TEST_SMTPS_MAILDIR", "implicit-other-name");
    let AdapterError::Denied(why) = &err else {
        panic!("{err:?}");
    };
    assert!(why.contains("invalid peer certificate"), "{why}");
}

#[test]
fn plain_text_to_a_server_that_requires_starttls_is_refused_by_the_server() {
    let server = env_var("HANDOFF_TEST_SMTP_TLS_ADDR");
    let mailer = smtp(&server, "", None);
    let loaded = &mailer.loaded;
    let err = refused(loaded, "HANDOFF_TEST_SMTP_TLS_MAILDIR", "plain");
    assert!(matches!(err, AdapterError::Conflict(_)), "{err:?}");
    assert!(format!("{err:?}").contains("STARTTLS"), "{err:?}");
}

/// A server that takes the connection and never answers (hung, or not a
/// mail server at all) is the server's fault, said as such: a `transient`
/// error naming it, before the call's own limit would stop the call as one
/// that ran too long. Nothing is recorded as sent.
#[test]
fn a_server_that_never_answers_is_a_transient_error_naming_it() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    // Connections are taken (the kernel queues them) and never answered.
    let mailer = smtp(&server, "", None);
    let loaded = &mailer.loaded;
    let err = publish(loaded, &unique_key("silent")).expect_err("nothing answers");
    let AdapterError::Transient(m) = &err else {
        panic!("expected a transient error, got {err:?}");
    };
    assert!(m.contains(&server) && m.contains("no answer"), "{m}");
    let log = std::fs::read_to_string(mailer.sent.path().join("release-coordinators.sent"));
    assert!(
        log.unwrap_or_default().is_empty(),
        "no key recorded as sent"
    );
    drop(silent);
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

/// The grant's lines for STARTTLS and a login as the login receiver's user,
/// with the password from secret `smtp_password`.
fn starttls_with_login() -> String {
    format!(
        "{}login = {{ username = \"{}\", password-secret = \"smtp_password\" }}\n",
        starttls(CERTIFICATE_NAME),
        env_var("HANDOFF_TEST_SMTP_LOGIN_USER")
    )
}

/// The login receiver's instance, its `smtp_password` secret read from
/// `password_file` (or not bound at all).
fn login_instance(dir: &Path, sent: &Path, password_file: Option<PathBuf>) -> AdapterInstance {
    let server = env_var("HANDOFF_TEST_SMTP_LOGIN_ADDR");
    let ca = PathBuf::from(env_var("HANDOFF_TEST_SMTP_TLS_CA"));
    let mut i = instance(dir, &server, sent, Some(ca));
    if let Some(file) = password_file {
        i.secrets
            .sources
            .insert("smtp_password".into(), SecretSource::File(file));
    }
    i
}

#[test]
fn a_server_that_requires_a_login_takes_the_mail_of_one_with_the_bound_password() {
    let server = env_var("HANDOFF_TEST_SMTP_LOGIN_ADDR");
    let dir = smtp_package(&server, &starttls_with_login());
    let sent = tempfile::tempdir().unwrap();
    let password = PathBuf::from(env_var("HANDOFF_TEST_SMTP_LOGIN_PASSWORD_FILE"));
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &login_instance(dir.path(), sent.path(), Some(password)),
    );
    let key = unique_key("login");
    publish(&loaded, &key).unwrap();
    assert_eq!(received_in("HANDOFF_TEST_SMTP_LOGIN_MAILDIR", &key), 1);

    // Without a login, the same server refuses it.
    let plain_login = smtp_package(&server, &starttls(CERTIFICATE_NAME));
    let loaded = approved(
        &sandbox(),
        plain_login.path(),
        &login_instance(plain_login.path(), sent.path(), None),
    );
    let err = refused(&loaded, "HANDOFF_TEST_SMTP_LOGIN_MAILDIR", "no-login");
    assert!(
        format!("{err:?}").contains("Authentication required"),
        "{err:?}"
    );
}

#[test]
fn a_wrong_password_is_refused_and_goes_to_a_person() {
    let server = env_var("HANDOFF_TEST_SMTP_LOGIN_ADDR");
    let dir = smtp_package(&server, &starttls_with_login());
    let sent = tempfile::tempdir().unwrap();
    let wrong = sent.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let loaded = approved(
        &sandbox(),
        dir.path(),
        &login_instance(dir.path(), sent.path(), Some(wrong)),
    );
    let err = refused(&loaded, "HANDOFF_TEST_SMTP_LOGIN_MAILDIR", "wrong-password");
    // Final (not retried): the same password fails the same way again.
    assert!(matches!(err, AdapterError::Conflict(_)), "{err:?}");
    assert!(format!("{err:?}").contains("535"), "{err:?}");
}

#[test]
fn a_login_whose_secret_is_not_bound_stops_the_load_and_names_it() {
    let server = env_var("HANDOFF_TEST_SMTP_LOGIN_ADDR");
    let dir = smtp_package(&server, &starttls_with_login());
    let sent = tempfile::tempdir().unwrap();
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &login_instance(dir.path(), sent.path(), None),
    )
    .unwrap_err();
    assert!(err.to_string().contains("smtp_password"), "{err}");
}
