//! Shared test fixtures: built packages, temporary packages with their own
//! manifests, a sandbox with a shared artifact cache, and a real HTTP server
//! on 127.0.0.1 that records what reached it.

pub mod browser;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod scenario;
pub mod servers;
pub mod service;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use handoff::config::{AdapterInstance, HostCeiling};
use handoff::sandbox::package::Package;
use handoff::sandbox::{LoadError, LoadedAdapter, RecordRef, Sandbox};
use handoff::store::Store;
use handoff::store::adapters::NewApproval;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

/// A built package directory (`probe`, `minimal`).
pub fn built(name: &str) -> PathBuf {
    Path::new(handoff::BUILT_PACKAGES_DIR).join(name)
}

/// A package in a temporary directory: the component of built package
/// `component` under the name the manifest gives, beside that manifest.
pub fn package(component: &str, manifest: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let parsed = handoff::sandbox::manifest::Manifest::parse(manifest, Path::new("adapter.toml"))
        .expect("test manifest parses");
    std::fs::copy(
        built(component).join(format!("{component}.wasm")),
        dir.path().join(format!("{}.wasm", parsed.name)),
    )
    .unwrap();
    std::fs::write(dir.path().join("adapter.toml"), manifest).unwrap();
    dir
}

/// A sandbox with the given ceiling; compiled components are cached across tests.
pub fn sandbox_with(ceiling: HostCeiling) -> Sandbox {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifact-cache");
    Sandbox::new(&cache, ceiling).expect("sandbox")
}

/// A field of what the probe answered.
pub fn field<'a>(o: &'a handoff::sandbox::Observed, name: &str) -> &'a str {
    o.fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {o:?}"))
}

pub fn sandbox() -> Sandbox {
    sandbox_with(HostCeiling::default())
}

/// Approve the package as it is now.
pub fn approve(store: &mut Store, dir: &Path) {
    let p = Package::read(dir).unwrap();
    store
        .approve_adapter(&NewApproval::of(&p, "security-review"))
        .unwrap();
}

/// Load a package against the store's approval.
pub fn load(
    sandbox: &Sandbox,
    store: &Store,
    dir: &Path,
    instance: &AdapterInstance,
) -> Result<LoadedAdapter, LoadError> {
    let p = Package::read(dir)?;
    let approval = store.latest_approval(&p.manifest.name).unwrap();
    sandbox.load(&p, approval.as_ref(), instance)
}

/// Approve and load; for tests about what happens after loading.
pub fn approved(sandbox: &Sandbox, dir: &Path, instance: &AdapterInstance) -> LoadedAdapter {
    let mut store = Store::in_memory().unwrap();
    approve(&mut store, dir);
    load(sandbox, &store, dir, instance).unwrap_or_else(|e| panic!("load: {e}"))
}

pub fn rec(kind: &str, id: &str) -> RecordRef {
    RecordRef {
        system: "test".into(),
        kind: kind.into(),
        id: id.into(),
    }
}

/// A manifest for the probe component with the given capability lines.
///
/// The probe's component imports HTTP, files and sockets, so every manifest
/// for it declares all three: these inert entries (a closed port, an unbound
/// directory) cover the imports without granting anything reachable.
pub fn probe_manifest(name: &str, capabilities: &str) -> String {
    probe_manifest_timed(name, capabilities, 1000)
}

/// [`probe_manifest`] with a call time limit of its own: a probe that
/// writes tens of MiB in one call needs more than a second from a debug
/// build on a machine busy with the other tests.
pub fn probe_manifest_timed(name: &str, capabilities: &str, call_timeout_ms: u64) -> String {
    format!(
        "[adapter]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\n\
         actions = [\"set-state\", \"annotate\"]\n{capabilities}\n{PROBE_INERT}\n[limits]\nmemory-mib = 32\ncall-timeout-ms = {call_timeout_ms}\n"
    )
}

pub const PROBE_INERT: &str = "[[capabilities.http]]\nurl = \"http://127.0.0.1:1\"\n\
    [[capabilities.files]]\nname = \"unbound\"\nmode = \"read-only\"\n\
    [[capabilities.sockets]]\naddress = \"127.0.0.1:1\"\n\
    [[capabilities.s3]]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"inert\"\nprefix = \"\"\nmode = \"read-only\"\n\
    [[capabilities.smtp]]\nserver = \"127.0.0.1:1\"\nsenders = [\"inert@example.invalid\"]\nrecipient-domains = [\"example.invalid\"]\n\
    [[capabilities.nats]]\nserver = \"127.0.0.1:1\"\nsubjects = [\"inert\"]\n";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// A real HTTP server on 127.0.0.1 with a few routes:
/// `/hello` answers "hello"; `/echo-key` sends the request's `x-api-key`
/// back as a response header; `/redirect?to=URL` answers 302 to URL;
/// `/bytes?n=N` answers N bytes; anything else 404. Every request is recorded before it is answered.
pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let app = Router::new().fallback(answer).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            addr,
            seen,
            _task: task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let echoed_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    });
    match uri.path() {
        "/hello" => (StatusCode::OK, format!("hello {method}")).into_response(),
        "/echo-key" => (StatusCode::OK, [("x-api-key", echoed_key)], "echoed").into_response(),
        "/redirect" => {
            let to = uri
                .query()
                .and_then(|q| q.strip_prefix("to="))
                .unwrap_or("/hello")
                .to_string();
            (StatusCode::FOUND, [("location", to)]).into_response()
        }
        "/bytes" => {
            let n: usize = uri
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (StatusCode::OK, vec![b'x'; n]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serve `app` on 127.0.0.1 from a runtime of its own (one thread), so a
/// test can drive the `handoff` binary synchronously meanwhile; its
/// origin (`http://127.0.0.1:PORT`), and the runtime, which stops the
/// server when dropped.
pub fn serve_in_background(app: Router) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    // Each request can name the connection it came on (`ConnectInfo`).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, runtime)
}

/// Logs written while `f` runs on this thread.
pub fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (value, text)
}
