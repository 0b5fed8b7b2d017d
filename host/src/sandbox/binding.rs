//! An adapter instance as the operator binds it (`[adapters.NAME]` in
//! `handoff.toml`): its package, configuration values, secrets, the actions
//! it may apply, its share of the process (`concurrency`,
//! `one-call-per-record`), and each surface's own keys ([`Bindings`]:
//! directories, CA files, narrowings).

use super::surfaces::Bindings;
use crate::model::ActionKind;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where an operator secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file (its content, trailing newline trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value, read now (a file's trailing newline trimmed).
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
            }
            SecretSource::File(path) => {
                crate::files::read_text_at_most(path, crate::files::SECRET_BYTES)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }
}

/// An instance's secrets, by the name manifests use for them. Their values
/// are read when an instance loads, and only by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub instance: String,
    pub sources: BTreeMap<String, SecretSource>,
}

impl Secrets {
    /// A secret's value, read now; the problem names the instance and the fix.
    pub fn value(&self, secret: &str) -> Result<String, String> {
        let why = match self.sources.get(secret) {
            None => "no source configured".to_string(),
            Some(source) => match source.read() {
                Ok(value) => return Ok(value),
                Err(why) => why,
            },
        };
        Err(format!(
            "adapter instance {:?}: secret {secret:?} is not available ({why}); \
             set it in [adapters.{}.secrets]",
            self.instance, self.instance
        ))
    }
}

/// One adapter instance: a package and what the operator binds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInstance {
    pub name: String,
    pub package: PathBuf,
    pub config: BTreeMap<String, String>,
    pub secrets: Secrets,
    /// At most this many calls into the instance at once, across every
    /// run in the process (`concurrency`); `None` is unlimited.
    pub concurrency: Option<usize>,
    /// Calls on the same record take turns (`one-call-per-record`), for a
    /// store that reads, changes and writes back a record with no lock of
    /// its own; calls on different records still run side by side.
    pub one_call_per_record: bool,
    /// The actions this instance may apply (`actions`), when the operator
    /// narrows the approved ones; `None`: all of them.
    pub actions: Option<BTreeSet<ActionKind>>,
    /// Each surface's keys of the instance's table.
    pub surfaces: Bindings,
    /// Loaded for a policy in shadow mode: no actions, and each surface
    /// narrowed to reading (never set from configuration; see
    /// [`AdapterInstance::for_shadow`]).
    pub shadow: bool,
}

impl AdapterInstance {
    /// The same instance as a shadow run gets it: it may read as the live
    /// one does, and write nothing.
    pub fn for_shadow(&self) -> AdapterInstance {
        AdapterInstance {
            shadow: true,
            ..self.clone()
        }
    }

    /// An instance with no bindings.
    pub fn new(name: &str, package: &Path) -> Self {
        AdapterInstance {
            name: name.to_string(),
            package: package.to_path_buf(),
            config: BTreeMap::new(),
            secrets: Secrets {
                instance: name.to_string(),
                sources: BTreeMap::new(),
            },
            concurrency: None,
            one_call_per_record: false,
            shadow: false,
            actions: None,
            surfaces: Bindings::default(),
        }
    }

    /// Bind secret `name` to `source`.
    pub fn secret(&mut self, name: &str, source: SecretSource) -> &mut Self {
        self.secrets.sources.insert(name.to_string(), source);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_names_the_instance_and_the_fix() {
        let i = AdapterInstance::new("tracker", Path::new("p"));
        let err = i.secrets.value("api_key").unwrap_err();
        assert!(
            err.contains("tracker") && err.contains("[adapters.tracker.secrets]"),
            "{err}"
        );
    }
}
