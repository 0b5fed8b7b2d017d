//! HTTP: a granted origin and method reach the real server with the
//! secret header the host injects; any other origin, method, redirect,
//! header or a name resolving into a denied network never leaves the
//! host.

use super::*;
use crate::support::*;
use handoff::config::{AdapterInstance, HostCeiling, SecretSource};
use handoff::sandbox::AdapterError;
use handoff::sandbox::decision::Verdict;
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

/// A grant says where an adapter may write, not how often: one call sends
/// at most 16 requests that write (any method but GET, HEAD, OPTIONS); the
/// one past them never leaves the host, reads still do, and the next call
/// may write again.
#[tokio::test]
async fn what_one_call_writes_over_http_is_bounded_and_the_request_past_it_never_leaves() {
    use handoff::sandbox::surfaces::http::MOST_WRITES_PER_CALL;
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "poster",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\", \"POST\", \"PUT\"]\n",
                server.origin()
            ),
        ),
    );
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("poster", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let writes = |count: u32, method: &str| {
        rec(
            "http-writes",
            &format!("{count} {method} {}", server.url("/hello")),
        )
    };
    let answer = instance
        .observe(&writes(MOST_WRITES_PER_CALL + 4, "POST"))
        .await
        .unwrap();
    assert!(
        matches!(&answer, Err(AdapterError::Denied(m)) if m.contains("refused by the host")),
        "{answer:?}"
    );
    let posts = |server: &TestServer, method: &str| {
        server
            .requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    };
    assert_eq!(posts(&server, "POST") as u32, MOST_WRITES_PER_CALL);
    let denied = denials(&mut instance, "http");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("more than 16 requests that write"),
        "{denied:?}"
    );
    // Reads are not counted; the next call writes again.
    instance.observe(&writes(40, "GET")).await.unwrap().unwrap();
    assert_eq!(posts(&server, "GET"), 40);
    instance.observe(&writes(1, "PUT")).await.unwrap().unwrap();
    assert_eq!(posts(&server, "PUT"), 1);
}

/// A request body is a stream the guest writes while the host sends it:
/// what one call sends in bodies is bounded, its requests together; the
/// frame past the bound is not sent and its request fails, and the next
/// call may send again.
#[tokio::test]
async fn what_one_call_sends_in_request_bodies_is_bounded() {
    use axum::extract::State;
    use futures_util::StreamExt;
    use handoff::sandbox::surfaces::http::MOST_BODY_BYTES_PER_CALL;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    /// What the server read: bytes in all, and bodies read to their end.
    #[derive(Default)]
    struct Sunk {
        bytes: AtomicU64,
        whole: AtomicU64,
    }
    async fn sink(State(sunk): State<Arc<Sunk>>, body: axum::body::Body) -> axum::http::StatusCode {
        let mut frames = body.into_data_stream();
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(data) => sunk.bytes.fetch_add(data.len() as u64, Relaxed),
                Err(_) => return axum::http::StatusCode::BAD_REQUEST,
            };
        }
        sunk.whole.fetch_add(1, Relaxed);
        axum::http::StatusCode::OK
    }
    let sunk = Arc::new(Sunk::default());
    let app = axum::Router::new().fallback(sink).with_state(sunk.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Eight-MiB bodies through a debug build: more memory and time than
    // the probe's defaults.
    let manifest = probe_manifest(
        "uploader",
        &format!("[[capabilities.http]]\nurl = \"{origin}\"\nmethods = [\"POST\"]\n"),
    )
    .replace("memory-mib = 32", "memory-mib = 64")
    .replace("call-timeout-ms = 1000", "call-timeout-ms = 60000");
    let dir = package("probe", &manifest);
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("uploader", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let fits = MOST_BODY_BYTES_PER_CALL / (8 << 20);
    let bodies = |count: u64| rec("http-bodies", &format!("{count} 8 {origin}/sink"));
    let answer = instance.observe(&bodies(fits + 1)).await.unwrap();
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(sunk.whole.load(Relaxed), fits);
    assert_eq!(sunk.bytes.load(Relaxed), MOST_BODY_BYTES_PER_CALL);
    let denied = denials(&mut instance, "http");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].contains("64 MiB of request bodies"), "{denied:?}");
    // The next call has the whole budget again.
    instance.observe(&bodies(1)).await.unwrap().unwrap();
    assert_eq!(sunk.whole.load(Relaxed), fits + 1);
}

#[tokio::test]
async fn a_response_past_the_most_an_adapter_reads_fails_the_call_naming_the_request() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-big",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\"]\n",
                server.origin()
            ),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-big", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let url = server.url(&format!("/bytes?n={}", 5 * 1024 * 1024));
    let answer = instance
        .observe(&rec("http", &format!("GET {url}")))
        .await
        .unwrap();
    let Err(AdapterError::Invalid(message)) = answer else {
        panic!("{answer:?}");
    };
    assert!(
        message.contains(&format!("GET {url}")) && message.contains("the most an adapter reads"),
        "{message}"
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

/// What a request holds (its fields, body, streams, response) is released
/// when it is done: an instance making more requests than it may hold
/// resources at once keeps making them.
#[tokio::test]
async fn an_instance_makes_more_requests_than_it_may_hold_resources_at_once() {
    let server = TestServer::start().await;
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-many",
            &format!(
                "[[capabilities.http]]\nurl = \"{}\"\nmethods = [\"GET\"]\n",
                server.origin()
            ),
        ),
    );
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("probe-many", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let requests = handoff::sandbox::MOST_HOST_RESOURCES + 44;
    for _ in 0..requests {
        let observed = instance
            .observe(&rec("http", &format!("GET {}", server.url("/hello"))))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(field(&observed, "status"), "200");
    }
    assert_eq!(server.requests().len(), requests);
}
