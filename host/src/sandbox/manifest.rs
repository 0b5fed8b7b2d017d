//! `adapter.toml`: what an adapter declares it is and may touch.
//!
//! Parsing is strict: unknown fields, unknown actions, and whatever a
//! surface refuses in its `[[capabilities.NAME]]` entries are refused with
//! the file and the field named. The result is a normalized [`Manifest`]
//! whose grants can be compared (for approval) and intersected (for the
//! effective grant); each surface parses its own section
//! ([`super::surfaces`]).

use super::settings::{ConfigKey, RawConfigKey};
use super::surfaces::limits::{Limits, RawLimits};
use super::surfaces::{Capabilities, RawCapabilities};
use crate::model::{ActionKind, World};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "adapter.toml";

/// The longest name a manifest gives: the adapter's, a directory's, a
/// config key's.
pub const MAX_NAME_CHARS: usize = 64;

/// The longest `adapter.version`.
const MAX_VERSION_CHARS: usize = 32;

/// The longest `adapter.description`.
const MAX_DESCRIPTION_BYTES: usize = 1024;

#[derive(Debug, Error)]
#[error("{path}: {problem}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub problem: String,
}

/// Everything that an approval covers: compared field by field when a
/// package changes, to tell a widening from a narrowing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub world: World,
    pub actions: BTreeSet<ActionKind>,
    pub capabilities: Capabilities,
    pub limits: Limits,
}

/// A parsed, validated `adapter.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub grants: Grants,
    /// The configuration keys it reads (`[[config]]`).
    pub config: Vec<ConfigKey>,
    /// Calls on one record must take turns (`adapter.one-call-per-record`):
    /// its writes read a record and write it back with no lock of the
    /// target's own. The host gives every instance of it one call per
    /// record at a time, whatever the instance's configuration says.
    pub one_call_per_record: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    adapter: RawAdapter,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    config: Vec<RawConfigKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAdapter {
    name: String,
    version: String,
    world: String,
    #[serde(default)]
    actions: Vec<String>,
    description: Option<String>,
    #[serde(default)]
    one_call_per_record: bool,
}

impl Manifest {
    /// Read `adapter.toml` from a file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text =
            crate::files::read_text_at_most(path, crate::files::SETTINGS_BYTES).map_err(|e| {
                ManifestError {
                    path: path.to_path_buf(),
                    problem: format!("cannot read: {e}"),
                }
            })?;
        Manifest::parse(&text, path)
    }

    /// Parse manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let err = |problem: String| ManifestError {
            path: path.to_path_buf(),
            problem,
        };
        let raw: RawManifest = crate::by_name::from_toml(text)
            .map_err(|e| err(crate::plain::bounded_error(&e.to_string())))?;
        // What a reviewer reads at a terminal (`adapter inspect`) says what
        // it says: no escape in it may move the cursor, erase a line or
        // start one that looks like the tool's own.
        crate::plain::in_reading_order(text, "a manifest").map_err(err)?;
        let table: toml::Table =
            toml::from_str(text).map_err(|e| err(crate::plain::bounded_error(&e.to_string())))?;
        if let Some((at, c)) = crate::plain::control_in_toml(&toml::Value::Table(table), "", false)
        {
            return Err(err(format!(
                "{at} holds the control character U+{:04X}; a manifest is plain text, one line \
                 per value",
                c as u32
            )));
        }
        let name = raw.adapter.name;
        if name.is_empty()
            || name.len() > MAX_NAME_CHARS
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(err(format!(
                "adapter.name {:?}: use at most {MAX_NAME_CHARS} lower-case letters, digits, \
                 '-' and '_'",
                crate::kept::shortened(&name, MAX_NAME_CHARS)
            )));
        }
        let version = raw.adapter.version;
        if version.len() > MAX_VERSION_CHARS
            || version.split('.').count() != 3
            || !version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(err(format!(
                "adapter.version {:?}: use MAJOR.MINOR.PATCH, at most {MAX_VERSION_CHARS} \
                 characters, e.g. \"0.1.0\"",
                crate::kept::shortened(&version, MAX_VERSION_CHARS)
            )));
        }
        if let Some(d) = &raw.adapter.description
            && d.len() > MAX_DESCRIPTION_BYTES
        {
            return Err(err(format!(
                "adapter.description is {} bytes; at most {MAX_DESCRIPTION_BYTES} (a line or two \
                 a reviewer reads)",
                d.len()
            )));
        }
        let world = World::parse(&raw.adapter.world).ok_or_else(|| {
            err(format!(
                "adapter.world {:?} is not a handoff world; use one of: {}",
                raw.adapter.world,
                World::names()
            ))
        })?;
        let actions = parse_actions(&raw.adapter.actions, world).map_err(err)?;
        let capabilities = raw.capabilities.parse().map_err(err)?;
        let limits = raw.limits.parse().map_err(err)?;
        let config = super::settings::parse(raw.config).map_err(err)?;
        Ok(Manifest {
            config,
            name,
            version,
            description: raw.adapter.description,
            one_call_per_record: raw.adapter.one_call_per_record,
            grants: Grants {
                world,
                actions,
                capabilities,
                limits,
            },
        })
    }
}

/// `adapter.actions`: members of the closed set, each once, and only for a
/// world that can apply them.
fn parse_actions(names: &[String], world: World) -> Result<BTreeSet<ActionKind>, String> {
    let mut actions = BTreeSet::new();
    for action in names {
        let kind = ActionKind::parse(action).ok_or_else(|| {
            format!(
                "adapter.actions: {action:?} is not an action handoff can request; \
                 the closed set is: {}",
                ActionKind::names()
            )
        })?;
        if !actions.insert(kind) {
            return Err(format!("adapter.actions: {action:?} is listed twice"));
        }
    }
    if !actions.is_empty() && !world.exports_target() {
        return Err(format!(
            "adapter.actions: a {world} adapter cannot apply actions; remove them or use a target world"
        ));
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sandbox::surfaces::limits::DEFAULT_MEMORY_MIB;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let text = text.replace("{world}", World::Target.id());
        Manifest::parse(&text, Path::new("adapter.toml"))
    }

    const MINIMAL: &str = r#"
[adapter]
name = "tracker"
version = "0.1.0"
world = "{world}"
actions = ["set-state", "annotate"]
"#;

    #[test]
    fn a_minimal_manifest_grants_nothing_but_defaults_limits() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.grants.world, World::Target);
        assert_eq!(m.grants.capabilities, Capabilities::default());
        assert_eq!(m.grants.limits.memory_mib, DEFAULT_MEMORY_MIB);
        assert!(!m.one_call_per_record);
    }

    #[test]
    fn the_names_a_reviewer_reads_are_bounded() {
        let named = |n: usize| MINIMAL.replace("\"tracker\"", &format!("\"{}\"", "t".repeat(n)));
        parse(&named(64)).unwrap();
        let err = parse(&named(65)).unwrap_err();
        assert!(err.problem.contains("at most 64"), "{err}");
        let err = parse(&MINIMAL.replace("0.1.0", &format!("{}.1.0", "9".repeat(40)))).unwrap_err();
        assert!(err.problem.contains("at most 32"), "{err}");
        let described = |n: usize| {
            MINIMAL.replace(
                "actions =",
                &format!("description = \"{}\"\nactions =", "d".repeat(n)),
            )
        };
        parse(&described(1024)).unwrap();
        let err = parse(&described(1025)).unwrap_err();
        assert!(err.problem.contains("at most 1024"), "{err}");
    }

    #[test]
    fn an_adapter_says_whether_calls_on_one_record_must_take_turns() {
        let declared = MINIMAL.replace("actions =", "one-call-per-record = true\nactions =");
        assert!(parse(&declared).unwrap().one_call_per_record);
        let err = parse(&MINIMAL.replace("actions =", "one-call-per-record = \"yes\"\nactions ="))
            .unwrap_err();
        assert!(err.problem.contains("one-call-per-record"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = parse(&format!("{MINIMAL}\n[capabilities]\nshell = true\n")).unwrap_err();
        assert!(err.problem.contains("shell"), "{err}");
        let err = parse(&MINIMAL.replace("actions", "permissions")).unwrap_err();
        assert!(err.problem.contains("permissions"), "{err}");
    }

    #[test]
    fn a_manifest_is_plain_text_for_the_terminal_it_is_reviewed_at() {
        for (text, at) in [
            (
                MINIMAL.replace(
                    "actions =",
                    "description = \"ok\\u001b[1A\\u001b[2K\"\nactions =",
                ),
                "adapter.description",
            ),
            (
                MINIMAL.replace("actions =", "description = \"\"\"one\ntwo\"\"\"\nactions ="),
                "adapter.description",
            ),
            (
                MINIMAL.replace("\"annotate\"", "\"annotate\\u0007\""),
                "adapter.actions[1]",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(
                err.problem.starts_with(at) && err.problem.contains("control character"),
                "{at}: {err}"
            );
        }
    }

    #[test]
    fn a_manifest_that_would_show_in_another_order_than_it_reads_is_refused() {
        for text in [
            MINIMAL.replace("version = \"0.1.0\"", "version = \"0.1.0\" # \u{202E} }"),
            MINIMAL.replace("\"annotate\"", "\"annotate\u{2066}\""),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.problem.starts_with("line "), "{err}");
            assert!(err.problem.contains("another order"), "{err}");
        }
    }

    #[test]
    fn actions_outside_the_closed_set_are_refused() {
        let err = parse(&MINIMAL.replace("\"annotate\"", "\"deploy\"")).unwrap_err();
        assert!(err.problem.contains("\"deploy\""), "{err}");
        assert!(err.problem.contains("clear-entry"), "{err}");
    }

    #[test]
    fn a_grant_or_a_limit_given_by_position_is_refused() {
        // serde alone would read these arrays field by field: a URL, its
        // methods and a header to inject; a memory size and a call timeout.
        for extra in [
            "[capabilities]\nhttp = [[\"https://h.example\", [\"GET\"], [\"authorization\", \"token\"]]]\n",
            "limits = [4096, 600000]\n",
        ] {
            let text = MINIMAL.replace("[adapter]", &format!("{extra}[adapter]"));
            let err = parse(&text).unwrap_err();
            assert!(err.problem.contains("given by position"), "{extra}: {err}");
        }
    }

    #[test]
    fn a_surface_names_the_entry_it_refuses() {
        let err = parse(&format!(
            "{MINIMAL}\n[[capabilities.http]]\nurl = \"http://h/api\"\n"
        ))
        .unwrap_err();
        assert!(err.problem.starts_with("capabilities.http[0].url"), "{err}");
    }
}
