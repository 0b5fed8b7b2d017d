//! A caller past its rate: told when to come back, its token never logged.

use super::*;

#[test]
fn a_caller_past_its_rate_is_told_when_to_come_back_and_no_token_is_logged() {
    let s = scenario(1, 100);
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    config.push_str(
        "\n[roles.release-coordinator]\ntokens = [{ env = \"HANDOFF_TEST_API_TOKEN\" }]\n",
    );
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    let mut command = s.command(&["serve", "--listen", "127.0.0.1:0"]);
    command.env("HANDOFF_TEST_API_TOKEN", COORDINATOR);
    let service = {
        // Service::start with the token in the environment, logging at debug.
        let mut c = command;
        c.env("HANDOFF_LOG", "debug")
            .env("HANDOFF_TEST_WEBHOOK_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stderr = drain(child.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("handoff serve: listening on ")
            .expect("started")
            .to_string();
        Service {
            child,
            url,
            stderr,
            stdout: None,
        }
    };
    let mut limited = None;
    for _ in 0..200 {
        let (code, body) = call(&service, "GET", "/v1/audit/head", Some(COORDINATOR), None);
        if code == 429 {
            limited = Some(body);
            break;
        }
        assert_eq!(code, 200, "{body}");
    }
    let limited = limited.expect("200 requests at once were never limited");
    assert_eq!(limited["reason"], "rate-limited");
    assert!(
        limited["retry-after"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let mut service = service;
    service.stop();
    let logged: Vec<String> = service.stderr.try_iter().collect();
    assert!(!logged.is_empty(), "the service logged at debug");
    assert!(
        logged.iter().all(|l| !l.contains(COORDINATOR)),
        "a token in the log"
    );
}
