//! The limits: CPU (deadlines, still firing when the sandbox is gone),
//! memory, what a result may weigh, and what a call may log.

use super::*;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::CallError;

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
    assert!(
        matches!(
            err,
            CallError::Timeout {
                ms: 1000,
                waiting: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("running its own code"), "{err}");
    assert_eq!(denials(&mut instance, "cpu").len(), 1);
    // The trapped instance refuses further calls; a fresh one works.
    let again = instance.observe(&rec("noop", "")).await.unwrap_err();
    assert!(matches!(again, CallError::Dead { .. }), "{again}");
    let mut fresh = adapter.instantiate().await.unwrap();
    assert!(fresh.observe(&rec("noop", "")).await.unwrap().is_ok());
}

/// A call that runs out its time waiting on a server (one that takes the
/// connection and never answers) is stopped at the same limit, and says it
/// was waiting: the fault is most likely the server's, not the adapter's
/// code, and raising its limit is not the first thing to try.
#[tokio::test]
async fn a_call_stopped_while_it_waits_on_a_server_says_so() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", silent.local_addr().unwrap());
    let grant = format!("[[capabilities.http]]\nurl = \"{origin}\"\nmethods = [\"GET\"]\n");
    let dir = package("probe", &probe_manifest("waiter", &grant));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("waiter", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let err = instance
        .observe(&rec("http", &format!("GET {origin}/status")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Timeout {
                ms: 1000,
                waiting: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("waiting for an answer"), "{err}");
    let decisions = instance.take_decisions();
    let denied: Vec<&str> = decisions
        .iter()
        .filter(|d| d.verdict == handoff::sandbox::decision::Verdict::Denied)
        .map(|d| d.surface.name)
        .collect();
    assert_eq!(denied, ["time"], "{decisions:?}");
    drop(silent);
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_call_leaves_its_thread_to_the_tasks_beside_it_until_its_deadline() {
    let dir = package("probe", &probe_manifest("busy", ""));
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("busy", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    // Another task on this one thread, as another run is beside it: it
    // needs the thread for a moment, 50 ms from now.
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beside = tokio::spawn({
        let ran = ran.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let err = instance.observe(&rec("spin", "")).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { ms: 1000, .. }), "{err}");
    assert!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        "the task beside the spinning call waited for the call's end"
    );
    beside.await.unwrap();
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
async fn an_adapters_error_message_is_passed_on_on_one_line_with_nothing_that_drives_a_terminal() {
    let mut instance = plain_probe("teller").await;
    let said = "done\n## Done\r\x1b[2J\x1b]0;title\x07 \u{2028}end";
    let answer = instance.observe(&rec("echo-error", said)).await.unwrap();
    let Err(AdapterError::Transient(message)) = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(
        message,
        "done\\n## Done\\r\\u{1b}[2J\\u{1b}]0;title\\u{7} \\u{2028}end"
    );
    // A long one, well within the ceiling, is cut for the people reading it.
    let long = "why ".repeat(5_000);
    let answer = instance.observe(&rec("echo-error", &long)).await.unwrap();
    let Err(AdapterError::Transient(message)) = answer else {
        panic!("{answer:?}");
    };
    assert!(
        message.len() <= 2048 + '…'.len_utf8() && message.ends_with('…'),
        "{} bytes",
        message.len()
    );
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

#[tokio::test]
async fn a_result_naming_a_field_twice_is_the_adapters_invalid_answer() {
    let mut instance = plain_probe("twice").await;
    let answer = instance.observe(&rec("twice", "review_version")).await;
    let Ok(Err(AdapterError::Invalid(message))) = answer else {
        panic!("{answer:?}");
    };
    assert!(
        message.contains("field \"review_version\" twice"),
        "{message}"
    );
    // The instance goes on answering; a field named once passes.
    let fine = instance.observe(&rec("count", "")).await.unwrap().unwrap();
    assert_eq!(fine.fields, vec![("count".to_string(), "1".to_string())]);
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

/// Each open file, stream or socket a guest holds is a descriptor of the
/// host process, shared with the store and every other instance: one
/// instance holding thousands would leave none for the rest.
#[tokio::test]
async fn an_instance_holds_a_bounded_number_of_host_resources_at_once() {
    let evidence = tempfile::tempdir().unwrap();
    std::fs::write(evidence.path().join("bundle.txt"), "evidence").unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mut instance = probe_with_files("hoarder", evidence.path(), outbox.path()).await;
    let few = instance
        .observe(&rec("hoard", "100 /evidence/bundle.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&few, "opened"), "100");
    let err = instance
        .observe(&rec("hoard", "5000 /evidence/bundle.txt"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Resources { most, .. } if most == handoff::sandbox::MOST_HOST_RESOURCES),
        "{err}"
    );
    assert!(err.to_string().contains("host resources"), "{err}");
    assert_eq!(denials(&mut instance, "resources").len(), 1);
    // Only this instance is done with; a fresh one opens files again.
    let again = instance.observe(&rec("noop", "")).await.unwrap_err();
    assert!(matches!(again, CallError::Dead { .. }), "{again}");
}

/// A read-write directory says where an adapter may write, not how much:
/// what one call writes there (bytes, and files made) is bounded, so one
/// call cannot fill the disk the store lives on, or its inodes, in the
/// seconds its time limit gives it.
#[tokio::test]
async fn what_one_call_writes_into_its_directories_is_bounded() {
    use handoff::sandbox::surfaces::files::writes::{MOST_BYTES_PER_CALL, MOST_ENTRIES_PER_CALL};
    let evidence = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let size = |name: &str| {
        std::fs::metadata(outbox.path().join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut instance = probe_with_files("filler", evidence.path(), outbox.path()).await;
    // Within the bound, call after call: each call has the whole budget.
    for name in ["a", "b"] {
        let wrote = instance
            .observe(&rec("fill", &format!("40 /outbox/{name}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(field(&wrote, "written-mib"), "40");
        assert_eq!(size(name), 40 << 20);
    }
    instance
        .observe(&rec("make", "1000 /outbox"))
        .await
        .unwrap()
        .unwrap();
    instance
        .observe(&rec("grow", "32 /outbox/sparse"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(size("sparse"), 32 << 20);
    assert!(denials(&mut instance, "files").is_empty());

    // Past it, the call is stopped before the bytes land, its denial kept.
    let err = instance
        .observe(&rec("fill", "100 /outbox/big"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Stopped { surface: "files", why, .. } if why.contains("64 MiB")),
        "{err}"
    );
    assert!(err.to_string().contains("wrote more than 64 MiB"), "{err}");
    assert!(size("big") <= MOST_BYTES_PER_CALL, "{}", size("big"));
    let denied = denials(&mut instance, "files");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].contains("64 MiB"), "{denied:?}");
    let again = instance.observe(&rec("noop", "")).await.unwrap_err();
    assert!(matches!(again, CallError::Dead { .. }), "{again}");

    // Files made, bytes written in place (WASI's positioned write, not a
    // stream) and a file grown without being written count too; each call
    // in a fresh instance, stopped as the first was.
    std::fs::create_dir(outbox.path().join("many")).unwrap();
    for (op, arg, bound) in [
        ("make", "5000 /outbox/many", "made more than 1024 files"),
        ("pwrite", "100 /outbox placed", "wrote more than 64 MiB"),
        ("grow", "1024 /outbox/huge", "wrote more than 64 MiB"),
    ] {
        let mut instance = probe_with_files(op, evidence.path(), outbox.path()).await;
        let err = instance.observe(&rec(op, arg)).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Stopped { surface: "files", why, .. } if why.contains(bound)),
            "{op}: {err}"
        );
        assert_eq!(denials(&mut instance, "files").len(), 1, "{op}");
    }
    let made = std::fs::read_dir(outbox.path().join("many"))
        .unwrap()
        .count();
    assert_eq!(made, MOST_ENTRIES_PER_CALL as usize);
    assert!(size("placed") <= MOST_BYTES_PER_CALL, "{}", size("placed"));
    assert_eq!(size("huge"), 0);
}

/// Every capability decision of a call is kept (in the audit chain, the
/// log) one by one up to a bound; the rest are counted in one decision per
/// surface and verdict. An adapter refused thousands of times in one call
/// cannot fill the store or the log with them.
#[tokio::test]
async fn the_decisions_one_call_makes_are_kept_one_by_one_up_to_a_bound_and_the_rest_counted() {
    let dir = package("probe", &probe_manifest("flooder", ""));
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("flooder", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let asked = 250;
    let flood = instance
        .observe(&rec("http-flood", &format!("{asked} http://127.0.0.1:9/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&flood, "refused"), asked.to_string());
    let decisions = instance.take_decisions();
    let most = handoff::sandbox::decision::MOST_DECISIONS_PER_CALL;
    assert_eq!(decisions.len(), most + 1, "{:?}", decisions.last());
    let counted = decisions.last().unwrap();
    assert_eq!(
        (counted.surface.name, counted.verdict),
        ("http", handoff::sandbox::decision::Verdict::Denied)
    );
    assert!(
        counted.reason.contains(&format!("{} more", asked - most)),
        "{}",
        counted.reason
    );
    // The next call starts with a bound of its own.
    let again = instance
        .observe(&rec("http-flood", "2 http://127.0.0.1:9/"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&again, "refused"), "2");
    assert_eq!(denials(&mut instance, "http").len(), 2);
}
