//! What an adapter may do, it can do: against a real HTTP server, real
//! directories and a real TCP listener on 127.0.0.1.

use crate::support::*;
use handoff::config::{AdapterInstance, HostCeiling, SecretSource};
use handoff::sandbox::decision::Verdict;
use handoff::sandbox::{Action, AdapterError, Sandbox};
use handoff::store::Store;

#[tokio::test]
async fn http_to_a_declared_origin_reaches_the_real_server() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-http",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\", \"PUT\"]\n",
                server.origin()
            ),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-http", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let observed = instance
        .observe(&rec("http", &format!("PUT {}", server.url("/hello"))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&observed, "status"), "200");
    assert_eq!(field(&observed, "body"), "hello PUT");
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("PUT", "/hello")
    );
    let decisions = instance.take_decisions();
    assert!(
        decisions
            .iter()
            .any(|d| d.surface.name == "http" && d.verdict == Verdict::Allowed),
        "{decisions:?}"
    );
}

#[tokio::test]
async fn an_instance_narrowed_to_get_cannot_put_where_its_grant_would_allow_it() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-get-only",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\", \"PUT\"]\n",
                server.origin()
            ),
        ),
    );
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let mut cfg = AdapterInstance::new("get-only", dir.path());
    cfg.surfaces.http.http_methods = Some(["get".to_string()].into());
    let refused = load(&sandbox, &store, dir.path(), &cfg).unwrap_err();
    assert!(refused.to_string().contains("upper case"), "{refused}");

    cfg.surfaces.http.http_methods = Some(["GET".to_string()].into());
    let adapter = load(&sandbox, &store, dir.path(), &cfg).unwrap();
    let mut instance = adapter.instantiate().await.unwrap();
    let got = instance
        .observe(&rec("http", &format!("GET {}", server.url("/hello"))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&got, "status"), "200");
    let put = instance
        .observe(&rec("http", &format!("PUT {}", server.url("/hello"))))
        .await
        .unwrap();
    assert!(matches!(put, Err(AdapterError::Denied(_))), "{put:?}");
    let seen: Vec<String> = server.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(seen, ["GET"], "the PUT never left the host");
    assert!(
        instance
            .take_decisions()
            .iter()
            .any(|d| d.surface.name == "http" && d.verdict == Verdict::Denied),
        "the refusal is recorded"
    );
}

#[tokio::test]
async fn the_host_injects_the_secret_header_which_the_guest_cannot_read() {
    let server = TestServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("token"), "s3cret-value\n").unwrap();
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-inject",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\ninject-header = {{ name = \"X-Api-Key\", secret = \"api_key\" }}\n",
                server.origin()
            ),
        ),
    );
    let mut instance_cfg = AdapterInstance::new("probe-inject", dir.path());
    instance_cfg.secrets.sources.insert(
        "api_key".into(),
        SecretSource::File(secrets.path().join("token")),
    );
    let sandbox = sandbox();
    let adapter = approved(&sandbox, dir.path(), &instance_cfg);
    let mut instance = adapter.instantiate().await.unwrap();
    instance
        .observe(&rec("http", &format!("GET {}", server.url("/hello"))))
        .await
        .unwrap()
        .unwrap();
    let seen = server.requests();
    let key: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "x-api-key")
        .collect();
    assert_eq!(
        key,
        [&("x-api-key".to_string(), "s3cret-value".to_string())]
    );
    // A server echoing the header back does not hand it to the guest either.
    let echoed = instance
        .observe(&rec("http", &format!("GET {}", server.url("/echo-key"))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&echoed, "body"), "echoed");
    assert!(
        !field(&echoed, "headers").contains("x-api-key"),
        "{echoed:?}"
    );
    assert_eq!(
        server.requests()[1]
            .headers
            .iter()
            .filter(|(k, _)| k == "x-api-key")
            .count(),
        1
    );
    // Neither config nor the environment hands the secret to the guest.
    let config = instance.observe(&rec("config", "api_key")).await.unwrap();
    assert!(
        matches!(config, Err(AdapterError::NotFound(_))),
        "{config:?}"
    );
    let env = instance.observe(&rec("env", "api_key")).await.unwrap();
    assert!(matches!(env, Err(AdapterError::NotFound(_))), "{env:?}");
}

/// A probe instance with `evidence` mounted read-only and `outbox`
/// read-write.
async fn probe_with_files(
    name: &str,
    evidence: &std::path::Path,
    outbox: &std::path::Path,
) -> handoff::sandbox::Instance {
    let dir = package(
        "probe",
        &probe_manifest(
            name,
            "[[capabilities.files]]\nname = \"evidence\"\nmode = \"read-only\"\n\
             [[capabilities.files]]\nname = \"outbox\"\nmode = \"read-write\"\n",
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

#[tokio::test]
async fn granted_directories_are_readable_and_the_read_write_one_writable() {
    let evidence = tempfile::tempdir().unwrap();
    std::fs::write(evidence.path().join("bundle.txt"), "evidence v1").unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mut instance = probe_with_files("probe-files", evidence.path(), outbox.path()).await;

    let read = instance
        .observe(&rec("read", "/evidence/bundle.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&read, "content"), "evidence v1");
    let listed = instance
        .observe(&rec("list", "/evidence"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&listed, "names"), "bundle.txt");
    instance
        .observe(&rec("write", "/outbox/note.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(outbox.path().join("note.txt")).unwrap(),
        "written by probe"
    );
}

#[tokio::test]
async fn a_directory_the_operator_binds_read_only_is_read_only_whatever_the_grant() {
    let outbox = tempfile::tempdir().unwrap();
    std::fs::write(outbox.path().join("kept.txt"), "kept").unwrap();
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-narrowed",
            "[[capabilities.files]]\nname = \"outbox\"\nmode = \"read-write\"\n",
        ),
    );
    let mut cfg = AdapterInstance::new("narrowed", dir.path());
    cfg.surfaces
        .files
        .directories
        .insert("outbox".into(), outbox.path().to_path_buf());
    cfg.surfaces.files.read_only.insert("outbox".into());
    let adapter = approved(&sandbox(), dir.path(), &cfg);
    let mut instance = adapter.instantiate().await.unwrap();
    let read = instance
        .observe(&rec("read", "/outbox/kept.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&read, "content"), "kept");
    let write = instance
        .observe(&rec("write", "/outbox/new.txt"))
        .await
        .unwrap();
    assert!(write.is_err(), "{write:?}");
    assert!(!outbox.path().join("new.txt").exists());
}

/// The SDK's file calls go to `wasi:filesystem` directly inside a
/// component (sized reads, one-`stat` lookups, its own directory walk):
/// each is checked here where it runs, against what the disk holds.
#[tokio::test]
async fn the_sdk_file_calls_answer_inside_a_component_as_the_disk_does() {
    let evidence = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    // Sizes around the host's 64 KiB limit per read, and an empty file.
    let text = |len: usize| -> String {
        (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect()
    };
    let sizes = [0, 5, 65_536, 65_537, 3 * 65_536 + 100];
    for len in sizes {
        std::fs::write(evidence.path().join(format!("f{len}.txt")), text(len)).unwrap();
    }
    std::os::unix::fs::symlink("f5.txt", evidence.path().join("link")).unwrap();
    std::os::unix::fs::symlink("gone.txt", evidence.path().join("dangling")).unwrap();
    std::fs::write(outbox.path().join("taken"), b"a file").unwrap();
    let mut instance = probe_with_files("probe-sdk-files", evidence.path(), outbox.path()).await;
    let mut ask = async |op: &str, arg: &str| instance.observe(&rec(op, arg)).await.unwrap();

    for len in sizes {
        let read = ask("read", &format!("/evidence/f{len}.txt")).await.unwrap();
        assert!(field(&read, "content") == text(len), "f{len}.txt read back");
    }
    for (path, exists) in [
        ("/evidence/f5.txt", true),
        ("/evidence/link", true),
        ("/evidence", true),
        ("/evidence/missing.txt", false),
        ("/evidence/dangling", false),
        ("/outbox/none/deeper", false),
    ] {
        let seen = ask("exists", path).await.unwrap();
        assert_eq!(field(&seen, "exists"), exists.to_string(), "{path}");
    }

    ask("mkdir", "/outbox/a/b/c").await.unwrap();
    assert!(outbox.path().join("a/b/c").is_dir());
    // Already there: no error, nothing else made.
    ask("mkdir", "/outbox/a/b").await.unwrap();
    ask("mkdir", "/outbox").await.unwrap();
    let names: Vec<_> = std::fs::read_dir(outbox.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b"]);
    // A file in the way, and a read-only mount, are errors that say so.
    match ask("mkdir", "/outbox/taken").await {
        Err(AdapterError::Transient(m)) => assert!(m.contains("/outbox/taken"), "{m}"),
        other => panic!("mkdir over a file: {other:?}"),
    }
    match ask("mkdir", "/evidence/new").await {
        Err(AdapterError::Denied(m)) => assert!(m.contains("/evidence/new"), "{m}"),
        other => panic!("mkdir in a read-only mount: {other:?}"),
    }
    assert!(!evidence.path().join("new").exists());
}

#[tokio::test]
async fn a_declared_socket_address_connects_to_a_real_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-tcp",
            &format!("[[capabilities.sockets]]\naddress = \"{addr}\"\n"),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-tcp", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    instance
        .observe(&rec("tcp", &addr.to_string()))
        .await
        .unwrap()
        .unwrap();
    // The connection is in the listener's backlog: accepting does not block.
    listener.set_nonblocking(true).unwrap();
    let (_conn, peer) = listener.accept().expect("the guest's connection arrived");
    assert!(peer.ip().is_loopback());
}

#[tokio::test]
async fn config_values_reach_the_adapter_and_the_environment_is_empty() {
    let declared = "[[config]]\nkey = \"project\"\nabout = \"the project\"\n";
    let dir = package("probe", &probe_manifest("probe-config", declared));
    let mut cfg = AdapterInstance::new("probe-config", dir.path());
    cfg.config.insert("project".into(), "release-42".into());
    let sandbox = sandbox();
    let adapter = approved(&sandbox, dir.path(), &cfg);
    let mut instance = adapter.instantiate().await.unwrap();
    let value = instance
        .observe(&rec("config", "project"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&value, "value"), "release-42");
    // PATH is set in this test process; the guest's environment is empty.
    assert!(std::env::var("PATH").is_ok());
    let env = instance.observe(&rec("env", "PATH")).await.unwrap();
    match env {
        Err(AdapterError::NotFound(m)) => assert!(m.contains("has 0 variables"), "{m}"),
        other => panic!("the guest read PATH: {other:?}"),
    }
}

#[test]
fn an_instance_gives_its_required_config_and_no_key_the_adapter_does_not_read() {
    let declared = "[[config]]\nkey = \"project\"\nrequired = true\nabout = \"the project\"\n\
                    [[config]]\nkey = \"url-*\"\nabout = \"a channel's URL\"\n";
    let dir = package("probe", &probe_manifest("probe-settings", declared));
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir.path());
    let sandbox = sandbox();
    let load_with = |keys: &[&str]| {
        let mut cfg = AdapterInstance::new("settings", dir.path());
        for k in keys {
            cfg.config.insert(k.to_string(), "v".into());
        }
        load(&sandbox, &store, dir.path(), &cfg).map(|_| ())
    };
    assert!(load_with(&["project", "url-ops", "url-release"]).is_ok());
    let refused = load_with(&["url-ops"]).unwrap_err().to_string();
    assert_eq!(
        refused,
        "adapter instance settings: config key \"project\" is required by probe-settings \
         (the project); set it in its `config`"
    );
    let refused = load_with(&["project", "projet"]).unwrap_err().to_string();
    assert_eq!(
        refused,
        "adapter instance settings: config key \"projet\" is not read by probe-settings \
         (it reads project, url-*); correct or remove it in its `config`"
    );
}

#[tokio::test]
async fn every_instance_starts_fresh() {
    let dir = package("probe", &probe_manifest("probe-fresh", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-fresh", dir.path()),
    );
    let mut first = adapter.instantiate().await.unwrap();
    let count = |o: handoff::sandbox::Observed| field(&o, "count").to_string();
    assert_eq!(
        count(first.observe(&rec("count", "")).await.unwrap().unwrap()),
        "1"
    );
    assert_eq!(
        count(first.observe(&rec("count", "")).await.unwrap().unwrap()),
        "2"
    );
    let mut second = adapter.instantiate().await.unwrap();
    assert_eq!(
        count(second.observe(&rec("count", "")).await.unwrap().unwrap()),
        "1"
    );
}

#[tokio::test]
async fn apply_passes_the_action_and_key_and_returns_the_adapters_report() {
    let dir = package("probe", &probe_manifest("probe-apply", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-apply", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let after = instance
        .apply(
            &rec("issue", "17"),
            &Action::SetState("closed".into()),
            "key-1",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, "closed");
    assert_eq!(after.applied_keys, ["key-1"]);
}

#[tokio::test]
async fn decisions_are_recorded_in_the_store() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-record",
            &format!("[[capabilities.http]]\nurl = \"{}\"\n", server.origin()),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-record", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let _ = instance
        .observe(&rec("http", &format!("GET {}", server.url("/hello"))))
        .await;
    let _ = instance
        .observe(&rec("http", "GET http://127.0.0.1:9/x"))
        .await;
    let mut store = Store::in_memory().unwrap();
    store.record_decisions(&instance.take_decisions()).unwrap();
    let rows = store.decisions_for("probe-record").unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].2, Verdict::Allowed);
    assert_eq!(rows[1].2, Verdict::Denied);
    assert!(rows[1].1.contains("127.0.0.1:9"), "{rows:?}");
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
