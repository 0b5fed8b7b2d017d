//! The link-time check: every interface a component imports must be covered
//! by the contract, by the inert WASI baseline, or by a declared capability.
//! An uncovered import refuses the load and is named.

use super::surfaces::Capabilities;
use serde::Serialize;

/// Why an import may be linked, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Coverage {
    /// Part of the handoff contract.
    Contract,
    /// Linked, but gives nothing away: empty environment and arguments, no
    /// stdin, output discarded, clocks and randomness.
    Baseline,
    /// Covered by a declared capability (named).
    Capability(String),
    /// Nothing declared covers it: the load is refused.
    Uncovered(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    pub name: String,
    pub coverage: Coverage,
}

/// Classify one import name (`wasi:http/types@0.2.12`).
pub fn classify(name: &str, caps: &Capabilities) -> Coverage {
    let unversioned = name.split('@').next().unwrap_or(name);
    let (package, interface) = unversioned.split_once('/').unwrap_or((unversioned, ""));
    match (package, interface) {
        ("handoff:adapter", "host" | "types") => return Coverage::Contract,
        ("wasi:io" | "wasi:clocks" | "wasi:random", _) => return Coverage::Baseline,
        (
            "wasi:cli",
            "environment" | "exit" | "stdin" | "stdout" | "stderr" | "terminal-input"
            | "terminal-output" | "terminal-stdin" | "terminal-stdout" | "terminal-stderr",
        ) => return Coverage::Baseline,
        _ => {}
    }
    match caps.covering(package, interface) {
        Some((surface, true, _)) => Coverage::Capability(surface.to_string()),
        Some((surface, false, fix)) => {
            Coverage::Uncovered(format!("no {surface} capability is declared; {fix}"))
        }
        None => {
            Coverage::Uncovered("handoff does not offer this interface to adapters".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_http_need_a_declared_capability() {
        let none = Capabilities::default();
        assert!(matches!(
            classify("wasi:sockets/tcp@0.2.6", &none),
            Coverage::Uncovered(_)
        ));
        assert!(matches!(
            classify("wasi:http/outgoing-handler@0.2.12", &none),
            Coverage::Uncovered(_)
        ));
        assert_eq!(classify("wasi:io/streams@0.2.6", &none), Coverage::Baseline);
        assert_eq!(
            classify(&crate::model::contract::interface_id("host"), &none),
            Coverage::Contract
        );
        assert!(matches!(
            classify("wasi:keyvalue/store@0.2.0", &none),
            Coverage::Uncovered(_)
        ));
    }
}
