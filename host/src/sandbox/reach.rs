//! What an adapter may touch, in lines a reviewer reads: its actions, each
//! surface's grant (HTTP origins and methods, directories, sockets, NATS
//! subjects and buckets, SMTP servers, ...), its limits, and what one call
//! may write under the grant (the host's bounds). For a loaded
//! instance, the directories are shown where they really are, and the
//! configuration keys it was given.

use super::LoadedAdapter;
use super::manifest::Grants;
use super::surfaces::Bindings;

/// A grant, one line per thing it allows (`actions   set-state, ...`).
pub fn grant_lines(g: &Grants) -> Vec<String> {
    lines(g, None)
}

/// A loaded instance's effective grant, with each granted directory where
/// the operator bound it, and the configuration keys it was given.
pub fn instance_lines(a: &LoadedAdapter) -> Vec<String> {
    let mut out = lines(a.grants(), Some(a.bindings()));
    let keys: Vec<&str> = a.config().keys().map(String::as_str).collect();
    out.push(line(
        "config",
        &if keys.is_empty() {
            "(none set)".to_string()
        } else {
            keys.join(", ")
        },
    ));
    out
}

fn lines(g: &Grants, bindings: Option<&Bindings>) -> Vec<String> {
    let mut out = Vec::new();
    let actions: Vec<_> = g.actions.iter().map(|a| a.name()).collect();
    out.push(line(
        "actions",
        &if actions.is_empty() {
            "(none)".to_string()
        } else {
            actions.join(", ")
        },
    ));
    for (surface, granted) in g.capabilities.lines(bindings) {
        if granted.is_empty() {
            // The common surfaces say "(none)"; the others are shown only
            // when declared, since most adapters use none of them.
            if ["http", "files", "sockets"].contains(&surface) {
                out.push(line(surface, "(none)"));
            }
            continue;
        }
        for what in granted {
            out.push(line(surface, &what));
        }
    }
    out.push(line("limits", &g.limits.line()));
    let per_call = g.capabilities.per_call();
    if !per_call.is_empty() {
        out.push(line(
            "per call",
            &format!("at most {}", per_call.join("; ")),
        ));
    }
    out
}

fn line(what: &str, detail: &str) -> String {
    format!("{what:<9} {detail}")
}
