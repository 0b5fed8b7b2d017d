//! The HTTP door under crowds: a thousand slow connections under a small
//! file limit, and a flood of events beyond the run queue.

use crate::support::scenario::*;
use crate::support::service::*;
use std::time::Duration;

#[test]
fn a_thousand_slow_connections_under_a_1024_file_limit_do_not_stop_service() {
    use std::io::{Read, Write};
    let s = Scenario::new();
    // The slow connections would be closed by the header timeout only
    // after 20 s: a well-formed request is answered well before, because
    // the service closes the connection that waited longest for its
    // headers when every place is taken.
    with_serve(
        &s,
        serve_config(1, 100, 0, SOURCE).replace(
            "shutdown-grace-seconds = 1",
            "shutdown-grace-seconds = 1\nheader-read-timeout-seconds = 20\n\
             body-read-timeout-seconds = 20\nmax-connections = 64",
        ),
    );
    // systemd's default limit of open files, for the service alone.
    let service = Service::start_under(&s, &["prlimit", "--nofile=1024:1024"], None, "error");
    let addr = service.url.trim_start_matches("http://").to_string();
    // A third trickle their headers, a third say nothing, a third send
    // headers and then a body that never comes.
    let body = decision("slow-ok", "RV-701");
    let mut slow = Vec::new();
    for i in 0..1000 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        match i % 3 {
            0 => c
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
                .unwrap(),
            1 => {}
            _ => c
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                .unwrap(),
        }
        slow.push(c);
    }
    // A well-formed request is answered while they hang on, long before
    // any of them times out.
    let mut request =
        ureq::post(&format!("{}/v1/events", service.url)).timeout(Duration::from_secs(10));
    for (k, v) in signed("slow-ok", &body) {
        request = request.set(k, &v);
    }
    let answered = request.send_bytes(&body).map(|r| r.status());
    assert_eq!(answered.ok(), Some(202));
    assert_eq!(service.get("/healthz").0, 200);
    // The service closed all but the places it has: no more than 64 of
    // the slow connections are still open.
    let mut open = 0;
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    open += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    assert!(open <= 64, "{open} slow connections still open");
}

#[test]
fn a_flood_beyond_the_queue_gets_429_and_nothing_beyond_it_is_stored() {
    // One worker, held at a fault point by the first run; room for one more.
    let s = scenario(1, 1);
    let service = Service::start(&s, Some("after-apply:close-checklist"));
    // The seeded review, so that its run gets as far as the first write.
    let first = std::fs::read(s.path("events/accepted.json")).unwrap();
    assert_eq!(service.post(&signed("f0", &first), &first).0, 202);
    service.wait_for("paused at fault point");
    let second = decision("flood-1", "RV-501");
    assert_eq!(service.post(&signed("f1", &second), &second).0, 202);
    let mut refused = 0;
    for i in 2..12 {
        let body = decision(&format!("flood-{i}"), &format!("RV-5{i:02}"));
        let (code, answer) = service.post(&signed("f", &body), &body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (429, Some("backpressure")),
            "{answer}"
        );
        assert_eq!(answer["retry-after"], "1");
        refused += 1;
    }
    assert_eq!(refused, 10);
    assert_eq!(events_stored(&s), 2, "only what was answered 202 is stored");
    let (code, _) = service.get("/healthz");
    assert_eq!(code, 200, "still serving");
}
