//! A harness to unit-test adapter logic natively, without the host.
//!
//! In a native build (`cargo test` on your machine) the SDK's `config`, `log`
//! and `http` calls go to the harness installed on the current thread:
//!
//! ```
//! use handoff_sdk::testing::Harness;
//! use handoff_sdk::http::{self, Response};
//!
//! let harness = Harness::new()
//!     .config("base_url", "http://tracker.test")
//!     .on_http(|req| {
//!         assert_eq!(req.url, "http://tracker.test/issues/7.json");
//!         Response { status: 200, headers: vec![], body: br#"{"status":"closed"}"#.to_vec() }
//!     });
//! let body = harness.run(|| {
//!     let base = handoff_sdk::config("base_url").unwrap();
//!     http::get(&format!("{base}/issues/7.json")).map(|r| r.text())
//! });
//! assert_eq!(body.unwrap(), r#"{"status":"closed"}"#);
//! assert_eq!(harness.requests().len(), 1);
//! ```
//!
//! The harness answers requests with your handler; tests against the real
//! system belong in the host's integration tests, where the sandbox runs too.

use crate::Level;
use crate::http::{Request, Response};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

type HttpHandler = Box<dyn Fn(&Request) -> Response>;

#[derive(Default)]
struct State {
    config: HashMap<String, String>,
    http: Option<HttpHandler>,
    requests: Vec<Request>,
    logs: Vec<(Level, String)>,
    dirs: Vec<(String, std::path::PathBuf)>,
    person_resumed: bool,
}

/// Configuration, scripted HTTP answers and captured logs for native tests.
#[derive(Clone, Default)]
pub struct Harness {
    state: Rc<RefCell<State>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Harness")
            .field("config", &state.config)
            .field("requests", &state.requests.len())
            .field("logs", &state.logs.len())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

impl Harness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A configuration value the adapter reads with [`crate::config`].
    pub fn config(self, key: &str, value: &str) -> Self {
        self.state
            .borrow_mut()
            .config
            .insert(key.to_string(), value.to_string());
        self
    }

    /// What [`crate::person_resumed`] answers from now on (as the host
    /// would in an `apply` of a step a person resumed).
    pub fn person_resumed(&self, resumed: bool) {
        self.state.borrow_mut().person_resumed = resumed;
    }

    /// Bind a directory the adapter sees at `/<name>` (as an operator would).
    pub fn dir(self, name: &str, host_path: &std::path::Path) -> Self {
        self.state
            .borrow_mut()
            .dirs
            .push((format!("/{name}"), host_path.to_path_buf()));
        self
    }

    /// Answer every outbound request with `handler`. Without one, requests
    /// fail as `denied`, as they would for an adapter with no HTTP grant.
    pub fn on_http(self, handler: impl Fn(&Request) -> Response + 'static) -> Self {
        self.state.borrow_mut().http = Some(Box::new(handler));
        self
    }

    /// Run `f` with this harness serving the SDK calls on this thread.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        struct Restore(Option<Harness>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(previous);
        f()
    }

    /// Every request the adapter sent, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().requests.clone()
    }

    /// Every log line the adapter wrote, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn mount_names(&self) -> Vec<String> {
        self.state
            .borrow()
            .dirs
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The host path of a guest path under a bound directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn resolve_mount(&self, p: &std::path::Path) -> std::path::PathBuf {
        let state = self.state.borrow();
        for (name, host) in &state.dirs {
            if let Ok(rest) = p.strip_prefix(name) {
                return host.join(rest);
            }
        }
        p.to_path_buf()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn config_value(&self, key: &str) -> Option<String> {
        self.state.borrow().config.get(key).cloned()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn answer_person_resumed(&self) -> bool {
        self.state.borrow().person_resumed
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn record_log(&self, level: Level, message: &str) {
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_string()));
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn answer_http(&self, request: &Request) -> Result<Response, crate::AdapterError> {
        self.state.borrow_mut().requests.push(request.clone());
        let state = self.state.borrow();
        match &state.http {
            Some(handler) => Ok(handler(request)),
            None => Err(crate::AdapterError::Denied(format!(
                "{} {}: no HTTP handler in the test harness",
                request.method, request.url
            ))),
        }
    }
}

/// Run `f` against the harness of this thread; outside [`Harness::run`] that
/// is a test bug, reported as such.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn with_current<R>(f: impl FnOnce(&Harness) -> R) -> R {
    CURRENT.with(|c| match &*c.borrow() {
        Some(harness) => f(harness),
        None => panic!(
            "handoff-sdk: config/log/http called natively outside Harness::run; \
             wrap the adapter call in handoff_sdk::testing::Harness::new().run(|| ...)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdapterError;
    use crate::http;

    #[test]
    fn config_and_logs_go_through_the_harness() {
        let harness = Harness::new().config("project", "rel");
        let value = harness.run(|| {
            crate::log(Level::Info, "reading project");
            crate::config("project")
        });
        assert_eq!(value.as_deref(), Some("rel"));
        assert_eq!(
            harness.logs(),
            vec![(Level::Info, "reading project".to_string())]
        );
        assert_eq!(harness.run(|| crate::config("absent")), None);
    }

    #[test]
    fn a_count_from_config_is_a_whole_number_in_range_or_refused_naming_its_key() {
        let count = |value: Option<&str>| {
            let harness = match value {
                Some(v) => Harness::new().config("observe-window", v),
                None => Harness::new(),
            };
            harness.run(crate::observe_window)
        };
        assert_eq!(count(None).unwrap(), 100);
        assert_eq!(count(Some(" 7 ")).unwrap(), 7);
        assert_eq!(count(Some("10000")).unwrap(), 10_000);
        for bad in ["0", "10001", "-1", "ten", ""] {
            let err = count(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, AdapterError::Invalid(m) if m.contains("config `observe-window`")),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn a_response_past_the_most_an_adapter_reads_is_refused_naming_the_request() {
        let answer = |len: usize| {
            Harness::new()
                .on_http(move |_| Response {
                    status: 200,
                    headers: vec![],
                    body: vec![b'x'; len],
                })
                .run(|| http::get("http://a.test/big"))
        };
        assert_eq!(
            answer(http::MAX_RESPONSE_BYTES).unwrap().body.len(),
            http::MAX_RESPONSE_BYTES
        );
        let err = answer(http::MAX_RESPONSE_BYTES + 1).unwrap_err();
        assert!(
            matches!(&err, AdapterError::Invalid(m) if m.contains("GET http://a.test/big")),
            "{err:?}"
        );
    }

    #[test]
    fn requests_without_a_handler_are_denied() {
        let harness = Harness::new();
        let err = harness.run(|| http::get("http://x.test/")).unwrap_err();
        assert!(matches!(err, AdapterError::Denied(_)), "{err:?}");
    }

    #[test]
    fn redirects_are_followed_through_the_harness() {
        let harness = Harness::new().on_http(|req| match req.url.as_str() {
            "http://a.test/old" => Response {
                status: 302,
                headers: vec![("Location".into(), "/new".into())],
                body: vec![],
            },
            _ => Response {
                status: 200,
                headers: vec![],
                body: b"here".to_vec(),
            },
        });
        let response = harness.run(|| http::get("http://a.test/old")).unwrap();
        assert_eq!(response.text(), "here");
        let urls: Vec<_> = harness.requests().into_iter().map(|r| r.url).collect();
        assert_eq!(urls, ["http://a.test/old", "http://a.test/new"]);
    }

    #[test]
    fn error_statuses_map_to_adapter_errors() {
        let response = |status| Response {
            status,
            headers: vec![],
            body: vec![],
        };
        assert!(matches!(
            response(404).error_for_status("x"),
            Err(AdapterError::NotFound(_))
        ));
        assert!(matches!(
            response(503).error_for_status("x"),
            Err(AdapterError::Transient(_))
        ));
        assert!(matches!(
            response(403).error_for_status("x"),
            Err(AdapterError::Denied(_))
        ));
        assert!(matches!(
            response(422).error_for_status("x"),
            Err(AdapterError::Conflict(_))
        ));
        assert!(response(204).error_for_status("x").is_ok());
    }
}
