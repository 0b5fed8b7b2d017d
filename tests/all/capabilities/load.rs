//! Loading: only approved bytes under an approval they do not exceed,
//! imports covered by declared capabilities, the world's exports present,
//! bindings complete, the artifact cache and the package directory trusted
//! only as far as they can be checked.

use crate::support::*;
use handoff::config::{AdapterInstance, HostCeiling};
use handoff::sandbox::approval::Change;
use handoff::sandbox::{LoadError, Sandbox};
use handoff::store::Store;

const GET_ONLY: &str =
    "[[capabilities.http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\"]\n";

const GET_PUT: &str =
    "[[capabilities.http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\", \"PUT\"]\n";

fn minimal_manifest(name: &str, extra: &str) -> String {
    format!(
        "[adapter]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\n\
         actions = [\"set-state\"]\n{extra}"
    )
}

fn http_methods(loaded: &handoff::sandbox::LoadedAdapter, origin: &str) -> Vec<String> {
    let origin = handoff::sandbox::surfaces::http::Origin::parse(origin).unwrap();
    loaded.grants().capabilities.http[&origin]
        .methods
        .iter()
        .cloned()
        .collect()
}

#[test]
fn an_unapproved_package_is_refused_with_the_commands_to_review_it() {
    let dir = package("minimal", &minimal_manifest("fresh", ""));
    let store = Store::in_memory().unwrap();
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &AdapterInstance::new("fresh", dir.path()),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::NotApproved { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("handoff adapter inspect"), "{text}");
    assert!(text.contains("handoff adapter approve"), "{text}");
}

#[test]
fn a_changed_component_is_refused_until_approved_again() {
    let dir = package("minimal", &minimal_manifest("swapped", ""));
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let instance = AdapterInstance::new("swapped", dir.path());
    load(&sandbox, &store, dir.path(), &instance).expect("loads as approved");

    // Same name and manifest, other bytes.
    std::fs::copy(
        built("probe").join("probe.wasm"),
        dir.path().join("swapped.wasm"),
    )
    .unwrap();
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    assert!(matches!(err, LoadError::ComponentChanged { .. }), "{err}");

    approve(&mut store, dir.path());
    // Approved again, it loads as far as the approval goes; the probe's
    // imports are then checked against this manifest, which declares none.
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    assert!(matches!(err, LoadError::UncoveredImports { .. }), "{err}");
}

#[test]
fn a_widened_manifest_is_refused_until_approved_again() {
    let dir = package("probe", &probe_manifest("widening", GET_ONLY));
    let manifest = |caps: &str| probe_manifest("widening", caps);
    let base = "[[capabilities.files]]\nname = \"data\"\nmode = \"read-only\"\n";
    std::fs::write(
        dir.path().join("adapter.toml"),
        manifest(&format!("{GET_ONLY}{base}")),
    )
    .unwrap();
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let instance = AdapterInstance::new("widening", dir.path());
    load(&sandbox, &store, dir.path(), &instance).expect("loads as approved");

    std::fs::write(
        dir.path().join("adapter.toml"),
        manifest(&format!("{GET_PUT}{base}")),
    )
    .unwrap();
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    let LoadError::Widened { changes, .. } = &err else {
        panic!("expected widened, got {err}");
    };
    assert_eq!(
        changes,
        &[Change::Widened(
            "http http://127.0.0.1:3000 method PUT".into()
        )]
    );
    assert!(
        err.to_string()
            .contains("+ http http://127.0.0.1:3000 method PUT"),
        "{err}"
    );

    approve(&mut store, dir.path());
    let loaded = load(&sandbox, &store, dir.path(), &instance).expect("re-approved");
    assert!(http_methods(&loaded, "http://127.0.0.1:3000").contains(&"PUT".to_string()));
}

#[test]
fn a_narrowed_manifest_loads_with_the_narrower_grant() {
    let base = "[[capabilities.files]]\nname = \"data\"\nmode = \"read-write\"\n";
    let dir = package(
        "probe",
        &probe_manifest("narrowing", &format!("{GET_PUT}{base}")),
    );
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let narrower = base.replace("read-write", "read-only");
    std::fs::write(
        dir.path().join("adapter.toml"),
        probe_manifest("narrowing", &format!("{GET_ONLY}{narrower}")),
    )
    .unwrap();
    let loaded = load(
        &sandbox(),
        &store,
        dir.path(),
        &AdapterInstance::new("narrowing", dir.path()),
    )
    .expect("a narrowing loads");
    let grants = loaded.grants();
    assert_eq!(http_methods(&loaded, "http://127.0.0.1:3000"), ["GET"]);
    assert_eq!(
        grants.capabilities.files["data"],
        handoff::sandbox::surfaces::files::FileMode::ReadOnly
    );
}

#[test]
fn a_revoked_approval_refuses_the_load() {
    let dir = package("minimal", &minimal_manifest("revoked", ""));
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    assert!(store.revoke_adapter("revoked", "security-review").unwrap());
    assert!(
        !store.revoke_adapter("revoked", "security-review").unwrap(),
        "revoked twice"
    );
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &AdapterInstance::new("revoked", dir.path()),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Revoked { .. }), "{err}");
}

#[test]
fn a_missing_secret_or_directory_binding_refuses_the_load() {
    let dir = package(
        "probe",
        &probe_manifest(
            "unbound",
            "[[capabilities.http]]\nurl = \"http://127.0.0.1:3001\"\ninject-header = { name = \"X-Key\", secret = \"key\" }\n\
             [[capabilities.files]]\nname = \"data\"\nmode = \"read-only\"\n",
        ),
    );
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let mut instance = AdapterInstance::new("unbound", dir.path());
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    assert!(err.to_string().contains("secret \"key\""), "{err}");

    instance.secrets.sources.insert(
        "key".into(),
        handoff::config::SecretSource::Env("HANDOFF_TEST_NO_SUCH_VARIABLE".into()),
    );
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    assert!(
        err.to_string().contains("HANDOFF_TEST_NO_SUCH_VARIABLE"),
        "{err}"
    );

    instance.secrets.sources.insert(
        "key".into(),
        handoff::config::SecretSource::Env("PATH".into()),
    );
    instance
        .surfaces
        .files
        .directories
        .insert("data".into(), dir.path().join("does-not-exist"));
    let err = load(&sandbox, &store, dir.path(), &instance).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_component_missing_its_worlds_exports_is_refused() {
    // The minimal component exports `target` only; this manifest claims both.
    let manifest = "[adapter]\nname = \"liar\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/adapter@0.1.0\"\n";
    let dir = package("minimal", manifest);
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &AdapterInstance::new("liar", dir.path()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, LoadError::MissingExports { missing, .. } if missing == &["handoff:adapter/source@0.1.0"]),
        "{err}"
    );
}

#[tokio::test]
async fn an_undeclared_import_refuses_the_load_and_names_it() {
    // The probe's component imports sockets, files and HTTP; this manifest
    // declares only HTTP.
    let dir = package(
        "probe",
        "[adapter]\nname = \"sneaky\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\n\
         [[capabilities.http]]\nurl = \"http://127.0.0.1:1\"\n",
    );
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let err = load(
        &sandbox(),
        &store,
        dir.path(),
        &AdapterInstance::new("sneaky", dir.path()),
    )
    .unwrap_err();
    let LoadError::UncoveredImports { imports, .. } = &err else {
        panic!("expected uncovered imports, got {err}");
    };
    let names: Vec<&str> = imports.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("wasi:sockets/tcp@")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("wasi:filesystem/preopens@")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("wasi:http")),
        "{names:?}"
    );
    assert!(
        err.to_string().contains("declare [[capabilities.sockets]]"),
        "{err}"
    );
}

#[test]
fn a_tampered_artifact_cache_is_refused_and_the_component_compiled_afresh() {
    use handoff::sandbox::engine::CacheOutcome;
    use handoff::sandbox::package::Package;
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    let minimal = Package::read(&built("minimal")).unwrap();
    let probe = Package::read(&built("probe")).unwrap();
    let sandbox = Sandbox::new(cache.path(), HostCeiling::default()).unwrap();
    let outcome = |sandbox: &Sandbox, p: &Package| sandbox.component(p).unwrap().1;
    assert_eq!(outcome(&sandbox, &minimal), CacheOutcome::Compiled);
    assert_eq!(outcome(&sandbox, &minimal), CacheOutcome::Loaded);
    assert_eq!(outcome(&sandbox, &probe), CacheOutcome::Compiled);
    let artifact = |p: &Package| {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|f| {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&p.component_sha256) && name.ends_with(".cwasm")
            })
            .unwrap()
    };
    let (minimal_file, probe_file) = (artifact(&minimal), artifact(&probe));

    // Swapped: another component's (valid) artifact in its place.
    std::fs::copy(&probe_file, &minimal_file).unwrap();
    let (got, log) = logged(|| outcome(&sandbox, &minimal));
    assert_eq!(got, CacheOutcome::Compiled, "{log}");
    assert!(log.contains("not the ones compiled"), "{log}");
    assert_eq!(
        outcome(&sandbox, &minimal),
        CacheOutcome::Loaded,
        "stored again"
    );

    // A symbolic link planted in its place.
    std::fs::remove_file(&minimal_file).unwrap();
    std::os::unix::fs::symlink(&probe_file, &minimal_file).unwrap();
    let (got, log) = logged(|| outcome(&sandbox, &minimal));
    assert_eq!(got, CacheOutcome::Compiled, "{log}");
    assert!(log.contains("symbolic link"), "{log}");
    assert!(
        !minimal_file
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(outcome(&sandbox, &minimal), CacheOutcome::Loaded);

    // A cache directory others may write: not used at all.
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let (open, log) = logged(|| Sandbox::new(cache.path(), HostCeiling::default()).unwrap());
    assert!(log.contains("chmod go-w"), "the fix is named: {log}");
    assert_eq!(outcome(&open, &minimal), CacheOutcome::Compiled);
    assert_eq!(outcome(&open, &minimal), CacheOutcome::Compiled);
}

#[test]
fn a_package_whose_component_links_out_of_its_directory_is_refused() {
    use handoff::sandbox::package::Package;
    let outside = tempfile::tempdir().unwrap();
    let pkg = tempfile::tempdir().unwrap();
    let minimal = built("minimal");
    std::fs::copy(
        minimal.join("adapter.toml"),
        pkg.path().join("adapter.toml"),
    )
    .unwrap();
    std::fs::copy(
        minimal.join("minimal.wasm"),
        outside.path().join("minimal.wasm"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("minimal.wasm"),
        pkg.path().join("minimal.wasm"),
    )
    .unwrap();
    let err = Package::read(pkg.path()).unwrap_err().to_string();
    assert!(err.contains("cannot read the component"), "{err}");
    // The same file inside the package reads.
    std::fs::remove_file(pkg.path().join("minimal.wasm")).unwrap();
    std::fs::copy(
        outside.path().join("minimal.wasm"),
        pkg.path().join("minimal.wasm"),
    )
    .unwrap();
    assert!(Package::read(pkg.path()).is_ok());
}
