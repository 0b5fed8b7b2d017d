//! `handoff adapter conform` against real components and a real record
//! store: the reference record store keeps its promises and writes once; an
//! adapter that does not report its writes is caught.

use crate::support::scenario::*;
use serde_json::Value;

fn conform(s: &Scenario, instance: &str, record: &str, action: &str) -> (i32, Value) {
    let args = ["adapter", "conform", instance, "--record", record];
    let o = s.handoff(&[&args[..], &["--action", action, "--json"]].concat());
    let (code, out, err) = outcome(&o);
    let report = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("exit {code}, not JSON ({e}): {out}\n{err}"));
    (code, report)
}

fn kept(report: &Value) -> Vec<bool> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kept"].as_bool().unwrap())
        .collect()
}

#[test]
fn the_reference_record_store_keeps_its_promises_and_writes_once() {
    let s = Scenario::new();
    let (code, report) = conform(&s, "checklist", "checklist/CL-7", "set-state=closed");
    assert_eq!(code, 0, "{report}");
    assert_eq!(kept(&report), [true; 4], "{report}");
    let key = report["key"].as_str().unwrap();
    let writes = s.journal("checklist");
    assert_eq!(writes.len(), 1, "two applies, one write: {writes:?}");
    assert_eq!(writes[0]["key"], key);
    assert_eq!(
        s.record("checklist", "checklist", "CL-7")["state"],
        "closed"
    );

    let (code, report) = conform(&s, "notify", "channel/scratch", "publish=conformance");
    assert_eq!(code, 0, "{report}");
    assert_eq!(s.messages("notify", "scratch").len(), 1);

    let (code, report) = conform(&s, "checklist", "checklist/CL-404", "set-state=closed");
    assert_eq!(code, 1);
    assert_eq!(kept(&report), [true, false], "{report}");
    let (_, out, _) = outcome(&s.handoff(&[
        "adapter",
        "conform",
        "checklist",
        "--record",
        "checklist/CL-404",
        "--action",
        "set-state=closed",
    ]));
    assert!(
        out.contains("could not be tried; fix what the failing call says (the record, the action"),
        "{out}"
    );
}

#[test]
fn an_adapter_that_does_not_report_its_writes_is_caught() {
    let s = Scenario::new();
    let probe = crate::support::built("probe");
    s.edit_config(
        "[adapters.archive]",
        &format!(
            "[adapters.probe]\npackage = \"{}\"\n\n[adapters.archive]",
            probe.display()
        ),
    );
    let approve = s.handoff(&[
        "adapter",
        "approve",
        probe.to_str().unwrap(),
        "--by",
        "security-review",
    ]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let (code, report) = conform(&s, "probe", "noop/x", "set-state=closed");
    assert_eq!(code, 1, "{report}");
    assert_eq!(kept(&report), [true, true, false], "{report}");
    let detail = report["checks"][2]["detail"].as_str().unwrap();
    assert!(
        detail.contains("is not among the applied keys") && detail.contains("write again"),
        "{detail}"
    );

    let (code, _, err) = outcome(&s.handoff(&[
        "adapter",
        "conform",
        "nowhere",
        "--record",
        "a/b",
        "--action",
        "clear-entry",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("no adapter instance \"nowhere\""), "{err}");
    let (code, _, err) = outcome(&s.handoff(&[
        "adapter", "conform", "probe", "--record", "a/b", "--action", "close",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("use set-state=STATE"), "{err}");
}
