//! `handoff adapter conform`: try an adapter instance's idempotency
//! promises on a scratch record of its real system, and say which it kept.

use super::run::runtime;
use super::{Ctx, exit};
use crate::conform::{Conformance, conform};
use crate::pipeline::Host;
use crate::pipeline::calls::AdapterCalls;
use crate::sandbox::{Action, Link, Message, RecordRef};
use anyhow::{Result, anyhow, bail};
use std::sync::Arc;

pub fn run(ctx: &Ctx, instance: &str, record: &str, action: &str, json: bool) -> Result<u8> {
    ctx.config.adapters.get(instance).ok_or_else(|| {
        let known: Vec<&str> = ctx.config.adapters.keys().map(String::as_str).collect();
        anyhow!(
            "no adapter instance {instance:?} in the configuration (configured: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )
    })?;
    let record = record_ref(instance, record)?;
    let action = parse_action(action)?;
    let mut store = ctx.open_store()?;
    let host = Arc::new(Host::for_adapters(&ctx.config)?);
    // Loaded first, so that a refusal says so rather than failing a promise.
    if let Err(refused) = host.adapter(instance, &mut store, false) {
        bail!("loading adapter instance {instance}: {refused}");
    }
    let calls = AdapterCalls::new(host, &store).fresh_each_call();
    // A key of its own, never one a run could have used.
    let key = format!(
        "conform-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let result: Conformance =
        runtime()?.block_on(conform(calls, instance, &record, &action, &key))?;
    if json {
        say!(
            "{}",
            serde_json::json!({
                "instance": instance, "record": format!("{}/{}", record.kind, record.id),
                "key": key, "conforms": result.conforms(), "checks": result.checks,
            })
        );
    } else {
        for c in &result.checks {
            let mark = if c.kept { "ok  " } else { "FAIL" };
            say!("{mark}  {}: {}", c.promise, c.detail);
        }
        let summary = match result.checks.iter().find(|c| !c.kept) {
            None => format!("{instance} keeps the promises the pipeline relies on"),
            // The first two only ask for answers: the promises themselves
            // were not reached.
            Some(_) if result.checks.len() <= 2 => format!(
                "{instance}: the promises could not be tried; fix what the failing call says \
                 (the record, the action, the system) and run it again"
            ),
            Some(_) => format!("{instance} does not conform: runs through it could write twice"),
        };
        say!("{summary}");
    }
    Ok(if result.conforms() {
        exit::OK
    } else {
        exit::ERROR
    })
}

fn record_ref(instance: &str, text: &str) -> Result<RecordRef> {
    match text.split_once('/') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => Ok(RecordRef {
            system: instance.to_string(),
            kind: kind.to_string(),
            id: id.to_string(),
        }),
        _ => bail!("--record {text:?}: write KIND/ID, as a policy's record names them"),
    }
}

/// `set-state=STATE`, `attach-link=URL`, `annotate=TEXT`, `clear-entry`,
/// `publish=SUBJECT`.
fn parse_action(text: &str) -> Result<Action> {
    let (name, value) = match text.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (text, None),
    };
    let need = |what: &str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow!("--action {name}=… needs {what}"))
    };
    Ok(match name {
        "set-state" => Action::SetState(need("the state")?),
        "annotate" => Action::Annotate(need("the note")?),
        "attach-link" => {
            let url = need("the URL")?;
            Action::AttachLink(Link {
                title: url.clone(),
                url,
            })
        }
        "publish" => Action::Publish(Message {
            subject: need("the subject")?,
            body: "sent by handoff adapter conform".into(),
            links: Vec::new(),
        }),
        "clear-entry" if value.is_none() => Action::ClearEntry,
        _ => bail!(
            "--action {text:?}: use set-state=STATE, attach-link=URL, annotate=TEXT, clear-entry or publish=SUBJECT"
        ),
    })
}
