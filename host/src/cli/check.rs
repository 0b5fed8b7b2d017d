//! `handoff check`: whether every policy and adapter instance of the
//! configuration would be let run, one line each, every problem with its fix.

use super::{Ctx, exit};
use crate::config::env::Origin;
use crate::readiness::{self, Finding};
use anyhow::Result;

pub fn check(ctx: &Ctx, reach: bool, json: bool) -> Result<u8> {
    let store = ctx.store_or_empty()?;
    let findings = readiness::check(&ctx.config, &store)?;
    let settings = effective(ctx);
    if json {
        let configuration: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(key, value, from)| {
                (
                    key.clone(),
                    serde_json::json!({ "value": value, "from": from.to_string() }),
                )
            })
            .collect();
        say!(
            "{}",
            serde_json::json!({ "configuration": configuration, "findings": findings })
        );
    } else {
        say!("configuration (value, and where it came from):");
        for (key, value, from) in &settings {
            say!("  {key:<34} {value:<40} {from}");
        }
        say!();
        say_part!("{}", render(&findings, reach));
    }
    Ok(if findings.iter().any(|f| f.problem.is_some()) {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// Every `[store]`, `[serve]`, `[ceiling]` and `[retry]` setting as it is
/// in force, and where it came from (a `--store` on the command line wins
/// over everything).
fn effective(ctx: &Ctx) -> Vec<(String, String, Origin)> {
    let c = &ctx.config;
    let s = &c.serve;
    let path = |p: &std::path::Path| p.display().to_string();
    let mut values: Vec<(&str, String)> = vec![
        ("store.path", path(&ctx.config.store_path)),
        ("store.cache-dir", path(&c.cache_dir)),
        (
            "store.durability",
            format!("{:?}", c.durability).to_lowercase(),
        ),
        (
            "store.retain-days",
            c.retain_days
                .map(|d| d.to_string())
                .unwrap_or_else(|| "(keep everything)".into()),
        ),
        ("store.lease-seconds", c.lease.as_secs().to_string()),
        ("serve.listen", s.listen.to_string()),
        (
            "serve.context",
            s.context
                .as_deref()
                .map(path)
                .unwrap_or_else(|| "(none)".into()),
        ),
        ("serve.max-in-flight", s.max_in_flight.to_string()),
        (
            "serve.threads",
            match s.threads {
                0 => format!("{} per core", crate::config::serve::THREADS_PER_CORE),
                n => n.to_string(),
            },
        ),
        ("serve.max-queued", s.max_queued.to_string()),
        ("serve.max-body-bytes", s.max_body_bytes.to_string()),
        (
            "serve.body-read-timeout-seconds",
            s.body_read_timeout_secs.to_string(),
        ),
        (
            "serve.header-read-timeout-seconds",
            s.header_read_timeout_secs.to_string(),
        ),
        ("serve.max-connections", s.max_connections.to_string()),
        (
            "serve.shutdown-grace-seconds",
            s.shutdown_grace_secs.to_string(),
        ),
        ("serve.reconcile-seconds", s.reconcile_secs.to_string()),
        ("serve.anchor-log-seconds", s.anchor_log_secs.to_string()),
        ("serve.deliver-seconds", s.deliver_secs.to_string()),
        (
            "serve.public-url",
            s.public_url.clone().unwrap_or_else(|| "(none)".into()),
        ),
    ];
    values.extend(ceiling_and_retry(c));
    values
        .into_iter()
        .map(|(key, value)| {
            let from = c.origins.get(key).cloned().unwrap_or(Origin::Default);
            (key.to_string(), value, from)
        })
        .collect()
}

/// The host's ceiling on every adapter, and the retries of a transient
/// failure.
fn ceiling_and_retry(c: &crate::config::Config) -> Vec<(&'static str, String)> {
    let (ceiling, retry) = (&c.ceiling, &c.retry);
    let listed = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_string()
        } else {
            items.join(", ")
        }
    };
    vec![
        ("ceiling.max-memory-mib", ceiling.max_memory_mib.to_string()),
        (
            "ceiling.max-call-timeout-ms",
            ceiling.max_call_timeout_ms.to_string(),
        ),
        (
            "ceiling.result-string-bytes",
            ceiling.results.string_bytes.to_string(),
        ),
        (
            "ceiling.result-list-entries",
            ceiling.results.list_entries.to_string(),
        ),
        (
            "ceiling.result-bytes",
            ceiling.results.total_bytes.to_string(),
        ),
        (
            "ceiling.log-lines-per-call",
            ceiling.log_budget.lines.to_string(),
        ),
        (
            "ceiling.log-bytes-per-call",
            ceiling.log_budget.bytes.to_string(),
        ),
        (
            "ceiling.http-origins",
            match &ceiling.http_origins {
                None => "(any the grants name)".into(),
                Some(set) => listed(set.iter().map(|o| o.to_string()).collect(), "(none)"),
            },
        ),
        (
            "ceiling.deny-networks",
            listed(
                ceiling
                    .denied_networks
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                "(only the always-denied ranges)",
            ),
        ),
        ("ceiling.sockets", ceiling.sockets.to_string()),
        ("retry.attempts", retry.attempts.to_string()),
        ("retry.base-delay-ms", retry.base_delay_ms.to_string()),
        ("retry.max-delay-ms", retry.max_delay_ms.to_string()),
    ]
}

fn render(findings: &[Finding], reach: bool) -> String {
    let mut out = String::new();
    for f in findings {
        let (mark, text) = match &f.problem {
            Some(problem) => ("PROBLEM", problem),
            None => ("ready  ", &f.detail),
        };
        // A fix may span lines (a load refusal says how to review and
        // approve): they stay under their subject.
        let text = text.replace('\n', "\n           ");
        out += &format!("{mark}  {}: {text}\n", f.subject);
        if reach {
            for line in &f.reach {
                out += &format!("           {line}\n");
            }
        }
    }
    let problems = findings.iter().filter(|f| f.problem.is_some()).count();
    out += &match problems {
        0 if findings.is_empty() => {
            "nothing to check: no policies and no adapters are configured\n".into()
        }
        0 => {
            let policies = findings
                .iter()
                .filter(|f| f.subject.starts_with("policy "))
                .count();
            format!(
                "ready: {} and {} checked; nothing stands in the way\n",
                count(policies, "policy", "policies"),
                count(
                    findings.len() - policies,
                    "adapter instance",
                    "adapter instances"
                )
            )
        }
        1 => "1 problem: runs that need it are refused or stop for a person until it is fixed\n"
            .into(),
        n => format!(
            "{n} problems: runs that need them are refused or stop for a person until they are fixed\n"
        ),
    };
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
