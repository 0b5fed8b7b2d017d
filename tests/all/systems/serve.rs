//! The service's doors that need the test servers: the durable NATS
//! consumer, and reconciliation against Redmine through the commit path.

use crate::support::scenario::*;
use crate::support::service::*;
use std::time::{Duration, Instant};

#[test]
fn reconciliation_finds_a_decision_made_in_redmine_that_no_event_announced() {
    let (s, r, seeded) = crate::support::servers::polling_scenario();
    // One pass at start, none after during the test.
    with_serve(&s, serve_config(1, 10, 3600, "redmine/release-reviews"));
    let service = Service::start(&s, None);

    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let found: Option<String> = s.runs().first().map(|r| r.run_id.clone());
        if let Some(run_id) = found {
            break run_id;
        }
        assert!(Instant::now() < deadline, "reconciliation created no run");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(outcome_of(&s, &run_id), "completed");
    let source = s.events()[0].0.clone();
    assert_eq!(source, "handoff/reconcile/governance");
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert_eq!(r.status_of(seeded.release), "Approved");

    // The webhook arrives late: the same decision, not a second run.
    let body = std::fs::read(s.path("events/redmine.json")).unwrap();
    let (code, answer) = service.post(&signed("late", &body), &body);
    assert_eq!(
        (code, answer["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{answer}"
    );
    assert_eq!(s.runs().len() as i64, 1);
    let (_, metrics) = service.get("/metrics");
    assert_lines(&metrics, &["handoff_reconciled_runs_total 1"]);
}

#[test]
fn a_reconciliation_pass_waits_for_room_at_the_source_adapter() {
    let (s, _, _) = crate::support::servers::polling_scenario();
    s.edit_config(
        "[adapters.governance]\n",
        "[adapters.governance]\nconcurrency = 1\n",
    );
    let context = s.context();
    let (mut engine, throttle, rt) = s.engine_sharing_throttle();
    rt.block_on(async {
        // Another caller holds the source adapter's only room.
        let held = throttle.acquire("governance").await.unwrap();
        let mut pass = std::pin::pin!(engine.reconcile(&context));
        tokio::select! {
            biased;
            done = &mut pass => panic!("the pass called the adapter without room: {:?}",
                done.map(|r| r.new_runs)),
            () = throttle.until_waiting("governance", 1) => {}
        }
        drop(held);
        let found = pass.await.unwrap();
        assert_eq!(found.new_runs.len(), 1, "the decision made in Redmine");
    });
}

/// A stream of the test's own on the shared NATS server, and a client.
fn decisions_stream(
    tag: &str,
) -> (
    String,
    String,
    async_nats::jetstream::Context,
    tokio::runtime::Runtime,
) {
    let server = std::env::var("HANDOFF_TEST_NATS_URL")
        .unwrap_or_else(|_| panic!("{}", crate::support::servers::NEEDS))
        .trim_start_matches("nats://")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = format!("DECISIONS_{tag}_{}", std::process::id());
    let js = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(server.as_str()).await.unwrap());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("decisions.{tag}.{}.>", std::process::id())],
            ..Default::default()
        })
        .await
        .unwrap();
        js
    });
    (server, stream, js, rt)
}

#[test]
fn a_nats_event_published_twice_and_redelivered_after_a_restart_makes_one_run() {
    let tag = "twice";
    let (server, stream, js, rt) = decisions_stream(tag);
    let subject = format!("decisions.{tag}.{}.review", std::process::id());
    let s = scenario(1, 10);
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    let filter = format!("decisions.{tag}.{}.>", std::process::id());
    let nats = format!(
        "\n[serve.nats]\nserver = \"{server}\"\nstream = \"{stream}\"\n\
         subject = \"{filter}\"\ndurable = \"handoff\"\nack-wait-seconds = 1\n"
    );
    std::fs::write(s.path("handoff.toml"), config + &nats).unwrap();
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let publish = |body: Vec<u8>| {
        rt.block_on(async {
            js.publish(subject.clone(), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        })
    };

    // First life: stored, then killed before the ack.
    let service = Service::start(&s, Some("intake:nats-before-ack"));
    publish(body.clone());
    service.wait_for("paused at fault point intake:nats-before-ack");
    assert_eq!(events_stored(&s), 1, "stored before the ack");
    drop(service); // SIGKILL: the message is unacknowledged

    // Second life: the message comes back, and the same event again.
    let service = Service::start(&s, None);
    publish(body);
    let deadline = Instant::now() + Duration::from_secs(60);
    let consumer_done = || {
        rt.block_on(async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
                .get_stream(&stream)
                .await
                .unwrap()
                .get_consumer("handoff")
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            info.num_pending == 0
                && info.num_ack_pending == 0
                && info.delivered.stream_sequence == 2
        })
    };
    while !consumer_done() {
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
        &format!("stream = \"{stream}\""),
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

/// The consumer's count of messages not yet delivered and of those
/// delivered and not yet acknowledged.
fn pending(
    js: &async_nats::jetstream::Context,
    rt: &tokio::runtime::Runtime,
    stream: &str,
) -> (u64, usize) {
    rt.block_on(async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
            .get_stream(stream)
            .await
            .unwrap()
            .get_consumer("handoff")
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        (info.num_pending, info.num_ack_pending)
    })
}

#[test]
fn a_busy_service_leaves_nats_messages_in_the_stream_until_it_has_room() {
    let tag = "busy";
    let (server, stream, js, rt) = decisions_stream(tag);
    let subject = format!("decisions.{tag}.{}.review", std::process::id());
    // One run in flight, one queued.
    let s = scenario(1, 1);
    let filter = format!("decisions.{tag}.{}.>", std::process::id());
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    let nats = format!(
        "\n[serve.nats]\nserver = \"{server}\"\nstream = \"{stream}\"\n\
         subject = \"{filter}\"\ndurable = \"handoff\"\n"
    );
    std::fs::write(s.path("handoff.toml"), config + &nats).unwrap();
    let publish = |body: Vec<u8>| {
        rt.block_on(async {
            js.publish(subject.clone(), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        })
    };
    // The seeded decision's run holds the one place in flight.
    let service = Service::start(&s, Some("after-apply:close-checklist"));
    publish(std::fs::read(s.path("events/accepted.json")).unwrap());
    service.wait_for("paused at fault point");
    for i in 1..=4 {
        publish(decision(&format!("busy-{i}"), &format!("RV-6{i:02}")));
    }
    // One more is taken, for the queue's one place, and acknowledged; the
    // other three are not even delivered: they wait in the stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (undelivered, unacknowledged) = pending(&js, &rt, &stream);
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(&js, &rt, &stream) != (0, 0) || events_stored(&s) != 5 {
        assert!(
            Instant::now() < deadline,
            "{} events stored; (undelivered, unacknowledged) = {:?}",
            events_stored(&s),
            pending(&js, &rt, &stream)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
