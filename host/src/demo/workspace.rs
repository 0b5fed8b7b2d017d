//! One demo case's workspace: the release-readiness example (compiled into
//! the binary from `examples/release-readiness/`) written to a fresh
//! directory, its configuration pointed at the built adapter packages, the
//! packages and the policy approved, and an engine over it.

use crate::config::Config;
use crate::model::CloudEvent;
use crate::pipeline::{Engine, Report};
use crate::policy::Policy;
use crate::sandbox::package::Package;
use crate::store::Store;
use crate::store::adapters::NewApproval;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

macro_rules! example_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"), "/../examples/release-readiness/", $path)) as &[u8])),*]
    };
}

/// The example, as it is in the repository.
const EXAMPLE: &[(&str, &[u8])] = example_files![
    "handoff.toml",
    "context.json",
    "policies/release-readiness.toml",
    "events/accepted.json",
    "events/accepted-resent.json",
    "seed/archive/R-2026.11/evidence.tar",
    "seed/checklist/checklist/CL-7.json",
    "seed/governance/review/RV-118.json",
    "seed/queue/review-queue/RV-118.json",
    "seed/tracker/milestone/M-2026.11.json",
    "seed/tracker/release/R-2026.11.json",
];

/// The systems the policy writes to, each with its own journal of writes.
pub const TARGETS: [&str; 4] = ["checklist", "tracker", "queue", "notify"];

/// Who approves what in the demo.
pub const REVIEWER: &str = "security-review";
pub const OWNER: &str = "release-owner";

pub struct Workspace {
    pub root: PathBuf,
    pub config: Config,
}

impl Workspace {
    /// Write the example into `root` (which must not exist yet), with the
    /// packages from `packages` and compiled artifacts cached in `cache`.
    pub fn create(root: &Path, packages: &Path, cache: &Path) -> Result<Workspace> {
        let packages = &std::path::absolute(packages)?;
        let cache = &std::path::absolute(cache)?;
        for (path, bytes) in EXAMPLE {
            let to = match path.strip_prefix("seed/") {
                Some(rest) => root.join("state").join(rest),
                None => root.join(path),
            };
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
            std::fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()))?;
        }
        std::fs::create_dir_all(root.join("state/notify"))?;
        let config_text = std::str::from_utf8(EXAMPLE[0].1)?;
        let config_text = replace(
            config_text,
            "../../target/handoff-packages",
            &packages.display().to_string(),
        )?;
        let config_text = replace(
            &config_text,
            "cache-dir = \"state/cache\"",
            &format!("cache-dir = {:?}", cache.display().to_string()),
        )?;
        // Short backoff: an offline target gives up in well under a second.
        let config_text = replace(&config_text, "base-delay-ms = 100", "base-delay-ms = 20")?;
        let config_text = replace(&config_text, "max-delay-ms = 1000", "max-delay-ms = 50")?;
        let config_path = root.join("handoff.toml");
        std::fs::write(&config_path, config_text)?;
        let config = Config::load(&config_path)?;

        let mut store = Store::open(&config.store_path)?;
        for name in ["fs-records", "fs-archive"] {
            let dir = packages.join(name);
            let package = Package::read(&dir).with_context(|| {
                format!(
                    "reading the adapter package {}; the demo uses the packages \
                     `cargo build -p handoff` builds",
                    dir.display()
                )
            })?;
            store.approve_adapter(&NewApproval::of(&package, REVIEWER))?;
        }
        let policy = Policy::load(&root.join("policies/release-readiness.toml"))?;
        store.approve_policy(&policy, OWNER)?;
        Ok(Workspace {
            root: root.to_path_buf(),
            config,
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// An engine over the workspace, with its configuration read now (a
    /// case may have changed it).
    pub fn engine(&self) -> Result<Engine> {
        let config = Config::load(&self.path("handoff.toml"))?;
        Ok(Engine::new(&config, Store::open(&config.store_path)?)?)
    }

    /// Take one of the example's events through the pipeline.
    pub async fn submit(&self, engine: &mut Engine, event: &str) -> Result<Report> {
        let path = self.path(event);
        let event = CloudEvent::parse(&std::fs::read(&path)?, &path.display().to_string())?;
        let context: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path("context.json"))?)?;
        Ok(engine.submit(&event, &context).await?)
    }

    /// Real writes so far, counted in the targets' own journals.
    pub fn writes(&self) -> usize {
        TARGETS
            .iter()
            .map(|t| {
                std::fs::read_to_string(self.path(&format!("state/{t}/journal.jsonl")))
                    .map(|j| j.lines().count())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Change one field of a record in a system's directory.
    pub fn set_field(&self, record: &str, field: &[&str], value: serde_json::Value) -> Result<()> {
        let path = self.path(&format!("state/{record}.json"));
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let mut slot = &mut json;
        for f in field {
            slot = &mut slot[*f];
        }
        *slot = value;
        std::fs::write(&path, serde_json::to_vec_pretty(&json)?)?;
        Ok(())
    }
}

/// Replace text that must be there, everywhere (the example changed if it is not).
fn replace(text: &str, from: &str, to: &str) -> Result<String> {
    if !text.contains(from) {
        bail!("the example's handoff.toml no longer contains {from:?}; update the demo");
    }
    Ok(text.replace(from, to))
}
