//! The configuration values an adapter reads (`config(key)`): the keys its
//! manifest declares (`[[config]]`), and the check, when an instance loads,
//! that the operator's `[adapters.X] config` gives only declared keys and
//! every required one. A misspelt key would otherwise be read by no one,
//! and the adapter would quietly run on its default.
//!
//! Values are not privileges (what an adapter may reach is its
//! capabilities), so declaring keys widens nothing an approval covers.

use super::manifest::MAX_NAME_CHARS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One declared key, or a family of keys (`to-*`: every key that starts
/// with `to-`, such as one address per role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigKey {
    pub key: String,
    pub required: bool,
    /// What the value means, for the operator.
    pub about: String,
}

impl ConfigKey {
    fn matches(&self, given: &str) -> bool {
        match self.key.strip_suffix('*') {
            Some(prefix) => given.len() > prefix.len() && given.starts_with(prefix),
            None => given == self.key,
        }
    }
}

/// `[[config]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawConfigKey {
    key: String,
    #[serde(default)]
    required: bool,
    about: String,
}

/// The longest `about` a key may have.
const MAX_ABOUT_BYTES: usize = 512;

/// Validate the declarations: each key well formed and declared once.
pub(super) fn parse(raw: Vec<RawConfigKey>) -> Result<Vec<ConfigKey>, String> {
    let mut keys: Vec<ConfigKey> = Vec::new();
    for r in raw {
        let stem = r.key.strip_suffix('*').unwrap_or(&r.key);
        let well_formed = !stem.is_empty()
            && r.key.len() <= MAX_NAME_CHARS
            && stem.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !well_formed {
            return Err(format!(
                "[[config]] key {:?}: use at most {MAX_NAME_CHARS} lowercase letters, digits, '-' \
                 and '_', starting with a letter or digit, with an optional '*' at the end for a \
                 family of keys",
                crate::kept::shortened(&r.key, MAX_NAME_CHARS)
            ));
        }
        if r.required && r.key.ends_with('*') {
            return Err(format!(
                "[[config]] key {:?}: a family of keys cannot be required",
                r.key
            ));
        }
        if r.about.trim().is_empty() {
            return Err(format!(
                "[[config]] key {:?}: `about` must say what the value means",
                r.key
            ));
        }
        if r.about.len() > MAX_ABOUT_BYTES {
            return Err(format!(
                "[[config]] key {:?}: `about` is {} bytes; at most {MAX_ABOUT_BYTES} (one line \
                 a reviewer reads beside the key)",
                r.key,
                r.about.len()
            ));
        }
        if keys.iter().any(|k| k.key == r.key) {
            return Err(format!("[[config]] key {:?} is declared twice", r.key));
        }
        keys.push(ConfigKey {
            key: r.key,
            required: r.required,
            about: r.about,
        });
    }
    Ok(keys)
}

/// Whether an instance's configuration fits what the adapter declares.
pub fn check(
    adapter: &str,
    declared: &[ConfigKey],
    given: &BTreeMap<String, String>,
) -> Result<(), String> {
    let unknown: Vec<&str> = given
        .keys()
        .filter(|g| !declared.iter().any(|d| d.matches(g)))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let reads = if declared.is_empty() {
            "it declares no configuration".to_string()
        } else {
            let keys: Vec<&str> = declared.iter().map(|d| d.key.as_str()).collect();
            format!("it reads {}", keys.join(", "))
        };
        return Err(format!(
            "config {} {} not read by {adapter} ({reads}); correct or remove {} in its `config`",
            plural(unknown.len(), "key", "keys"),
            quoted(&unknown),
            if unknown.len() == 1 { "it" } else { "them" },
        ));
    }
    if let Some(missing) = declared
        .iter()
        .find(|d| d.required && !given.contains_key(&d.key))
    {
        return Err(format!(
            "config key {:?} is required by {adapter} ({}); set it in its `config`",
            missing.key, missing.about
        ));
    }
    Ok(())
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn quoted(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    let verb = if keys.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(key: &str, required: bool) -> RawConfigKey {
        RawConfigKey {
            key: key.into(),
            required,
            about: "what it means".into(),
        }
    }

    fn given(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter().map(|k| (k.to_string(), "v".into())).collect()
    }

    #[test]
    fn declared_keys_and_families_are_accepted_and_others_named() {
        let keys = parse(vec![raw("server", true), raw("to-*", false)]).unwrap();
        assert_eq!(
            check("smtp", &keys, &given(&["server", "to-coordinators"])),
            Ok(())
        );
        let err = check("smtp", &keys, &given(&["server", "serevr", "to-"])).unwrap_err();
        assert_eq!(
            err,
            "config keys \"serevr\", \"to-\" are not read by smtp (it reads server, to-*); \
             correct or remove them in its `config`"
        );
        let err = check("smtp", &keys, &given(&["to-a"])).unwrap_err();
        assert_eq!(
            err,
            "config key \"server\" is required by smtp (what it means); set it in its `config`"
        );
        let err = check("archive", &[], &given(&["colour"])).unwrap_err();
        assert!(err.contains("it declares no configuration"), "{err}");
    }

    #[test]
    fn bad_declarations_are_refused_with_the_key() {
        for (declared, expected) in [
            (vec![raw("Server", false)], "lowercase"),
            (vec![raw("*", false)], "lowercase"),
            (vec![raw("to-*", true)], "cannot be required"),
            (vec![raw("a", false), raw("a", true)], "declared twice"),
            (vec![raw("-lead", false)], "starting with a letter or digit"),
            (vec![raw(&"k".repeat(65), false)], "at most 64"),
        ] {
            let err = parse(declared).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let mut silent = raw("a", false);
        silent.about = " ".into();
        assert!(parse(vec![silent]).unwrap_err().contains("about"));
        parse(vec![raw(&"k".repeat(64), false)]).unwrap();
        let mut long = raw("a", false);
        long.about = "x".repeat(513);
        assert!(parse(vec![long]).unwrap_err().contains("at most 512"));
    }
}
