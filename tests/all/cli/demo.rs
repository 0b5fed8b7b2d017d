//! `handoff demo`, the README's first command: every case ends as the
//! scenario says it must, and the demo tells a reader so.

use std::path::Path;
use std::process::Command;

fn demo(dir: &std::path::Path) -> std::process::Output {
    demo_from(dir, Path::new("."))
}

/// The demo started in `cwd`.
fn demo_from(dir: &Path, cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["demo", "--dir"])
        .arg(dir)
        .current_dir(cwd)
        .env_remove("HANDOFF_LOG")
        .output()
        .expect("run handoff demo")
}

#[test]
fn the_demo_runs_every_case_to_its_outcome_and_verifies_each_audit_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |case: &str| {
        stdout
            .lines()
            .find(|l| l.contains(case))
            .unwrap_or_else(|| panic!("no row for {case:?} in\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(row("review accepted").ends_with("completed 6"), "{stdout}");
    assert!(row("delivered 10 more times").ends_with("completed → duplicate-suppressed 6"));
    assert!(row("reopened").ends_with("halted-for-follow-up 0"));
    assert!(row("evidence does not match").ends_with("halted-for-follow-up 0"));
    assert!(row("closed by hand").ends_with("completed-with-skips 5"));
    assert!(row("changes nothing").ends_with("partially-completed 1"));
    assert!(row("queue offline").ends_with("partially-completed → completed 6"));
    for reason in [
        "[stale-approval]",
        "[version-mismatch]",
        "[mapping-missing]",
        "[evidence-hash-mismatch]",
        "[not-confirmed]",
        "[retries-exhausted]",
    ] {
        assert!(stdout.contains(reason), "no {reason} packet in\n{stdout}");
    }
    assert!(stdout.contains("resolved: resume by release-coordinator"));
    assert!(stdout.contains("Audit: 9 of 9 hash chains recomputed and verified"));
    // The retries it provokes on purpose are not shown as warnings.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second run starts over in the same place, here started where a
    // handoff.toml the demo cannot read lies (it writes its own).
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("handoff.toml"), "not-a-key = 1\n").unwrap();
    let again = demo_from(&dir, &elsewhere);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn the_demo_refuses_to_replace_a_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), b"keep me").unwrap();
    let out = demo(tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was not made by `handoff demo`") && stderr.contains("--dir"),
        "{stderr}"
    );
    assert!(tmp.path().join("precious.txt").is_file());
}
