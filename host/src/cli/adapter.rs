//! `handoff adapter ...`: what a security reviewer reads and decides with.

use super::{Ctx, exit};
use crate::sandbox::approval::Status;
use crate::sandbox::imports::Coverage;
use crate::sandbox::manifest::{Grants, Manifest};
use crate::sandbox::package::Package;
use crate::sandbox::{Inspection, Sandbox};
use crate::store::adapters::{Approval, NewApproval};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Show a package's digests, declared capabilities, actual imports and
    /// exports, and where it stands against its approval.
    Inspect {
        /// The package directory (holding adapter.toml and <name>.wasm).
        package: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a package exactly as it is now (its digests and declared grants).
    Approve {
        /// The package directory (holding adapter.toml and <name>.wasm).
        package: PathBuf,
        /// Who approves: recorded with the approval.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try a configured instance's idempotency promises on a scratch record
    /// of its real system: observe answers; apply with a new key answers; a
    /// later observe (on a fresh instance) shows the key; applying again
    /// with that key writes nothing. Writes to the record: use one made for
    /// the purpose. Exits 1 when a promise is not kept.
    Conform {
        /// The adapter instance ([adapters.NAME] in the configuration).
        instance: String,
        /// The record, KIND/ID.
        #[arg(long)]
        record: String,
        /// set-state=STATE, attach-link=URL, annotate=TEXT, clear-entry or
        /// publish=SUBJECT.
        #[arg(long)]
        action: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the current approval of every adapter.
    List {
        /// The approvals as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an adapter's approval; it will not load until approved again.
    Revoke {
        /// The adapter name (adapter.name in its manifest).
        name: String,
        /// Who revokes: recorded with the revocation.
        #[arg(long, value_parser = super::args::who)]
        by: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AdapterCommand, ctx: &Ctx) -> Result<u8> {
    match cmd {
        AdapterCommand::Inspect { package, json } => {
            let store = ctx.store_or_empty()?;
            let package = Package::read(&package)?;
            let approval = store.latest_approval(&package.manifest.name)?;
            let sandbox = Sandbox::new(&ctx.config.cache_dir, ctx.config.ceiling.clone())?;
            let inspection = sandbox.inspect(&package, approval.as_ref())?;
            if json {
                let report = Report::new(&package, approval.as_ref(), &inspection);
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say_part!("{}", render(&package, approval.as_ref(), &inspection));
            }
            Ok(exit::OK)
        }
        AdapterCommand::Approve { package, by, json } => {
            let mut store = ctx.open_store()?;
            let package = Package::read(&package)?;
            let sandbox = Sandbox::new(&ctx.config.cache_dir, ctx.config.ceiling.clone())?;
            let inspection = sandbox.inspect(&package, None)?;
            let uncovered = inspection.uncovered();
            if !uncovered.is_empty() || !inspection.missing_exports.is_empty() {
                say_part!("{}", render(&package, None, &inspection));
                bail!(
                    "not approved: {} cannot load as declared (see the imports and exports above); \
                     fix its manifest or component first",
                    package.manifest.name
                );
            }
            let m = &package.manifest;
            let approval = store.approve_adapter(&NewApproval::of(&package, &by))?;
            if json {
                say!(
                    "{}",
                    serde_json::json!({
                        "approved": m.name, "version": m.version,
                        "component_sha256": approval.component_sha256,
                        "manifest_sha256": package.manifest_sha256,
                        "by": approval.approved_by, "at": approval.approved_at,
                    })
                );
                return Ok(exit::OK);
            }
            say!(
                "approved {} {} (component sha256 {}) by {} at {}",
                m.name,
                m.version,
                approval.component_sha256,
                approval.approved_by,
                approval.approved_at
            );
            say_part!("{}", render_grants(&m.grants));
            Ok(exit::OK)
        }
        AdapterCommand::Conform {
            instance,
            record,
            action,
            json,
        } => super::conform::run(ctx, &instance, &record, &action, json),
        AdapterCommand::List { json } => {
            let store = ctx.store_or_empty()?;
            let approvals = store.current_approvals()?;
            if json {
                let rows: Vec<_> = approvals.iter().map(ApprovalJson::from).collect();
                say!("{}", serde_json::to_string_pretty(&rows)?);
            } else if approvals.is_empty() {
                say!(
                    "no adapters approved in {}",
                    ctx.config.store_path.display()
                );
            } else {
                for a in &approvals {
                    let state = match (&a.revoked_by, &a.revoked_at) {
                        (Some(by), Some(at)) => format!("REVOKED by {by} at {at}"),
                        _ => format!("approved by {} at {}", a.approved_by, a.approved_at),
                    };
                    say!(
                        "{:<16} {:<8} {}  {}",
                        a.name,
                        a.version,
                        &a.component_sha256[..12],
                        state
                    );
                }
            }
            Ok(exit::OK)
        }
        AdapterCommand::Revoke { name, by, json } => {
            let mut store = ctx.existing_store()?;
            if store
                .revoke_adapter(&name, &by)
                .context("revoking the approval")?
            {
                if json {
                    say!("{}", serde_json::json!({ "revoked": name, "by": by }));
                } else {
                    say!("revoked the approval of {name}; it will not load until approved again");
                }
                Ok(exit::OK)
            } else {
                bail!("{name} has no live approval to revoke (see `handoff adapter list`)")
            }
        }
    }
}

fn status_line(status: &Status) -> String {
    match status {
        Status::NotApproved => "NOT APPROVED: it will not load".into(),
        Status::Revoked { by, at } => format!("REVOKED by {by} at {at}: it will not load"),
        Status::ComponentChanged { approved, .. } => format!(
            "COMPONENT CHANGED since approval (approved sha256 {approved}): it will not load"
        ),
        Status::Widened(_) => "WIDENED since approval: it will not load".into(),
        Status::Approved { changes } if changes.is_empty() => "approved, unchanged".into(),
        Status::Approved { .. } => {
            "approved; narrowed since approval (loads with the narrower grant)".into()
        }
    }
}

/// The grants as a reviewer reads them.
pub fn render_grants(g: &Grants) -> String {
    crate::sandbox::reach::grant_lines(g)
        .iter()
        .map(|line| format!("  {line}\n"))
        .collect()
}

/// The human report of `adapter inspect`.
pub fn render(package: &Package, approval: Option<&Approval>, inspection: &Inspection) -> String {
    let m: &Manifest = &package.manifest;
    let mut out = String::new();
    let _ = writeln!(out, "adapter    {} {}", m.name, m.version);
    if let Some(d) = &m.description {
        let _ = writeln!(out, "           {d}");
    }
    let _ = writeln!(out, "world      {}", m.grants.world);
    if m.one_call_per_record {
        let _ = writeln!(
            out,
            "calls      one per record at a time (its writes read a record and write it back)"
        );
    }
    let _ = writeln!(out, "package    {}", package.dir.display());
    let _ = writeln!(
        out,
        "component  sha256 {}  ({} KiB)",
        package.component_sha256,
        package.component.len().div_ceil(1024)
    );
    let _ = writeln!(out, "manifest   sha256 {}", package.manifest_sha256);
    let _ = writeln!(out);
    let _ = writeln!(out, "declared capabilities");
    out.push_str(&render_grants(&m.grants));
    let _ = writeln!(out);
    let _ = writeln!(out, "configuration it reads ([adapters.X] config)");
    if m.config.is_empty() {
        let _ = writeln!(out, "  (none: an instance may set no config keys)");
    }
    for key in &m.config {
        let need = if key.required { "required" } else { "optional" };
        let _ = writeln!(out, "  {:<16} {need}  {}", key.key, key.about);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "imports (what the component links against)");
    let mut baseline = Vec::new();
    for import in &inspection.imports {
        let (mark, why) = match &import.coverage {
            Coverage::Contract => ("ok", "handoff contract".to_string()),
            Coverage::Baseline => {
                baseline.push(import.name.as_str());
                continue;
            }
            Coverage::Capability(c) => ("ok", format!("covered by declared {c}")),
            Coverage::Uncovered(why) => ("NO", format!("UNCOVERED: {why}")),
        };
        let _ = writeln!(out, "  {mark}  {:<42} {why}", import.name);
    }
    if !baseline.is_empty() {
        let packages: std::collections::BTreeSet<&str> = baseline
            .iter()
            .map(|n| n.split('/').next().unwrap_or(n))
            .collect();
        let _ = writeln!(
            out,
            "  ok  {} more from {}: inert baseline (empty environment, no stdio; --json lists them)",
            baseline.len(),
            packages.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(out, "exports");
    for e in &inspection.exports {
        let _ = writeln!(out, "      {e}");
    }
    for e in &inspection.missing_exports {
        let _ = writeln!(out, "  NO  {e:<42} MISSING: required by the declared world");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "approval   {}", status_line(&inspection.status));
    if let Some(a) = approval {
        let _ = writeln!(
            out,
            "           last approved by {} at {} (component {})",
            a.approved_by,
            a.approved_at,
            &a.component_sha256[..12]
        );
    }
    let changes = inspection.status.changes();
    if !changes.is_empty() {
        let _ = writeln!(out, "changed since approval (+ widened, - narrowed)");
        for c in changes {
            let _ = writeln!(out, "  {c}");
        }
    }
    if let Some(effective) = &inspection.effective {
        let _ = writeln!(out, "effective grant (declared ∩ approved ∩ host ceiling)");
        out.push_str(&render_grants(effective));
    }
    let uncovered = inspection.uncovered();
    let verdict = if !uncovered.is_empty() {
        format!("REFUSED: {} uncovered import(s)", uncovered.len())
    } else if !inspection.missing_exports.is_empty() {
        "REFUSED: missing exports".to_string()
    } else if !inspection.status.allows_load() {
        format!(
            "REFUSED until approved: handoff adapter approve {} --by NAME",
            package.dir.display()
        )
    } else {
        "loads".to_string()
    };
    let _ = writeln!(out, "verdict    {verdict}");
    out
}

#[derive(Serialize)]
struct Report<'a> {
    name: &'a str,
    version: &'a str,
    world: String,
    package: String,
    component_sha256: &'a str,
    manifest_sha256: &'a str,
    declared: &'a Grants,
    /// What one call may write under the declared grant (the host's
    /// bounds), per surface that writes.
    per_call: Vec<String>,
    config: &'a [crate::sandbox::settings::ConfigKey],
    one_call_per_record: bool,
    imports: &'a [crate::sandbox::imports::Import],
    exports: &'a [String],
    missing_exports: &'a [String],
    approval: Option<ApprovalJson>,
    status: String,
    changes: Vec<String>,
    effective: Option<&'a Grants>,
    loads: bool,
}

impl<'a> Report<'a> {
    fn new(package: &'a Package, approval: Option<&Approval>, i: &'a Inspection) -> Self {
        let changes = i.status.changes().iter().map(|c| c.to_string()).collect();
        Report {
            name: &package.manifest.name,
            version: &package.manifest.version,
            world: package.manifest.grants.world.to_string(),
            package: package.dir.display().to_string(),
            component_sha256: &package.component_sha256,
            manifest_sha256: &package.manifest_sha256,
            declared: &package.manifest.grants,
            per_call: package.manifest.grants.capabilities.per_call(),
            config: &package.manifest.config,
            one_call_per_record: package.manifest.one_call_per_record,
            imports: &i.imports,
            exports: &i.exports,
            missing_exports: &i.missing_exports,
            approval: approval.map(ApprovalJson::from),
            status: status_line(&i.status),
            changes,
            effective: i.effective.as_ref(),
            loads: i.loads(),
        }
    }
}

#[derive(Serialize)]
struct ApprovalJson {
    name: String,
    version: String,
    component_sha256: String,
    manifest_sha256: String,
    approved_by: String,
    approved_at: String,
    revoked_by: Option<String>,
    revoked_at: Option<String>,
}

impl From<&Approval> for ApprovalJson {
    fn from(a: &Approval) -> Self {
        ApprovalJson {
            name: a.name.clone(),
            version: a.version.clone(),
            component_sha256: a.component_sha256.clone(),
            manifest_sha256: a.manifest_sha256.clone(),
            approved_by: a.approved_by.clone(),
            approved_at: a.approved_at.clone(),
            revoked_by: a.revoked_by.clone(),
            revoked_at: a.revoked_at.clone(),
        }
    }
}
