//! The sandbox's capability surfaces, each with what an adapter granted it
//! can do and every way one not granted it is refused (a typed `denied`, or
//! for an exceeded limit the instance stopped), nothing reaching what was
//! not granted, and the host going on serving; and what loading an adapter
//! checks. Real servers are not needed here: a real HTTP server, real
//! directories and a real TCP listener on 127.0.0.1 are started by the
//! tests themselves (the surfaces that need the project's test servers, S3,
//! SMTP and NATS, are in `systems`).

mod files;
mod http;
mod instance;
mod limits;
mod load;
mod sockets;

use crate::support::*;
use handoff::config::{AdapterInstance, HostCeiling, SecretSource};
use handoff::sandbox::decision::Verdict;
use handoff::sandbox::{AdapterError, Instance};

/// The probe with one directory `data` (read-write) holding `inside.txt`,
/// one read-only `evidence`, and HTTP GET to `server`.
pub(crate) struct Fixture {
    _pkg: tempfile::TempDir,
    data: tempfile::TempDir,
    evidence: tempfile::TempDir,
    _outside: tempfile::TempDir,
    outside_file: std::path::PathBuf,
    instance: Instance,
}

pub(crate) async fn fixture(server: &TestServer) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let evidence = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("inside.txt"), "inside").unwrap();
    std::fs::write(evidence.path().join("bundle.txt"), "evidence").unwrap();
    let outside_file = outside.path().join("secret.txt");
    std::fs::write(&outside_file, "outside secret").unwrap();
    std::os::unix::fs::symlink(&outside_file, data.path().join("escape")).unwrap();
    let pkg = package(
        "probe",
        &probe_manifest(
            "hostile",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\"]\n\
                 inject-header = {{ name = \"X-Api-Key\", secret = \"api_key\" }}\n\
                 [[capabilities.files]]\nname = \"data\"\nmode = \"read-write\"\n\
                 [[capabilities.files]]\nname = \"evidence\"\nmode = \"read-only\"\n\
",
                server.origin()
            ),
        ),
    );
    let mut cfg = AdapterInstance::new("hostile", pkg.path());
    cfg.surfaces
        .files
        .directories
        .insert("data".into(), data.path().to_path_buf());
    cfg.surfaces
        .files
        .directories
        .insert("evidence".into(), evidence.path().to_path_buf());
    std::fs::write(data.path().join("token"), "s3cret").unwrap();
    cfg.secrets.sources.insert(
        "api_key".into(),
        SecretSource::File(data.path().join("token")),
    );
    let sandbox = sandbox();
    let adapter = approved(&sandbox, pkg.path(), &cfg);
    let instance = adapter.instantiate().await.unwrap();
    // The sandbox may be dropped: the loaded adapter keeps its engine and
    // the epoch ticker.
    Fixture {
        _pkg: pkg,
        data,
        evidence,
        _outside: outside,
        outside_file,
        instance,
    }
}

/// Assert `denied`, and that the same instance still works afterwards.
pub(crate) async fn assert_denied(instance: &mut Instance, kind: &str, id: &str) -> String {
    let result = instance.observe(&rec(kind, id)).await;
    let message = match result {
        Ok(Err(AdapterError::Denied(m))) => m,
        other => panic!("{kind} {id}: expected denied, got {other:?}"),
    };
    let still = instance.observe(&rec("noop", "")).await;
    assert!(
        matches!(still, Ok(Ok(_))),
        "instance broken after {kind} {id}: {still:?}"
    );
    message
}

pub(crate) fn denials(instance: &mut Instance, surface: &str) -> Vec<String> {
    instance
        .take_decisions()
        .into_iter()
        .filter(|d| d.surface.name == surface && d.verdict == Verdict::Denied)
        .map(|d| format!("{} ({})", d.target, d.reason))
        .collect()
}

/// Plain `std::fs` in the guest, bypassing the SDK: whatever error the
/// guest's libc reports, the content of the file outside never comes back.
pub(crate) async fn assert_unreadable_raw(instance: &mut Instance, path: &str) {
    let result = instance.observe(&rec("read-raw", path)).await;
    match result {
        Ok(Err(AdapterError::Denied(_) | AdapterError::NotFound(_))) => {}
        other => panic!("raw read of {path} was not refused: {other:?}"),
    }
}

/// The probe under the default ceiling, with nothing granted but its
/// inert placeholders.
pub(crate) async fn plain_probe(name: &str) -> Instance {
    let dir = package("probe", &probe_manifest(name, ""));
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new(name, dir.path()),
    );
    std::mem::forget(dir);
    adapter.instantiate().await.unwrap()
}

/// A probe instance with `evidence` mounted read-only and `outbox`
/// read-write.
async fn probe_with_files(
    name: &str,
    evidence: &std::path::Path,
    outbox: &std::path::Path,
) -> handoff::sandbox::Instance {
    // Some of these calls write tens of MiB.
    let dir = package(
        "probe",
        &probe_manifest_timed(
            name,
            "[[capabilities.files]]\nname = \"evidence\"\nmode = \"read-only\"\n\
             [[capabilities.files]]\nname = \"outbox\"\nmode = \"read-write\"\n",
            10_000,
        ),
    );
    let mut cfg = AdapterInstance::new(name, dir.path());
    cfg.surfaces
        .files
        .directories
        .insert("evidence".into(), evidence.to_path_buf());
    cfg.surfaces
        .files
        .directories
        .insert("outbox".into(), outbox.to_path_buf());
    // The probe hands back whole files as one field: allow strings as
    // large as the largest file the tests read.
    let mut ceiling = HostCeiling::default();
    ceiling.results.string_bytes = 1024 * 1024;
    ceiling.results.total_bytes = 2 * 1024 * 1024;
    let adapter = approved(&sandbox_with(ceiling), dir.path(), &cfg);
    adapter.instantiate().await.unwrap()
}
