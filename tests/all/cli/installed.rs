//! What an operator installs and scripts against: the service unit, shell
//! completions, man pages, and `--json` on every command.

use super::commands::handoff;
use crate::support::*;
use std::path::Path;

#[test]
fn the_service_unit_verifies_where_systemd_analyze_exists() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        println!("systemd-analyze is not installed here: the unit is not verified");
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contrib/handoff.service"
    ))
    .unwrap();
    assert!(
        !unit
            .lines()
            .any(|l| l.starts_with("MemoryDenyWriteExecute")),
        "wasmtime's JIT needs memory that is written and then run"
    );
    for needed in ["StateDirectory=handoff", "LoadCredential=", "User=handoff"] {
        assert!(unit.contains(needed), "{needed}");
    }
    // Verified as installed, with the binary this build made.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handoff.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/handoff", env!("CARGO_BIN_EXE_handoff")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn completions_are_made_for_each_shell_and_bash_reads_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let out = handoff(Path::new("/"), &["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("follow-ups"),
            "{shell}: the subcommands are in it"
        );
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        handoff(Path::new("/"), &["completions", "bash"]).stdout,
    )
    .unwrap();
    // Sourced by bash, it registers a completion for handoff, and that
    // completion offers the subcommands.
    let check = format!(
        "set -e; source {}; complete -p handoff; COMP_WORDS=(handoff fol); COMP_CWORD=1; \
         _handoff handoff fol handoff; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &check])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.lines().any(|l| l == "follow-ups"), "{said}");
}

#[test]
fn man_pages_are_made_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = handoff(dir.path(), &["man", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "handoff.1",
        "handoff-run.1",
        "handoff-follow-ups-resolve.1",
        "handoff-serve.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
}

/// Every command a person or a script runs, by its path of subcommands.
fn leaf_commands(
    command: &clap::Command,
    path: Vec<String>,
    out: &mut Vec<(Vec<String>, clap::Command)>,
) {
    let subs: Vec<_> = command.get_subcommands().collect();
    if subs.is_empty() {
        out.push((path.clone(), command.clone()));
    }
    for sub in subs {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        leaf_commands(sub, p, out);
    }
}

#[test]
fn every_command_takes_json_and_the_writing_ones_answer_in_it() {
    let mut leaves = Vec::new();
    leaf_commands(
        &<handoff::cli::Cli as clap::CommandFactory>::command(),
        vec![],
        &mut leaves,
    );
    assert!(leaves.len() > 20, "{} commands", leaves.len());
    let mut without = Vec::new();
    for (path, command) in &leaves {
        // These print a shell script and write man pages: JSON means nothing there.
        if matches!(path[0].as_str(), "completions" | "man" | "help")
            || path.last().is_some_and(|l| l == "help")
        {
            continue;
        }
        let takes_json = command.get_arguments().any(|a| {
            a.get_long() == Some("json")
                || a.get_visible_aliases().is_some_and(|v| v.contains(&"json"))
        });
        if !takes_json {
            without.push(format!("handoff {}", path.join(" ")));
        }
    }
    assert!(without.is_empty(), "no --json: {without:?}");

    // Run as the README shows them, they answer in JSON.
    let s = crate::support::scenario::Scenario::unapproved();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = s.handoff(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    for name in ["fs-records", "fs-archive"] {
        let pkg = built(name);
        let approved = json(&[
            "adapter",
            "approve",
            pkg.to_str().unwrap(),
            "--by",
            "security-review",
            "--json",
        ]);
        assert_eq!(approved["approved"], name);
        assert_eq!(approved["component_sha256"].as_str().unwrap().len(), 64);
    }
    let policy = json(&[
        "policy",
        "approve",
        "policies/release-readiness.toml",
        "--by",
        "release-owner",
        "--json",
    ]);
    assert_eq!(
        (policy["approved"].as_str(), policy["already"].as_bool()),
        (Some("release-readiness-closure"), Some(false))
    );
    let run = json(&[
        "run",
        "--event",
        "events/accepted.json",
        "--context",
        "context.json",
        "--json",
    ]);
    assert_eq!(run["outcome"], "completed");
    let head = json(&["audit", "head", "--json"]);
    assert_eq!(
        head["anchor"],
        format!("{}:{}", head["seq"], head["hash"].as_str().unwrap())
    );
    let revoked = json(&[
        "adapter",
        "revoke",
        "fs-archive",
        "--by",
        "security-review",
        "--json",
    ]);
    assert_eq!(revoked["revoked"], "fs-archive");
    let revoked = json(&[
        "policy",
        "revoke",
        "release-readiness-closure",
        "--by",
        "release-owner",
        "--json",
    ]);
    assert_eq!(revoked["revoked"], "release-readiness-closure");
}

#[test]
fn output_to_a_reader_that_has_gone_ends_quietly() {
    // `handoff runs list | head -1`, the reader gone before the command
    // writes: the pipe's read end is closed before it starts.
    let s = crate::support::scenario::Scenario::new();
    assert!(s.run().status.success());
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "run-1"],
        &["audit", "export"],
        &["follow-ups", "list", "--all"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s
            .command(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
