//! The service's NATS JetStream door against the test NATS server: a
//! message stored before its ack and recognised when it comes again, a
//! stream that is not there refusing the start, a busy service leaving
//! the backlog in the stream, a stopping one leaving new messages there
//! for the next, and a server that goes away: gone for good, or restarted
//! under the service, which takes up the stream again by itself.

use crate::support::scenario::*;
use crate::support::service::*;
use std::time::{Duration, Instant};

/// A stream of the test's own on the shared NATS server, a client, and the
/// subject decisions are published on.
struct Decisions {
    server: String,
    stream: String,
    filter: String,
    subject: String,
    js: async_nats::jetstream::Context,
    rt: tokio::runtime::Runtime,
}

impl Decisions {
    fn new(tag: &str) -> Decisions {
        let server = std::env::var("HANDOFF_TEST_NATS_URL")
            .unwrap_or_else(|_| panic!("{}", crate::support::servers::NEEDS));
        Decisions::on(&server, tag)
    }

    /// A stream on the NATS server at `server`.
    fn on(server: &str, tag: &str) -> Decisions {
        let server = server.trim_start_matches("nats://").to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stream = format!("DECISIONS_{tag}_{}", std::process::id());
        let filter = format!("decisions.{tag}.{}.>", std::process::id());
        let js = rt.block_on(async {
            let js =
                async_nats::jetstream::new(async_nats::connect(server.as_str()).await.unwrap());
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![filter.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
            js
        });
        Decisions {
            subject: format!("decisions.{tag}.{}.review", std::process::id()),
            server,
            stream,
            filter,
            js,
            rt,
        }
    }

    /// The scenario's service takes its decisions from this stream
    /// (`more`: further lines of its `[serve.nats]`).
    fn feed(&self, s: &Scenario, more: &str) {
        let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
        let nats = format!(
            "\n[serve.nats]\nserver = \"{}\"\nstream = \"{}\"\n\
             subject = \"{}\"\ndurable = \"handoff\"\n{more}",
            self.server, self.stream, self.filter
        );
        std::fs::write(s.path("handoff.toml"), config + &nats).unwrap();
    }

    fn publish(&self, body: Vec<u8>) {
        self.publish_on(&self.subject, body)
    }

    /// One publish, and its answer (an error, while the server is away).
    fn try_publish(&self, body: Vec<u8>) -> Result<(), String> {
        self.rt.block_on(async {
            let ack = self
                .js
                .publish(self.subject.clone(), body.into())
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map(drop).map_err(|e| e.to_string())
        })
    }

    fn publish_on(&self, subject: &str, body: Vec<u8>) {
        self.rt.block_on(async {
            self.js
                .publish(subject.to_string(), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        })
    }

    /// Wait (at most `within`) until the first `n` messages are delivered
    /// and acknowledged, and `n` events stored.
    fn settle(&self, s: &Scenario, n: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.pending() != (0, 0, n) || events_stored(s) != n as i64 {
            assert!(
                Instant::now() < deadline,
                "not settled within {within:?}: {} events stored; (undelivered, \
                 unacknowledged, delivered up to) = {:?}",
                events_stored(s),
                self.pending()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The durable consumer's state, once the service has made it.
    fn consumer_info(&self) -> Option<async_nats::jetstream::consumer::Info> {
        self.rt.block_on(async {
            let stream = self.js.get_stream(&self.stream).await.unwrap();
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer("handoff").await.ok()?;
            Some(consumer.info().await.unwrap().clone())
        })
    }

    /// The pull requests waiting on the durable consumer (none before the
    /// service has made it).
    fn waiting(&self) -> usize {
        self.consumer_info().map_or(0, |info| info.num_waiting)
    }

    /// The durable consumer's messages not yet delivered, those delivered
    /// and not yet acknowledged, and the stream position of its last
    /// delivery.
    fn pending(&self) -> (u64, usize, u64) {
        let info = self.consumer_info().expect("the durable consumer");
        (
            info.num_pending,
            info.num_ack_pending,
            info.delivered.stream_sequence,
        )
    }
}

#[test]
fn a_nats_event_published_twice_and_redelivered_after_a_restart_makes_one_run() {
    let decisions = Decisions::new("twice");
    let s = scenario(1, 10);
    decisions.feed(&s, "ack-wait-seconds = 1\n");
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();

    // First life: stored, then killed before the ack.
    let service = Service::start(&s, Some("intake:nats-before-ack"));
    decisions.publish(body.clone());
    service.wait_for("paused at fault point intake:nats-before-ack");
    assert_eq!(events_stored(&s), 1, "stored before the ack");
    drop(service); // SIGKILL: the message is unacknowledged

    // Second life: the message comes back, and the same event again.
    let service = Service::start(&s, None);
    decisions.publish(body);
    let deadline = Instant::now() + Duration::from_secs(60);
    while decisions.pending() != (0, 0, 2) {
        assert!(
            Instant::now() < deadline,
            "the consumer did not acknowledge both messages"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run_id = s.runs()[0].run_id.clone();
    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.runs().len() as i64, 1);
    assert_eq!(events_stored(&s), 1);
    assert_eq!(s.writes().len(), 6);
    let (_, metrics) = service.get("/metrics");
    // The redelivery and the second publish are duplicates.
    assert_lines(&metrics, &["handoff_events_duplicate_total 2"]);
    drop(service);

    // A stream that does not exist refuses the start, naming it.
    s.edit_config(
        &format!("stream = \"{}\"", decisions.stream),
        "stream = \"NO_SUCH_STREAM\"",
    );
    let o = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("HANDOFF_TEST_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("NO_SUCH_STREAM"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn a_busy_service_leaves_nats_messages_in_the_stream_until_it_has_room() {
    let decisions = Decisions::new("busy");
    // One run in flight, one queued.
    let s = scenario(1, 1);
    decisions.feed(&s, "");
    // The seeded decision's run holds the one place in flight.
    let service = Service::start(&s, Some("after-apply:close-checklist"));
    decisions.publish(std::fs::read(s.path("events/accepted.json")).unwrap());
    service.wait_for("paused at fault point");
    for i in 1..=4 {
        decisions.publish(decision(&format!("busy-{i}"), &format!("RV-6{i:02}")));
    }
    // One more is taken, for the queue's one place, and acknowledged; the
    // other three are not even delivered: they wait in the stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (undelivered, unacknowledged, _) = decisions.pending();
        if events_stored(&s) == 2 && unacknowledged == 0 {
            assert_eq!(undelivered, 3, "messages the service had no room for");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events stored, {undelivered} messages undelivered and {unacknowledged} \
             delivered and unacknowledged",
            events_stored(&s)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(service);
    // With room again, every message is taken, each once.
    let _service = Service::start(&s, None);
    decisions.settle(&s, 5, Duration::from_secs(60));
}

#[test]
fn a_nats_message_larger_than_a_webhook_body_may_be_is_refused_for_good() {
    let decisions = Decisions::new("large");
    let s = scenario(1, 10);
    decisions.feed(&s, "ack-wait-seconds = 1\n");
    let service = Service::start(&s, None);
    // Past the service's `max-body-bytes` (8192 here), as a webhook's body
    // may not be; then a decision of the usual size.
    let mut large: serde_json::Value =
        serde_json::from_slice(&decision("large-1", "RV-700")).unwrap();
    large["data"]["padding"] = serde_json::json!("x".repeat(9000));
    decisions.publish(large.to_string().into_bytes());
    decisions.publish(std::fs::read(s.path("events/accepted.json")).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while decisions.pending() != (0, 0, 2) {
        assert!(
            Instant::now() < deadline,
            "not both settled: {:?}",
            decisions.pending()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stored: Vec<String> = s.events().into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        stored,
        ["gov-evt-5531"],
        "only the decision of the usual size"
    );
    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &["handoff_requests_refused_total{reason=\"nats-too-large\"} 1"],
    );
}

#[test]
fn a_refused_message_is_logged_with_its_subject_bounded_and_inert() {
    let decisions = Decisions::new("subject");
    let s = scenario(1, 10);
    decisions.feed(&s, "");
    let service = Service::start_logging(&s, None, "info");
    // A subject of the publisher's own making, under the stream's filter.
    let subject = format!(
        "{}.x\u{1b}]0;owned\u{7}{}",
        decisions.filter.trim_end_matches(".>"),
        "y".repeat(3000)
    );
    decisions.publish_on(&subject, b"not json".to_vec());
    let line = service.line_with("not a CloudEvent; terminated");
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{7}'),
        "{line}"
    );
    assert!(line.contains("\\u{1b}]0;owned"), "{line}");
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
}

#[test]
fn a_message_published_as_the_service_stops_is_taken_at_once_by_the_next() {
    let decisions = Decisions::new("stopping");
    let s = scenario(1, 10);
    // The default acknowledgement wait (30 s): a message handed to a
    // service that stops without it would be held that long.
    decisions.feed(&s, "");
    // A run in flight keeps the stopping service (and its connection) up.
    s.edit_config("shutdown-grace-seconds = 1", "shutdown-grace-seconds = 30");
    let service = Service::start_logging(&s, Some("after-apply:close-checklist"), "info");
    decisions.publish(std::fs::read(s.path("events/accepted.json")).unwrap());
    service.wait_for("paused at fault point");
    let deadline = Instant::now() + Duration::from_secs(30);
    while decisions.waiting() == 0 {
        assert!(Instant::now() < deadline, "no pull request came");
        std::thread::sleep(Duration::from_millis(20));
    }
    service.signal_term();
    // Its intake closed (the listener with it); then a decision comes,
    // while the door may still have a pull request out.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{}/healthz", service.url))
        .call()
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the listener did not close");
        std::thread::sleep(Duration::from_millis(20));
    }
    decisions.publish(decision("stopping-1", "RV-801"));
    service.wait_for("serve.nats: stopped taking messages");
    drop(service);
    // Taken in before the door stopped, left in the stream, or given back:
    // never held for the acknowledgement wait.
    let _service = Service::start(&s, None);
    decisions.settle(&s, 2, Duration::from_secs(10));
}

/// A NATS server of the test's own (`nats-server`, installed with the test
/// servers), so that it can be killed; killed when dropped.
struct OwnNats {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl OwnNats {
    fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        OwnNats {
            child: OwnNats::serve(port, dir.path()),
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `nats-server` on `port` keeping its streams in `dir`, once it listens.
    fn serve(port: u16, dir: &std::path::Path) -> std::process::Child {
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nats-server: {e}; {}", crate::support::servers::NEEDS));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// Killed, then started again on its port with its streams.
    fn restart(&mut self) {
        self.kill();
        let port = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = OwnNats::serve(port, self._dir.path());
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_service_whose_nats_server_is_gone_stops_without_waiting_on_it() {
    let mut nats = OwnNats::start();
    let decisions = Decisions::on(&nats.url, "gone");
    let s = scenario(1, 10);
    decisions.feed(&s, "");
    let service = Service::start_logging(&s, None, "info");
    let deadline = Instant::now() + Duration::from_secs(30);
    while decisions.waiting() == 0 {
        assert!(Instant::now() < deadline, "no pull request came");
        std::thread::sleep(Duration::from_millis(20));
    }
    nats.kill();
    service.wait_for("event: client error");
    service.signal_term();
    // Nothing can be given back or sent: the door says so and stops,
    // rather than waiting out a request or a flush that cannot end.
    let line = service.line_with("serve.nats: acknowledgements not sent");
    assert!(line.contains("the connection is down"), "{line}");
    service.wait_for("serve.nats: stopped taking messages");
    let (status, _) = service.ended();
    assert!(status.success(), "{status}");
}

/// The NATS server goes away under the service and comes back (killed and
/// started again on its port, with its streams): the door takes up the
/// stream again by itself, and a message published after the restart is
/// taken and acknowledged, with no restart of the service.
#[test]
fn a_nats_server_restarted_under_the_service_is_taken_up_again() {
    let mut nats = OwnNats::start();
    let decisions = Decisions::on(&nats.url, "restarted");
    let s = scenario(1, 10);
    // An acknowledgement the killed server had not kept yet comes back
    // as a redelivery, soon.
    decisions.feed(&s, "ack-wait-seconds = 1\n");
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let service = Service::start(&s, None);
    decisions.publish(body.clone());
    decisions.settle(&s, 1, Duration::from_secs(60));

    nats.restart();
    // The test's own client reconnects as the service's must: the stream
    // takes the message once the server has its streams back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = decisions.try_publish(body.clone()) {
        assert!(
            Instant::now() < deadline,
            "the restarted server took nothing: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while decisions.pending() != (0, 0, 2) {
        assert!(
            Instant::now() < deadline,
            "the message published after the restart was not taken: {:?}",
            decisions.pending()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run_id = s.runs()[0].run_id.clone();
    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.runs().len(), 1, "the second is the first again");
    assert_eq!(s.writes().len(), 6, "each step written once");
    let (_, metrics) = service.get("/metrics");
    let duplicates: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("handoff_events_duplicate_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The second message, and the first again if its ack died with the
    // server.
    assert!((1..=2).contains(&duplicates), "{metrics}");
}
