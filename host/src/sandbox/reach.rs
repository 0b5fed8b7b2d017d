//! What an adapter may touch, in lines a reviewer reads: its actions, HTTP
//! origins and methods, directories, sockets, NATS subjects and buckets,
//! SMTP servers, and limits. For a loaded instance, the directories are
//! shown where they really are, and the configuration keys it was given.

use super::LoadedAdapter;
use super::manifest::Grants;

/// A grant, one line per thing it allows (`actions   set-state, ...`).
pub fn grant_lines(g: &Grants) -> Vec<String> {
    grant_lines_with(g, &|name, mode| format!("/{name}  {mode}"))
}

/// A loaded instance's effective grant, with each granted directory where
/// the operator bound it, and the configuration keys it was given.
pub fn instance_lines(a: &LoadedAdapter) -> Vec<String> {
    let mounts = a.mounts();
    let mut lines = grant_lines_with(a.grants(), &|name, mode| match mounts
        .iter()
        .find(|m| m.name == name)
    {
        Some(m) => format!("/{name} = {}  {mode}", m.host_path.display()),
        None => format!("/{name}  {mode}  (not bound: not mounted)"),
    });
    let keys: Vec<&str> = a.config().keys().map(String::as_str).collect();
    lines.push(format!(
        "config    {}",
        if keys.is_empty() {
            "(none set)".to_string()
        } else {
            keys.join(", ")
        }
    ));
    lines
}

fn grant_lines_with(g: &Grants, directory: &dyn Fn(&str, &str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let actions: Vec<_> = g.actions.iter().map(|a| a.name()).collect();
    out.push(format!("actions   {}", none_or(actions.join(", "))));
    if g.capabilities.http.is_empty() {
        out.push("http      (none)".into());
    }
    for grant in g.capabilities.http.values() {
        let methods: Vec<_> = grant.methods.iter().cloned().collect();
        let inject = match &grant.inject_header {
            Some(h) => format!("  + host injects {} from secret {}", h.name, h.secret),
            None => String::new(),
        };
        out.push(format!(
            "http      {}  {}{inject}",
            grant.origin,
            methods.join(",")
        ));
    }
    if g.capabilities.files.is_empty() {
        out.push("files     (none)".into());
    }
    for (name, mode) in &g.capabilities.files {
        out.push(format!("files     {}", directory(name, mode.name())));
    }
    if g.capabilities.sockets.is_empty() {
        out.push("sockets   (none)".into());
    }
    for addr in &g.capabilities.sockets {
        out.push(format!("sockets   tcp {addr}"));
    }
    // Shown only when declared: most adapters use neither.
    for scope in &g.capabilities.nats {
        out.push(format!(
            "nats      {}",
            scope.to_string().trim_start_matches("nats ")
        ));
    }
    for scope in &g.capabilities.smtp {
        out.push(format!(
            "smtp      {}",
            scope.to_string().trim_start_matches("smtp ")
        ));
    }
    out.push(format!(
        "limits    memory {} MiB, {} ms per call",
        g.limits.memory_mib, g.limits.call_timeout_ms
    ));
    out
}

fn none_or(text: String) -> String {
    if text.is_empty() {
        "(none)".into()
    } else {
        text
    }
}
