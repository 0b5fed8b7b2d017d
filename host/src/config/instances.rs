//! `[adapters.NAME]`: each adapter instance as the operator binds it, its
//! name checked, its actions narrowed, each surface taking its own keys and
//! any key left over refused.

use crate::model::ActionKind;
use crate::sandbox::binding::{AdapterInstance, SecretSource, Secrets};
use crate::sandbox::surfaces::Bindings;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest instance or role name.
pub const MAX_NAME_CHARS: usize = 64;

/// What an instance or role name is made of, as its refusal says.
pub const PLAIN_NAME: &str = "letters, digits, '-', '_' and '.', starting with a letter or digit";

/// Whether `name` may name an adapter instance: it is written into log
/// fields, metric labels and audit rows, so it is kept to a plain word.
pub fn valid_instance_name(name: &str) -> bool {
    name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

// Not `deny_unknown_fields` (it cannot go with `flatten`): the keys left
// over after every surface took its own are refused by hand.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawInstance {
    package: PathBuf,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
    concurrency: Option<usize>,
    #[serde(default)]
    one_call_per_record: bool,
    actions: Option<Vec<String>>,
    /// Every other key: each surface takes its own ([`Bindings::take`]),
    /// and one no surface takes is refused.
    #[serde(flatten)]
    surfaces: toml::Table,
}

/// The keys of `[adapters.X]` that are not a surface's.
/// The most calls an instance's `concurrency` may let in at once: more than
/// the most runs a service drives at once could never all be in flight.
const MAX_CONCURRENCY: usize = super::serve::MAX_IN_FLIGHT;

const INSTANCE_KEYS: [&str; 6] = [
    "package",
    "config",
    "secrets",
    "concurrency",
    "one-call-per-record",
    "actions",
];

/// The instances, checked, their paths made absolute by `resolve`.
pub(super) fn finish(
    raw: BTreeMap<String, RawInstance>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<BTreeMap<String, AdapterInstance>, String> {
    if let Some(name) = raw.keys().find(|name| !valid_instance_name(name)) {
        return Err(format!(
            "adapters.{:?}: an instance name is {PLAIN_NAME}, at most {MAX_NAME_CHARS} of \
             them (it names the instance in logs, metrics and the audit trail)",
            crate::kept::shortened(name, MAX_NAME_CHARS)
        ));
    }
    if let Some((name, _)) = raw.iter().find(|(_, r)| r.concurrency == Some(0)) {
        return Err(format!(
            "adapters.{name}.concurrency is 0, so no call could ever reach it; \
             set 1 or more, or leave it out for no limit"
        ));
    }
    if let Some((name, n)) = raw.iter().find_map(|(name, r)| {
        r.concurrency
            .filter(|&n| n > MAX_CONCURRENCY)
            .map(|n| (name, n))
    }) {
        return Err(format!(
            "adapters.{name}.concurrency is {n}; at most {MAX_CONCURRENCY}, or leave it out \
             for no limit"
        ));
    }
    raw.into_iter()
        .map(|(name, r)| {
            let actions = match &r.actions {
                None => None,
                Some(names) => Some(
                    names
                        .iter()
                        .map(|a| {
                            ActionKind::parse(a).ok_or_else(|| {
                                format!(
                                    "adapters.{name}.actions: {a:?} is not an action; \
                                     the actions are {}",
                                    ActionKind::names()
                                )
                            })
                        })
                        .collect::<Result<BTreeSet<_>, _>>()?,
                ),
            };
            let mut rest = r.surfaces;
            let surfaces = Bindings::take(&mut rest, &|p: &Path| resolve(p.to_path_buf()))
                .map_err(|p| format!("adapters.{name}: {p}"))?;
            if let Some(key) = rest.keys().next() {
                let mut known: Vec<&str> = INSTANCE_KEYS.to_vec();
                known.extend(Bindings::keys());
                return Err(format!(
                    "adapters.{name}: unknown key `{key}`; the keys are {}",
                    known.join(", ")
                ));
            }
            let instance = AdapterInstance {
                name: name.clone(),
                package: resolve(r.package),
                config: r.config,
                secrets: Secrets {
                    instance: name.clone(),
                    sources: r
                        .secrets
                        .into_iter()
                        .map(|(k, s)| {
                            let s = match s {
                                SecretSource::File(p) => SecretSource::File(resolve(p)),
                                env => env,
                            };
                            (k, s)
                        })
                        .collect(),
                },
                concurrency: r.concurrency,
                one_call_per_record: r.one_call_per_record,
                shadow: false,
                actions,
                surfaces,
            };
            Ok((name, instance))
        })
        .collect()
}
