//! A loopback receiver that holds every post until it is released, keeping
//! each post's key (`webhook-id`): runs in flight stay at their posts for
//! as long as a test needs them there.

use super::*;

/// What the receiver's handler shares with the test.
#[derive(Clone)]
struct Held {
    keys: Arc<Mutex<Vec<String>>>,
    open: Arc<Mutex<usize>>,
    answered: Arc<Mutex<usize>>,
    release: tokio::sync::watch::Receiver<bool>,
}

async fn hold(State(h): State<Held>, headers: HeaderMap) -> StatusCode {
    let key = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    h.keys.lock().unwrap().push(key);
    *h.open.lock().unwrap() += 1;
    let mut release = h.release.clone();
    release.wait_for(|go| *go).await.unwrap();
    *h.open.lock().unwrap() -= 1;
    *h.answered.lock().unwrap() += 1;
    StatusCode::OK
}

pub(super) struct Holding {
    pub(super) origin: String,
    held: Held,
    go: tokio::sync::watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
}

impl Holding {
    pub(super) fn start() -> Holding {
        let (go, release) = tokio::sync::watch::channel(false);
        let held = Held {
            keys: Arc::default(),
            open: Arc::default(),
            answered: Arc::default(),
            release,
        };
        let app = Router::new().fallback(hold).with_state(held.clone());
        let (origin, runtime) = crate::support::serve_in_background(app);
        Holding {
            origin,
            held,
            go,
            _runtime: runtime,
        }
    }

    /// Posts held now.
    pub(super) fn open(&self) -> usize {
        *self.held.open.lock().unwrap()
    }

    /// Posts answered so far.
    pub(super) fn answered(&self) -> usize {
        *self.held.answered.lock().unwrap()
    }

    /// Every post's key, in the order they came.
    pub(super) fn keys(&self) -> Vec<String> {
        self.held.keys.lock().unwrap().clone()
    }

    /// Wait (at most a minute) until `n` posts are held.
    pub(super) fn wait_until_open(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.open() < n {
            assert!(
                Instant::now() < deadline,
                "{} posts held, never {n}",
                self.open()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Answer every post held, and every later one at once.
    pub(super) fn release(&self) {
        self.go.send(true).unwrap();
    }
}
