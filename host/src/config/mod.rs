//! Operator configuration, `handoff.toml`: where the store lives, the host's
//! ceiling on every adapter, and each adapter instance's bindings (real
//! directories, config values, secrets).
//!
//! Strict like the manifest: unknown keys are refused with their location.
//! Relative paths are resolved against the directory of the config file.

use crate::sandbox::surfaces::http::Origin;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub mod env;
mod instances;
pub mod protected;
pub mod roles;
pub mod serve;
pub use instances::valid_instance_name;
pub use serve::{Scheme, ServeConfig, SourceConfig};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

pub use crate::sandbox::binding::{AdapterInstance, SecretSource, Secrets};
pub use crate::sandbox::ceiling::{ALWAYS_DENIED_NETWORKS, HostCeiling};

/// The whole operator configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub store_path: PathBuf,
    pub cache_dir: PathBuf,
    /// What a commit survives before it returns (`[store] durability`).
    pub durability: crate::store::Durability,
    /// Finished runs quiet for longer than this many days lose their bulky
    /// rows (`[store] retain-days`; none: everything is kept).
    pub retain_days: Option<u32>,
    /// How long a run's lease lasts without a renewal (`[store]
    /// lease-seconds`): how long a driver that stopped answering keeps
    /// drivers of other processes waiting.
    pub lease: std::time::Duration,
    pub ceiling: HostCeiling,
    pub adapters: BTreeMap<String, AdapterInstance>,
    /// Policy files, in the order given.
    pub policies: Vec<PathBuf>,
    pub retry: Retry,
    /// `handoff serve`'s intake (defaults when the section is absent).
    pub serve: ServeConfig,
    /// The roles follow-ups are routed to, and how each is reached
    /// (`[roles.NAME]`).
    pub roles: crate::follow_up::notices::Roles,
    /// Who may use `serve`'s API, by role (the roles with `tokens`).
    pub access: BTreeMap<String, roles::Access>,
    /// Where each `[store]` and `[serve]` setting came from (`serve.workers`
    /// → the file, a `HANDOFF_…` variable, or the default).
    pub origins: BTreeMap<String, env::Origin>,
}

/// How transient target failures are retried: `attempts` calls in all, the
/// pause doubling from `base_delay_ms` up to `max_delay_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Retry {
    pub attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            base_delay_ms: 200,
            max_delay_ms: 5_000,
        }
    }
}

impl Retry {
    /// The pause before attempt `n` (1-based; attempt 1 has none).
    pub fn delay_before(&self, attempt: u32) -> std::time::Duration {
        if attempt <= 1 {
            return std::time::Duration::ZERO;
        }
        let factor = 1u64 << (attempt - 2).min(20);
        std::time::Duration::from_millis(
            self.base_delay_ms
                .saturating_mul(factor)
                .min(self.max_delay_ms),
        )
    }
}

impl Default for Config {
    /// The embedded default: everything under `.handoff/` in the current directory.
    fn default() -> Self {
        Config {
            store_path: PathBuf::from(".handoff/handoff.db"),
            cache_dir: PathBuf::from(".handoff/cache"),
            durability: crate::store::Durability::default(),
            retain_days: None,
            lease: std::time::Duration::from_secs(DEFAULT_LEASE_SECONDS),
            ceiling: HostCeiling::default(),
            adapters: BTreeMap::new(),
            policies: Vec::new(),
            retry: Retry::default(),
            serve: ServeConfig::default(),
            roles: Default::default(),
            access: BTreeMap::new(),
            origins: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    ceiling: RawCeiling,
    #[serde(default)]
    adapters: BTreeMap<String, instances::RawInstance>,
    #[serde(default)]
    policies: Vec<PathBuf>,
    #[serde(default)]
    retry: Retry,
    #[serde(default)]
    serve: serve::RawServe,
    #[serde(default)]
    roles: BTreeMap<String, roles::RawRole>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStore {
    path: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    durability: Option<crate::store::Durability>,
    retain_days: Option<u32>,
    lease_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCeiling {
    max_memory_mib: Option<u32>,
    max_call_timeout_ms: Option<u64>,
    http_origins: Option<Vec<String>>,
    #[serde(default)]
    deny_networks: Vec<IpNet>,
    sockets: Option<bool>,
    result_string_bytes: Option<usize>,
    result_list_entries: Option<usize>,
    result_bytes: Option<usize>,
    log_lines_per_call: Option<u32>,
    log_bytes_per_call: Option<usize>,
}

impl Config {
    /// The configuration in `path`, with the process's `HANDOFF_…`
    /// settings over it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            crate::files::read_text_at_most(path, crate::files::SETTINGS_BYTES).map_err(|e| {
                ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problem: format!("cannot read: {e}"),
                }
            })?;
        Config::parse_with_env(&text, path, &|var| std::env::var(var).ok())
    }

    /// The embedded default, with the process's `HANDOFF_…` settings over it
    /// (no configuration file).
    pub fn from_env() -> Result<Config, ConfigError> {
        // Errors name what they are about: there is no file.
        Config::parse_with_env("", Path::new("the embedded defaults"), &|var| {
            std::env::var(var).ok()
        })
    }

    /// The configuration in `text` alone, no variable read.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, path, &|_| None)
    }

    /// The configuration in `text`, with `env`'s `HANDOFF_…` settings over
    /// it ([`env`]).
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        // The file alone first: its errors keep their line and column.
        let mut raw: RawConfig = crate::by_name::from_toml(text)
            .map_err(|e| invalid(crate::plain::bounded_error(&e.to_string())))?;
        raw.serve.named_once().map_err(&invalid)?;
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| invalid(crate::plain::bounded_error(&e.to_string())))?;
        let cwd = std::env::current_dir().unwrap_or_default();
        let origins = env::apply(&mut table, vars, &cwd).map_err(&invalid)?;
        // From here on a problem with a setting a variable gave names the
        // variable, not only the file.
        let from_env = origins.clone();
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            problem: env::naming_variables(problem, &from_env),
        };
        if origins.values().any(|o| matches!(o, env::Origin::Env(_))) {
            raw = crate::by_name::from_toml_value(toml::Value::Table(table)).map_err(
                |e: toml::de::Error| {
                    // (Its text ends "\nin `section.key`\n".)
                    invalid(
                        e.to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                },
            )?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let defaults = Config::default();
        within_bounds(&raw.ceiling, &raw.retry).map_err(&invalid)?;
        let ceiling_defaults = HostCeiling::default();
        let http_origins = match raw.ceiling.http_origins {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|u| {
                        Origin::parse(u).map_err(|p| invalid(format!("ceiling.http-origins: {p}")))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?,
            ),
        };
        let adapters = instances::finish(raw.adapters, &resolve).map_err(&invalid)?;
        let (roles, access) = roles::finish(raw.roles, &adapters, &resolve).map_err(&invalid)?;
        let serve = raw.serve.finish(&resolve).map_err(&invalid)?;
        room_for_runs_in_flight(serve.max_in_flight, adapters.len()).map_err(&invalid)?;
        let config = Config {
            store_path: raw.store.path.map(resolve).unwrap_or(defaults.store_path),
            durability: raw.store.durability.unwrap_or(defaults.durability),
            retain_days: raw.store.retain_days,
            lease: lease(raw.store.lease_seconds, raw.ceiling.max_call_timeout_ms)
                .map_err(&invalid)?,
            cache_dir: raw
                .store
                .cache_dir
                .map(resolve)
                .unwrap_or(defaults.cache_dir),
            ceiling: HostCeiling {
                max_memory_mib: raw
                    .ceiling
                    .max_memory_mib
                    .unwrap_or(ceiling_defaults.max_memory_mib),
                max_call_timeout_ms: raw
                    .ceiling
                    .max_call_timeout_ms
                    .unwrap_or(ceiling_defaults.max_call_timeout_ms),
                http_origins,
                denied_networks: raw.ceiling.deny_networks,
                sockets: raw.ceiling.sockets.unwrap_or(ceiling_defaults.sockets),
                results: crate::sandbox::bounds::ResultLimits {
                    string_bytes: raw
                        .ceiling
                        .result_string_bytes
                        .unwrap_or(ceiling_defaults.results.string_bytes),
                    list_entries: raw
                        .ceiling
                        .result_list_entries
                        .unwrap_or(ceiling_defaults.results.list_entries),
                    total_bytes: raw
                        .ceiling
                        .result_bytes
                        .unwrap_or(ceiling_defaults.results.total_bytes),
                },
                log_budget: crate::sandbox::guest_log::LogBudget {
                    lines: raw
                        .ceiling
                        .log_lines_per_call
                        .unwrap_or(ceiling_defaults.log_budget.lines),
                    bytes: raw
                        .ceiling
                        .log_bytes_per_call
                        .unwrap_or(ceiling_defaults.log_budget.bytes),
                },
            },
            adapters,
            roles,
            access,
            policies: raw.policies.into_iter().map(resolve).collect(),
            serve,
            origins,
            retry: raw.retry,
        };
        protected::check(&config, Some(path)).map_err(&invalid)?;
        Ok(config)
    }

    /// The configuration with its store at `path` instead (`--store` on the
    /// command line), checked again: no adapter's directory may reach that
    /// store either.
    pub fn with_store(mut self, path: PathBuf) -> Result<Config, ConfigError> {
        if path != self.store_path {
            self.origins.insert(
                "store.path".into(),
                env::Origin::Env("--store or HANDOFF_STORE".into()),
            );
        }
        self.store_path = path;
        protected::check(&self, None).map_err(|problem| ConfigError::Invalid {
            path: self.store_path.clone(),
            problem,
        })?;
        Ok(self)
    }
}

/// The most memory an instance can have: a 32-bit WebAssembly memory
/// holds at most 4 GiB.
const MAX_MEMORY_MIB: u32 = 4096;

/// The longest call the ceiling may let an adapter make: half the longest
/// lease (see [`lease`]).
const MAX_CALL_TIMEOUT_MS: u64 = MAX_LEASE_SECONDS * 1000 / 2;

/// The most calls a transient failure may be given, and the longest pause
/// between two: past these a run would wait on a target for days.
const MAX_ATTEMPTS: u32 = 100;
const MAX_RETRY_DELAY_MS: u64 = 3_600_000;

/// `[ceiling]`'s memory and time and `[retry]`, each within what the
/// sandbox and the runs can be given (and above zero where zero means
/// nothing could run).
fn within_bounds(ceiling: &RawCeiling, retry: &Retry) -> Result<(), String> {
    if let Some(mib) = ceiling.max_memory_mib
        && !(1..=MAX_MEMORY_MIB).contains(&mib)
    {
        return Err(format!(
            "ceiling.max-memory-mib is {mib}; use 1 to {MAX_MEMORY_MIB} (a WebAssembly \
             memory holds at most 4 GiB)"
        ));
    }
    if let Some(ms) = ceiling.max_call_timeout_ms
        && !(1..=MAX_CALL_TIMEOUT_MS).contains(&ms)
    {
        return Err(format!(
            "ceiling.max-call-timeout-ms is {ms}; use 1 to {MAX_CALL_TIMEOUT_MS} (half the \
             longest store.lease-seconds, {MAX_LEASE_SECONDS})"
        ));
    }
    for (name, value) in [
        ("result-string-bytes", ceiling.result_string_bytes),
        ("result-list-entries", ceiling.result_list_entries),
        ("result-bytes", ceiling.result_bytes),
    ] {
        if value == Some(0) {
            return Err(format!(
                "ceiling.{name} is 0, so every adapter's answer would be refused; set 1 or more"
            ));
        }
    }
    if !(1..=MAX_ATTEMPTS).contains(&retry.attempts) {
        return Err(format!(
            "retry.attempts is {}; use 1 to {MAX_ATTEMPTS} (the first call counts)",
            retry.attempts
        ));
    }
    for (name, ms) in [
        ("base-delay-ms", retry.base_delay_ms),
        ("max-delay-ms", retry.max_delay_ms),
    ] {
        if ms > MAX_RETRY_DELAY_MS {
            return Err(format!(
                "retry.{name} is {ms}; at most {MAX_RETRY_DELAY_MS} (an hour)"
            ));
        }
    }
    Ok(())
}

/// `serve.max-in-flight` runs, each holding an instance of each of
/// `adapters` instances, within the room one sandbox can be given.
fn room_for_runs_in_flight(runs: usize, adapters: usize) -> Result<(), String> {
    use crate::sandbox::engine::{MOST_INSTANCES, room_for_runs};
    let room = room_for_runs(runs, adapters);
    if room <= MOST_INSTANCES {
        return Ok(());
    }
    Err(format!(
        "serve.max-in-flight is {runs} with {adapters} adapter instances: the sandbox would \
         hold room for {room} instances (an instance of each for every run in flight, and for \
         8 more), reserving about 8 GiB of address space for each; at most {MOST_INSTANCES}, \
         so at most {} runs in flight with this many instances",
        (MOST_INSTANCES / adapters.max(1)).saturating_sub(8)
    ))
}

/// A run's lease unless `[store] lease-seconds` says otherwise.
pub const DEFAULT_LEASE_SECONDS: u64 = 300;

/// The longest lease: a driver that stopped answering keeps a run from
/// other processes for at most a day.
const MAX_LEASE_SECONDS: u64 = 86_400;

/// `[store] lease-seconds`, checked against the ceiling: a write renews the
/// lease once half of it has passed (`pipeline::lease`), so half the lease
/// must hold the longest call an adapter may make (the default grows with
/// the ceiling's longest call too).
fn lease(
    seconds: Option<u64>,
    max_call_timeout_ms: Option<u64>,
) -> Result<std::time::Duration, String> {
    let longest_call_ms = max_call_timeout_ms.unwrap_or(HostCeiling::default().max_call_timeout_ms);
    let least = longest_call_ms.saturating_mul(2).div_ceil(1000).max(1);
    let Some(seconds) = seconds else {
        return Ok(std::time::Duration::from_secs(
            DEFAULT_LEASE_SECONDS.max(least),
        ));
    };
    if !(least..=MAX_LEASE_SECONDS).contains(&seconds) {
        return Err(format!(
            "store.lease-seconds is {seconds}: between {least} (twice the ceiling's \
             max-call-timeout-ms, so that a call started at half the lease ends within it) \
             and {MAX_LEASE_SECONDS}"
        ));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests;
