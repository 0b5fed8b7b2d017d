//! A real browser for the console's tests: Debian's headless Chromium,
//! driven over the W3C WebDriver protocol through ChromeDriver (both
//! installed by `scripts/test-servers install`). Only the handful of
//! commands the tests use: open a page, find an element, type, click, read
//! text, take a screenshot, read cookies.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the browser and its driver stop when dropped.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn program(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run scripts/test-servers install (it installs Debian's chromium \
         and chromium-driver), or set {var}"
    );
    path
}

impl Browser {
    /// A fresh headless Chromium with an empty profile, `width` x `height`.
    pub(crate) fn start(width: u32, height: u32) -> Browser {
        let chromium = program("HANDOFF_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("HANDOFF_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let mut driver = Command::new(chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        // It says which port it took on its first lines.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver stopped before saying its port")
                .unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        // Keep reading its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let created = post(
            &base,
            "/session",
            json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args },
            }}}),
        );
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        post(
            &self.base,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        answer(ureq::get(&url).call(), &url)
    }

    pub(crate) fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub(crate) fn url(&self) -> String {
        self.get("/url").as_str().unwrap().to_string()
    }

    /// The one element `css` selects; panics with the page when none does.
    pub(crate) fn find(&self, css: &str) -> String {
        let found = post(
            &self.base,
            &format!("/session/{}/element", self.session),
            json!({ "using": "css selector", "value": css }),
        );
        match found[ELEMENT].as_str() {
            Some(id) => id.to_string(),
            None => panic!(
                "no {css} on {}: {}",
                self.url(),
                self.get("/source").as_str().unwrap_or_default()
            ),
        }
    }

    /// How many elements `css` selects.
    pub(crate) fn count(&self, css: &str) -> usize {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/value"), json!({ "text": text }));
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    /// Click what submits a form or follows a link, and wait until the
    /// next page has loaded in its place (a click returns when the browser
    /// has taken it, which may be before the navigation it starts).
    pub(crate) fn click_to_next_page(&self, css: &str) {
        let before = self.find("html");
        self.click(css);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // While the page changes, a command may find no document, or one
        // being unloaded: those answers are errors, and mean "not yet".
        let url = format!("{}/session/{}", self.base, self.session);
        let loaded = || -> Option<bool> {
            let html = ureq::post(&format!("{url}/element"))
                .send_json(json!({ "using": "css selector", "value": "html" }))
                .ok()?
                .into_json::<Value>()
                .ok()?;
            let state = ureq::post(&format!("{url}/execute/sync"))
                .send_json(json!({ "script": "return document.readyState;", "args": [] }))
                .ok()?
                .into_json::<Value>()
                .ok()?;
            Some(
                html["value"][ELEMENT].as_str() != Some(before.as_str())
                    && state["value"] == "complete",
            )
        };
        while loaded() != Some(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "clicking {css} on {} led to no new page",
                self.url()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.get(&format!("/element/{id}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn cookies(&self) -> Vec<Value> {
        self.get("/cookie").as_array().cloned().unwrap_or_default()
    }

    /// How wide the page is, and how wide the window shows it, in CSS
    /// pixels.
    pub(crate) fn widths(&self) -> (u64, u64) {
        let w = self.post(
            "/execute/sync",
            json!({
                "script": "return [document.documentElement.scrollWidth, window.innerWidth];",
                "args": [],
            }),
        );
        (w[0].as_u64().unwrap(), w[1].as_u64().unwrap())
    }

    /// Resize the window (a phone's, say).
    pub(crate) fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }));
    }

    /// The page as a PNG, kept under `target/test-artifacts/console/`; its
    /// path.
    pub(crate) fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.get("/screenshot").as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// Where the console tests keep their screenshots.
pub(crate) fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/console")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = ureq::delete(&url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post(base: &str, path: &str, body: Value) -> Value {
    let url = format!("{base}{path}");
    answer(ureq::post(&url).send_json(body), &url)
}

fn answer(response: Result<ureq::Response, ureq::Error>, url: &str) -> Value {
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = response.status();
    let value: Value = response.into_json().unwrap();
    // An error of a command that looks for something is the caller's to
    // read (`find` panics with the page).
    if status >= 400 && value["value"]["error"] != "no such element" {
        panic!("{url}: {status} {}", value["value"]);
    }
    value["value"].clone()
}
