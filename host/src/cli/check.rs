//! `handoff check`: whether every policy and adapter instance of the
//! configuration would be let run, one line each, every problem with its fix.

use super::{Ctx, exit};
use crate::readiness::{self, Finding};
use anyhow::Result;

pub fn check(ctx: &Ctx, reach: bool, json: bool) -> Result<u8> {
    let store = ctx.open_store()?;
    let findings = readiness::check(&ctx.config, &store)?;
    if json {
        println!("{}", serde_json::to_string(&findings)?);
    } else {
        print!("{}", render(&findings, reach));
    }
    Ok(if findings.iter().any(|f| f.problem.is_some()) {
        exit::ERROR
    } else {
        exit::OK
    })
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
