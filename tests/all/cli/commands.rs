//! The `handoff adapter` commands, run as a reviewer would run them (the
//! completions, man pages, `--json` and the service unit: `installed.rs`).

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};

pub(super) fn handoff(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .current_dir(cwd)
        .env_remove("HANDOFF_CONFIG")
        .env_remove("HANDOFF_STORE")
        .env("HANDOFF_LOG", "error")
        .args(args)
        .output()
        .expect("run handoff")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inspect_shows_digests_capabilities_imports_and_approval() {
    let cwd = tempfile::tempdir().unwrap();
    let pkg = built("probe");
    let out = handoff(cwd.path(), &["adapter", "inspect", pkg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let digest = handoff::sandbox::package::Package::read(&pkg)
        .unwrap()
        .component_sha256;
    for expected in [
        "adapter    probe 0.1.0",
        &format!("component  sha256 {digest}"),
        "http      http://127.0.0.1:1  GET",
        "files     /data  read-write",
        "covered by declared sockets",
        "inert baseline",
        "handoff:adapter/target@0.1.0",
        "NOT APPROVED",
        "verdict    REFUSED until approved",
        "configuration it reads ([adapters.X] config)\n  (none: an instance may set no config keys)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // An adapter that reads configuration lists each key it declares.
    let smtp = built("smtp");
    let out = handoff(cwd.path(), &["adapter", "inspect", smtp.to_str().unwrap()]);
    let text = stdout(&out);
    for expected in [
        "  server           required  the SMTP server as IP:port",
        "  to-*             optional  to-<channel id>: the role's address",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The embedded default keeps its cache under ./.handoff; looking made
    // no store (the first approval does).
    assert!(cwd.path().join(".handoff/cache").is_dir());
    assert!(!cwd.path().join(".handoff/handoff.db").exists());
}

#[test]
fn looking_at_a_directory_where_nothing_is_configured_leaves_nothing_there() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["check"][..],
        &["adapter", "list"],
        &["policy", "list"],
        &["runs", "list"],
    ] {
        handoff(cwd.path(), args);
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn approve_then_inspect_list_and_revoke() {
    let cwd = tempfile::tempdir().unwrap();
    let pkg = built("minimal");
    let pkg = pkg.to_str().unwrap();
    let out = handoff(
        cwd.path(),
        &["adapter", "approve", pkg, "--by", "sec-review"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("approved minimal 0.1.0"),
        "{}",
        stdout(&out)
    );

    let out = handoff(cwd.path(), &["adapter", "inspect", pkg, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["loads"], true);
    assert_eq!(report["approval"]["approved_by"], "sec-review");
    assert_eq!(report["status"], "approved, unchanged");
    // It writes nothing: no bound on what a call writes applies to it.
    assert_eq!(report["per_call"], serde_json::json!([]));
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["coverage"]["kind"] != "uncovered")
    );

    let out = handoff(cwd.path(), &["adapter", "list"]);
    assert!(
        stdout(&out).contains("minimal") && stdout(&out).contains("sec-review"),
        "{}",
        stdout(&out)
    );

    // Who revokes is someone, named on one bounded line.
    let long = "r".repeat(257);
    for by in ["", " ", "sec\nreview", "sec\u{1b}[2Jreview", long.as_str()] {
        let out = handoff(cwd.path(), &["adapter", "revoke", "minimal", "--by", by]);
        assert_eq!(out.status.code(), Some(2), "{by:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--by"), "{}", stderr(&out));
        assert!(stderr(&out).len() < 1000, "{}", stderr(&out));
    }
    // A very long one is shown by its start, and why it is refused is
    // still said after it.
    let out = handoff(
        cwd.path(),
        &["adapter", "revoke", "minimal", "--by", &"r".repeat(100_000)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(100000 bytes)") && stderr(&out).contains("a name is at most 256"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).len() < 1000, "{}", stderr(&out));
    let out = handoff(
        cwd.path(),
        &["adapter", "revoke", "minimal", "--by", "sec-review"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = handoff(cwd.path(), &["adapter", "inspect", pkg]);
    assert!(
        stdout(&out).contains("REVOKED by sec-review"),
        "{}",
        stdout(&out)
    );

    let out = handoff(
        cwd.path(),
        &["adapter", "revoke", "minimal", "--by", "sec-review"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no live approval"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn approve_refuses_a_package_whose_imports_are_not_declared() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = package(
        "probe",
        "[adapter]\nname = \"undeclared\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\n",
    );
    let out = handoff(
        cwd.path(),
        &[
            "adapter",
            "approve",
            dir.path().to_str().unwrap(),
            "--by",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("UNCOVERED"), "{}", stdout(&out));
    assert!(stderr(&out).contains("not approved"), "{}", stderr(&out));
    let out = handoff(cwd.path(), &["adapter", "list"]);
    assert!(
        stdout(&out).contains("no adapters approved"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_package_path_or_manifest_says_where_and_what() {
    let cwd = tempfile::tempdir().unwrap();
    let out = handoff(cwd.path(), &["adapter", "inspect", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    // The path is named as given, not its parent.
    assert!(
        stderr(&out).contains("no/such/dir: no such file or directory, so no adapter.toml here"),
        "{}",
        stderr(&out)
    );

    let dir = package(
        "minimal",
        "[adapter]\nname = \"m\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\n",
    );
    std::fs::write(
        dir.path().join("adapter.toml"),
        "[adapter]\nname = \"m\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\nshell = true\n",
    )
    .unwrap();
    let out = handoff(
        cwd.path(),
        &["adapter", "inspect", dir.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("adapter.toml") && err.contains("shell"),
        "{err}"
    );
}

#[test]
fn inspect_lists_what_a_manifest_widened_since_approval() {
    let cwd = tempfile::tempdir().unwrap();
    let manifest = "[adapter]\nname = \"grower\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\nactions = [\"set-state\"]\n";
    let dir = package("minimal", manifest);
    let pkg = dir.path().to_str().unwrap();
    let out = handoff(
        cwd.path(),
        &["adapter", "approve", pkg, "--by", "sec-review"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        dir.path().join("adapter.toml"),
        manifest.replace("[\"set-state\"]", "[\"set-state\", \"publish\"]")
            + "[limits]\nmemory-mib = 64\n",
    )
    .unwrap();
    let out = handoff(cwd.path(), &["adapter", "inspect", pkg]);
    let text = stdout(&out);
    for expected in [
        "WIDENED since approval",
        "+ action publish",
        "+ memory 64 MiB (approved: 32 MiB)",
        "verdict    REFUSED until approved",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_manifest_a_reviewer_cannot_read_as_plain_text_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let pkg = cwd.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    for entry in std::fs::read_dir(built("minimal")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), pkg.join(entry.file_name())).unwrap();
    }
    let manifest = pkg.join("adapter.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    // An escape that would erase the line above it at the reviewer's terminal.
    let hiding = text.replace("description = \"", "description = \"\\u001b[1A\\u001b[2K");
    assert_ne!(hiding, text);
    std::fs::write(&manifest, &hiding).unwrap();
    let out = handoff(cwd.path(), &["adapter", "inspect", pkg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("adapter.description holds the control character U+001B"),
        "{}",
        stderr(&out)
    );
    // Nor is a manifest that is not UTF-8 read with its bytes replaced.
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"# \xff\n");
    std::fs::write(&manifest, bytes).unwrap();
    let out = handoff(
        cwd.path(),
        &["adapter", "approve", pkg.to_str().unwrap(), "--by", "r"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not UTF-8"), "{}", stderr(&out));
}
