//! Settings from the environment (twelve-factor): every scalar setting of
//! `[store]` and `[serve]` can be given by a `HANDOFF_…` variable, which
//! wins over `handoff.toml`, which wins over the default. Tables (`[serve.
//! sources]`, `[serve.nats]`) come from the file only. A relative path in a
//! variable is taken from the current directory (one in the file, from the
//! file's). What each setting came from is kept, for `handoff check`.

use std::collections::BTreeMap;
use std::path::Path;

/// What a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Path,
    Count,
}

/// (section, key, variable, kind): every setting the environment may give.
const SETTINGS: &[(&str, &str, &str, Kind)] = &[
    ("store", "path", "HANDOFF_STORE", Kind::Path),
    ("store", "cache-dir", "HANDOFF_STORE_CACHE_DIR", Kind::Path),
    (
        "store",
        "durability",
        "HANDOFF_STORE_DURABILITY",
        Kind::Text,
    ),
    (
        "store",
        "retain-days",
        "HANDOFF_STORE_RETAIN_DAYS",
        Kind::Count,
    ),
    (
        "store",
        "lease-seconds",
        "HANDOFF_STORE_LEASE_SECONDS",
        Kind::Count,
    ),
    ("serve", "listen", "HANDOFF_SERVE_LISTEN", Kind::Text),
    ("serve", "context", "HANDOFF_SERVE_CONTEXT", Kind::Path),
    (
        "serve",
        "max-in-flight",
        "HANDOFF_SERVE_MAX_IN_FLIGHT",
        Kind::Count,
    ),
    ("serve", "threads", "HANDOFF_SERVE_THREADS", Kind::Count),
    (
        "serve",
        "max-queued",
        "HANDOFF_SERVE_MAX_QUEUED",
        Kind::Count,
    ),
    (
        "serve",
        "max-body-bytes",
        "HANDOFF_SERVE_MAX_BODY_BYTES",
        Kind::Count,
    ),
    (
        "serve",
        "body-read-timeout-seconds",
        "HANDOFF_SERVE_BODY_READ_TIMEOUT_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "header-read-timeout-seconds",
        "HANDOFF_SERVE_HEADER_READ_TIMEOUT_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "max-connections",
        "HANDOFF_SERVE_MAX_CONNECTIONS",
        Kind::Count,
    ),
    (
        "serve",
        "shutdown-grace-seconds",
        "HANDOFF_SERVE_SHUTDOWN_GRACE_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "reconcile-seconds",
        "HANDOFF_SERVE_RECONCILE_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "anchor-log-seconds",
        "HANDOFF_SERVE_ANCHOR_LOG_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "deliver-seconds",
        "HANDOFF_SERVE_DELIVER_SECONDS",
        Kind::Count,
    ),
    (
        "serve",
        "public-url",
        "HANDOFF_SERVE_PUBLIC_URL",
        Kind::Text,
    ),
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Default,
    File,
    /// This variable.
    Env(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File => write!(f, "handoff.toml"),
            Origin::Env(var) => write!(f, "env {var}"),
        }
    }
}

/// Put the environment's settings into the parsed file, and say where
/// each setting of the file's sections came from (by `section.key`; one
/// not there is the default).
pub fn apply(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<BTreeMap<String, Origin>, String> {
    let mut origins = BTreeMap::new();
    for (section, key, var, kind) in SETTINGS {
        let name = format!("{section}.{key}");
        let in_file = table
            .get(*section)
            .and_then(|s| s.as_table())
            // (`workers` is the older name of `max-in-flight`.)
            .is_some_and(|s| {
                s.contains_key(*key) || (*key == "max-in-flight" && s.contains_key("workers"))
            });
        let Some(raw) = env(var).filter(|v| !v.is_empty()) else {
            origins.insert(
                name,
                if in_file {
                    Origin::File
                } else {
                    Origin::Default
                },
            );
            continue;
        };
        let value = match kind {
            Kind::Text => toml::Value::String(raw),
            Kind::Path => {
                let path = Path::new(&raw);
                toml::Value::String(if path.is_absolute() {
                    raw
                } else {
                    cwd.join(path).display().to_string()
                })
            }
            Kind::Count => toml::Value::Integer(raw.trim().parse::<i64>().map_err(|_| {
                let what = if raw.trim().bytes().all(|b| b.is_ascii_digit()) {
                    "far too large"
                } else {
                    "not a whole number"
                };
                format!(
                    "{var} is {raw:?}: {what} for {name} (unset the variable to use the file's)"
                )
            })?),
        };
        let section_table = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = section_table.as_table_mut() else {
            return Err(format!("[{section}] in the file is not a table"));
        };
        section_table.insert(key.to_string(), value);
        origins.insert(name, Origin::Env(var.to_string()));
    }
    // Every other setting the file gives (`[ceiling]`, `[retry]`...) came
    // from it; one neither gives is the default.
    for (section, value) in table.iter() {
        for key in value.as_table().into_iter().flat_map(|t| t.keys()) {
            origins
                .entry(format!("{section}.{key}"))
                .or_insert(Origin::File);
        }
    }
    Ok(origins)
}

/// `problem`, naming the variable behind each setting it speaks of that
/// came from the environment (the file is not where to look for those).
pub fn naming_variables(problem: String, origins: &BTreeMap<String, Origin>) -> String {
    let vars: Vec<&str> = origins
        .iter()
        .filter_map(|(name, origin)| match origin {
            Origin::Env(var) if problem.contains(name.as_str()) => Some(var.as_str()),
            _ => None,
        })
        .collect();
    if vars.is_empty() {
        problem
    } else {
        format!(
            "{problem} (set by {}; unset it to use the file's)",
            vars.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_file_which_wins_over_the_default() {
        let mut table: toml::Table =
            toml::from_str("[serve]\nmax-in-flight = 3\nmax-queued = 9\n").unwrap();
        let env = |var: &str| match var {
            "HANDOFF_SERVE_MAX_IN_FLIGHT" => Some("7".to_string()),
            "HANDOFF_STORE_CACHE_DIR" => Some("cache".to_string()),
            _ => None,
        };
        let origins = apply(&mut table, &env, Path::new("/srv")).unwrap();
        assert_eq!(table["serve"]["max-in-flight"].as_integer(), Some(7));
        assert_eq!(table["store"]["cache-dir"].as_str(), Some("/srv/cache"));
        assert_eq!(
            origins["serve.max-in-flight"],
            Origin::Env("HANDOFF_SERVE_MAX_IN_FLIGHT".into())
        );
        assert_eq!(origins["serve.max-queued"], Origin::File);
        assert_eq!(origins["serve.listen"], Origin::Default);
        // The older name in the file, the newer from the environment: the
        // environment's value, not two names for one setting.
        let mut older: toml::Table = toml::from_str("[serve]\nworkers = 3\n").unwrap();
        let origins = apply(&mut older, &env, Path::new("/srv")).unwrap();
        assert_eq!(older["serve"]["max-in-flight"].as_integer(), Some(7));
        assert_eq!(
            origins["serve.max-in-flight"],
            Origin::Env("HANDOFF_SERVE_MAX_IN_FLIGHT".into())
        );
        let bad = |var: &str| (var == "HANDOFF_SERVE_MAX_IN_FLIGHT").then(|| "many".to_string());
        let err = apply(&mut table, &bad, Path::new("/")).unwrap_err();
        assert!(
            err.contains("HANDOFF_SERVE_MAX_IN_FLIGHT") && err.contains("whole number"),
            "{err}"
        );
    }
}
