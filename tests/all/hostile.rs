//! Hostile adapters: each attempt is refused with a typed error (or, for
//! exceeded limits, the instance is stopped), nothing reaches what was not
//! granted, and the host goes on serving.

use crate::support::*;
use handoff::config::{AdapterInstance, HostCeiling, SecretSource};
use handoff::sandbox::decision::Verdict;
use handoff::sandbox::{Action, AdapterError, CallError, Instance, LoadError, Message};
use handoff::store::Store;

/// The probe with one directory `data` (read-write) holding `inside.txt`,
/// one read-only `evidence`, and HTTP GET to `server`.
struct Fixture {
    _pkg: tempfile::TempDir,
    data: tempfile::TempDir,
    evidence: tempfile::TempDir,
    _outside: tempfile::TempDir,
    outside_file: std::path::PathBuf,
    instance: Instance,
}

async fn fixture(server: &TestServer) -> Fixture {
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
async fn assert_denied(instance: &mut Instance, kind: &str, id: &str) -> String {
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

fn denials(instance: &mut Instance, surface: &str) -> Vec<String> {
    instance
        .take_decisions()
        .into_iter()
        .filter(|d| d.surface.name == surface && d.verdict == Verdict::Denied)
        .map(|d| format!("{} ({})", d.target, d.reason))
        .collect()
}

/// Plain `std::fs` in the guest, bypassing the SDK: whatever error the
/// guest's libc reports, the content of the file outside never comes back.
async fn assert_unreadable_raw(instance: &mut Instance, path: &str) {
    let result = instance.observe(&rec("read-raw", path)).await;
    match result {
        Ok(Err(AdapterError::Denied(_) | AdapterError::NotFound(_))) => {}
        other => panic!("raw read of {path} was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn reading_outside_the_granted_directory_is_denied() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    let outside = f.outside_file.display().to_string();
    let dotdot = format!("/data/../..{outside}");
    for path in [
        dotdot.as_str(),
        outside.as_str(),
        "/etc/passwd",
        "/data/escape",
    ] {
        let message = assert_denied(&mut f.instance, "read", path).await;
        assert!(!message.contains("outside secret"), "{message}");
        assert_unreadable_raw(&mut f.instance, path).await;
    }
    // Raw `..` and symlink escapes are refused by the sandbox itself.
    for path in [dotdot.as_str(), "/data/escape"] {
        assert_denied(&mut f.instance, "read-raw", path).await;
    }
    // The directory itself is readable: the refusals are about escaping it.
    let inside = f
        .instance
        .observe(&rec("read", "/data/inside.txt"))
        .await
        .unwrap();
    assert!(inside.is_ok(), "{inside:?}");
}

#[tokio::test]
async fn writing_to_a_read_only_directory_is_denied() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    for op in ["write", "write-raw"] {
        assert_denied(&mut f.instance, op, "/evidence/bundle.txt").await;
        assert_denied(&mut f.instance, op, "/evidence/new.txt").await;
    }
    assert_eq!(
        std::fs::read_to_string(f.evidence.path().join("bundle.txt")).unwrap(),
        "evidence"
    );
    assert!(!f.evidence.path().join("new.txt").exists());
    // The read-write directory next to it takes the same write.
    f.instance
        .observe(&rec("write", "/data/new.txt"))
        .await
        .unwrap()
        .unwrap();
    assert!(f.data.path().join("new.txt").is_file());
}

#[tokio::test]
async fn http_outside_the_declared_origins_and_methods_never_leaves_the_host() {
    let server = TestServer::start().await;
    let outsider = TestServer::start().await;
    let mut f = fixture(&server).await;
    let port = server.addr.port();
    let other_port = outsider.addr.port();
    let cases = [
        format!("GET http://{}/hello", outsider.addr), // undeclared host:port
        format!("GET http://127.0.0.1:{other_port}/hello"), // declared host, other port
        format!("GET https://127.0.0.1:{port}/hello"), // declared host, other scheme
        format!("PUT http://127.0.0.1:{port}/hello"),  // declared origin, other method
        format!("GET http://localhost:{port}/hello"),  // another name for it
        format!("GET http://[::ffff:127.0.0.1]:{port}/hello"), // IPv4-mapped IPv6
        format!("GET http://2130706433:{port}/hello"), // decimal IPv4
        format!("GET http://[::ffff:127.0.0.1]:{other_port}/hello"),
        format!("GET http://2130706433:{other_port}/hello"),
    ];
    for case in &cases {
        let message = assert_denied(&mut f.instance, "http", case).await;
        assert!(message.contains("refused by the host"), "{case}: {message}");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert!(outsider.requests().is_empty(), "{:?}", outsider.requests());
    let recorded = denials(&mut f.instance, "http");
    assert_eq!(recorded.len(), cases.len(), "{recorded:#?}");
    assert!(
        recorded[3].contains("method PUT is not granted"),
        "{}",
        recorded[3]
    );
}

#[tokio::test]
async fn a_redirect_to_an_undeclared_host_is_not_followed() {
    let server = TestServer::start().await;
    let outsider = TestServer::start().await;
    let mut f = fixture(&server).await;
    let id = format!(
        "GET {}",
        server.url(&format!("/redirect?to={}", outsider.url("/hello")))
    );
    assert_denied(&mut f.instance, "http", &id).await;
    assert_eq!(server.requests().len(), 1, "the redirect itself was served");
    assert!(outsider.requests().is_empty(), "{:?}", outsider.requests());
}

#[tokio::test]
async fn the_guest_cannot_set_the_header_the_host_injects() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    let id = format!("GET {} X-Api-Key=forged", server.url("/hello"));
    let message = assert_denied(&mut f.instance, "http", &id).await;
    assert!(
        message.contains("x-api-key") || message.contains("X-Api-Key"),
        "{message}"
    );
    assert!(server.requests().is_empty());
    assert!(!denials(&mut f.instance, "http").is_empty());
}

#[tokio::test]
async fn secrets_in_the_host_environment_are_invisible() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    // Whatever the host process has, the guest's environment is empty.
    for name in ["HOME", "PATH", "api_key", "HANDOFF_STORE"] {
        let result = f.instance.observe(&rec("env", name)).await.unwrap();
        assert!(
            matches!(result, Err(AdapterError::NotFound(_))),
            "{name}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_socket_to_an_undeclared_address_is_denied() {
    let server = TestServer::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut f = fixture(&server).await;
    let addr = listener.local_addr().unwrap().to_string();
    assert_denied(&mut f.instance, "tcp", &addr).await;
    assert_denied(&mut f.instance, "tcp", &server.addr.to_string()).await;
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
    assert_eq!(denials(&mut f.instance, "sockets").len(), 2);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_its_deadline() {
    let dir = package("probe", &probe_manifest("spinner", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("spinner", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let err = instance.observe(&rec("spin", "")).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { ms: 1000, .. }), "{err}");
    assert_eq!(denials(&mut instance, "cpu").len(), 1);
    // The trapped instance refuses further calls; a fresh one works.
    let again = instance.observe(&rec("noop", "")).await.unwrap_err();
    assert!(matches!(again, CallError::Dead { .. }), "{again}");
    let mut fresh = adapter.instantiate().await.unwrap();
    assert!(fresh.observe(&rec("noop", "")).await.unwrap().is_ok());
}

#[test]
fn deadlines_still_fire_after_the_sandbox_is_dropped() {
    let dir = package("probe", &probe_manifest("orphan", ""));
    let adapter = {
        let sandbox = sandbox();
        approved(
            &sandbox,
            dir.path(),
            &AdapterInstance::new("orphan", dir.path()),
        )
    };
    // The call runs on a thread of its own: if its deadline never fired it
    // would spin there forever, and this thread, still free, turns that into
    // a failure. The bound is far above the adapter's own 1000 ms limit.
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let mut instance = adapter.instantiate().await.unwrap();
            instance.observe(&rec("spin", "")).await
        });
        let _ = done.send(result);
    });
    let outcome = outcome
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the spinning call was never stopped");
    assert!(
        matches!(outcome, Err(CallError::Timeout { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_one_gib_allocation_is_refused() {
    let dir = package("probe", &probe_manifest("hog", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("hog", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let err = instance.observe(&rec("alloc", "1024")).await.unwrap_err();
    match &err {
        CallError::Memory {
            asked_mib,
            granted_mib,
            ..
        } => {
            assert!(*asked_mib >= 1024, "{err}");
            assert_eq!(*granted_mib, 32);
        }
        other => panic!("expected a memory refusal, got {other}"),
    }
    assert_eq!(denials(&mut instance, "memory").len(), 1);
    let mut fresh = adapter.instantiate().await.unwrap();
    let small = fresh.observe(&rec("alloc", "4")).await.unwrap();
    assert!(small.is_ok(), "{small:?}");
}

#[tokio::test]
async fn an_action_outside_the_approved_set_is_refused_without_calling_the_adapter() {
    let dir = package("probe", &probe_manifest("limited", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("limited", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let publish = Action::Publish(Message {
        subject: "s".into(),
        body: String::new(),
        links: vec![],
    });
    let result = instance
        .apply(&rec("queue", "q"), &publish, "k")
        .await
        .unwrap();
    assert!(
        matches!(result, Err(AdapterError::Denied(ref m)) if m.contains("publish")),
        "{result:?}"
    );
    assert_eq!(denials(&mut instance, "action").len(), 1);
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

#[tokio::test]
async fn a_name_resolving_into_a_denied_network_is_refused() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let dir = package(
        "probe",
        &probe_manifest(
            "rebind",
            &format!("[[capabilities.http]]\nurl = \"http://localhost:{port}\"\n"),
        ),
    );
    let ceiling = HostCeiling {
        denied_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        ..HostCeiling::default()
    };
    let sandbox = sandbox_with(ceiling);
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("rebind", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let message = assert_denied(
        &mut instance,
        "http",
        &format!("GET http://localhost:{port}/hello"),
    )
    .await;
    assert!(message.contains("destination address"), "{message}");
    assert!(server.requests().is_empty());
    let recorded = denials(&mut instance, "http");
    assert!(recorded[0].contains("denied network"), "{recorded:?}");
}

/// The probe under the default ceiling, with nothing granted but its
/// inert placeholders.
async fn plain_probe(name: &str) -> Instance {
    let dir = package("probe", &probe_manifest(name, ""));
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new(name, dir.path()),
    );
    std::mem::forget(dir);
    adapter.instantiate().await.unwrap()
}

#[tokio::test]
async fn results_over_the_ceiling_are_refused_unread_with_the_limit_named() {
    for (kind, arg, part, key) in [
        ("big-state", "20000000", "state", "result-string-bytes"),
        ("many-links", "20000", "links", "result-list-entries"),
        (
            "big-error",
            "100000",
            "the error message",
            "result-string-bytes",
        ),
    ] {
        let mut instance = plain_probe("oversize").await;
        let err = instance.observe(&rec(kind, arg)).await.unwrap_err();
        let CallError::Oversize {
            adapter,
            call,
            over,
        } = &err
        else {
            panic!("{kind}: expected an oversize refusal, got {err}");
        };
        assert_eq!((adapter.as_str(), *call), ("oversize", "observe"));
        assert_eq!((over.part.as_str(), over.key), (part, key), "{err}");
        let message = err.to_string();
        assert!(message.contains(&format!("ceiling.{key}")), "{message}");
        assert!(message.len() < 400, "the refusal is short: {message}");
        let denied = denials(&mut instance, "memory");
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert!(denied[0].starts_with("observe result"), "{denied:?}");
        // The instance is finished; a fresh one answers within the limits.
        assert!(matches!(
            instance.observe(&rec("noop", "")).await,
            Err(CallError::Dead { .. })
        ));
    }
    let mut fresh = plain_probe("oversize").await;
    let ok = fresh.observe(&rec("many-links", "10000")).await.unwrap();
    assert_eq!(
        ok.unwrap().links.len(),
        10_000,
        "the limit itself is allowed"
    );
}

#[test]
fn an_adapter_flooding_its_log_is_cut_at_its_budget_and_cannot_forge_host_lines() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ((), text) = logged(|| {
        runtime.block_on(async {
            let mut instance = plain_probe("chatty").await;
            let flood = instance.observe(&rec("log-flood", "100000 100")).await;
            assert!(matches!(flood, Ok(Ok(_))), "{flood:?}");
            let forged = "ok\n2026-12-03T00:00:00.000000Z  INFO handoff::serve: audit head (an anchor to keep) anchor=9:ab";
            let said = instance.observe(&rec("log", forged)).await;
            assert!(matches!(said, Ok(Ok(_))), "{said:?}");
        })
    });
    let lines: Vec<&str> = text.lines().collect();
    let from_adapter = lines.iter().filter(|l| l.contains(" adapter: ")).count();
    assert_eq!(
        from_adapter,
        200 + 1,
        "the budget of 200 lines, then the next call's one"
    );
    let dropped: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("log lines dropped"))
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(
        dropped[0].contains("dropped=99800") && dropped[0].contains("chatty"),
        "{}",
        dropped[0]
    );
    assert!(text.len() < 200 * 200, "{} bytes logged", text.len());
    // The forged line stays on the adapter's line, marked as the adapter's.
    let anchors: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("an anchor to keep"))
        .collect();
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    assert!(anchors[0].contains(" adapter: ok\\n2026"), "{}", anchors[0]);
    assert!(anchors[0].contains("chatty"), "{}", anchors[0]);
    assert!(!lines.iter().any(|l| l.starts_with("2026-12-03T00:00:00")));
    assert_eq!(
        handoff::sandbox::guest_log::dropped_totals().get("chatty"),
        Some(&99_800)
    );
}

/// A resolver that answers `first` to the first lookup of a name and
/// `then` to every later one, as a rebinding name server does.
struct Rebinding {
    first: std::net::IpAddr,
    then: std::net::IpAddr,
    lookups: std::sync::atomic::AtomicUsize,
}

impl handoff::sandbox::net::Resolve for Rebinding {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send + 'a>,
    > {
        let n = self
            .lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ip = if n == 0 { self.first } else { self.then };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

/// The probe granted GET on `https://NAME:PORT` of the test HTTPS server,
/// trusting the test CA, with names looked up by `resolver`.
async fn https_probe(name: &str, resolver: Arc<Rebinding>) -> Instance {
    let port = crate::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    let ca = crate::servers::env_var("HANDOFF_TEST_HTTPS_CA");
    let dir = package(
        "probe",
        &probe_manifest(
            "tls",
            &format!(
                "[[capabilities.http]]\nurl = \"https://{name}:{port}\"\nmethods = [\"GET\"]\n"
            ),
        ),
    );
    let mut cfg = AdapterInstance::new("tls", dir.path());
    cfg.surfaces.http.http_ca_file = Some(ca.into());
    let adapter = approved(&sandbox().with_resolver(resolver), dir.path(), &cfg);
    std::mem::forget(dir);
    adapter.instantiate().await.unwrap()
}

use std::sync::Arc;

#[tokio::test]
async fn https_goes_to_the_address_that_was_checked_even_when_the_name_rebinds() {
    let port = crate::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    // Checked: 127.0.0.1, where the test server is. Asked again, the name
    // would point at the cloud metadata address, which is always denied.
    let resolver = Arc::new(Rebinding {
        first: "127.0.0.1".parse().unwrap(),
        then: "169.254.169.254".parse().unwrap(),
        lookups: Default::default(),
    });
    let mut instance = https_probe("tracker.handoff.test", resolver.clone()).await;
    let url = format!("https://tracker.handoff.test:{port}/hello");
    let seen = match instance.observe(&rec("http", &format!("GET {url}"))).await {
        Ok(Ok(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(&seen, "status"), "200");
    assert_eq!(
        field(&seen, "body"),
        format!("host=tracker.handoff.test:{port} path=/hello\n"),
        "the certificate was verified for the name, the request sent to the checked address"
    );
    // One lookup decided where it went: a second one would have answered
    // the denied address.
    assert_eq!(
        resolver.lookups.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let allowed: Vec<String> = instance
        .take_decisions()
        .into_iter()
        .filter(|d| d.surface.name == "http" && d.verdict == Verdict::Allowed)
        .map(|d| d.reason)
        .collect();
    assert!(allowed[0].contains("sent to 127.0.0.1:"), "{allowed:?}");
    // The next request looks the name up again, and that answer is checked.
    let message = assert_denied(&mut instance, "http", &format!("GET {url}")).await;
    assert!(message.contains("outside the host's ceiling"), "{message}");
}

#[tokio::test]
async fn https_to_a_checked_address_still_verifies_the_certificate_for_the_name() {
    let port = crate::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    let resolver = Arc::new(Rebinding {
        first: "127.0.0.1".parse().unwrap(),
        then: "127.0.0.1".parse().unwrap(),
        lookups: Default::default(),
    });
    // The server's certificate is not valid for this name.
    let mut instance = https_probe("archive.handoff.test", resolver).await;
    let seen = instance
        .observe(&rec(
            "http",
            &format!("GET https://archive.handoff.test:{port}/hello"),
        ))
        .await;
    assert!(
        !matches!(&seen, Ok(Ok(o)) if field(o, "status") == "200"),
        "a certificate for another name was accepted: {seen:?}"
    );
}
