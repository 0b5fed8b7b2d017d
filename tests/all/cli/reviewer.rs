//! What a person reads, as snapshots (`tests/all/cli/snapshots/`): what a
//! security reviewer sees of an adapter (`adapter inspect`), what an
//! operator sees of everything a configuration reaches (`check --reach`),
//! and the packet a follow-up hands to a person, in Markdown. Digests,
//! paths and times are redacted; everything else is compared as written,
//! so a change to any of them is a change someone reviews
//! (`cargo insta review`).

use crate::support::built;
use crate::support::scenario::*;

/// The settings that redact what differs from one build or run to the next.
fn redacted(s: Option<&Scenario>) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    if let Some(s) = s {
        let dir = s.path("").display().to_string();
        settings.add_filter(&regex_escape(dir.trim_end_matches('/')), "[workspace]");
    }
    settings.add_filter(&regex_escape(handoff::BUILT_PACKAGES_DIR), "[packages]");
    settings.add_filter(&regex_escape(env!("CARGO_TARGET_TMPDIR")), "[tmp]");
    // A redacted path padded to a column: the padding depends on where the
    // tree was checked out, so it shrinks to two spaces.
    settings.add_filter(r"(\[(?:workspace|packages|tmp)\]\S*) +", "$1  ");
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[sha256]");
    settings.add_filter(r"sha256 [0-9a-f]{12}\b", "sha256 [short]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    settings.add_filter(r"\(\d+ KiB\)", "([size] KiB)");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[test]
fn adapter_inspect_shows_a_reviewer_the_s3_archive_as_declared() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .current_dir(dir.path())
        .env_remove("HANDOFF_CONFIG")
        .env_remove("HANDOFF_STORE")
        .env("HANDOFF_LOG", "error")
        .args(["adapter", "inspect"])
        .arg(built("s3-archive"))
        .output()
        .unwrap();
    // Not approved: the verdict says so (inspect itself succeeds).
    assert!(o.status.success(), "{}", text(&o.stderr));
    redacted(None).bind(|| insta::assert_snapshot!("inspect_s3_archive", text(&o.stdout)));
}

#[test]
fn check_reach_shows_everything_the_example_reaches() {
    let s = Scenario::new();
    let o = s.handoff(&["check", "--reach"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    redacted(Some(&s)).bind(|| insta::assert_snapshot!("check_reach_example", text(&o.stdout)));
}

#[test]
fn a_packet_reads_for_a_person_in_markdown() {
    let s = Scenario::new();
    std::fs::write(
        s.path("state/archive/R-2026.11/evidence.tar"),
        b"a bundle replaced after the review",
    )
    .unwrap();
    let o = s.run();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let md = s.handoff(&["follow-ups", "show", "1"]);
    assert!(md.status.success(), "{}", text(&md.stderr));
    redacted(Some(&s))
        .bind(|| insta::assert_snapshot!("packet_evidence_mismatch", text(&md.stdout)));
}
