//! Structs by name at every depth, against serde's reading by position.

use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Retry {
    attempts: u32,
    base: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    retry: Option<Retry>,
    #[serde(default)]
    steps: Vec<Retry>,
    #[serde(default)]
    by_key: BTreeMap<String, Retry>,
    #[serde(default)]
    pair: Option<(u32, Retry)>,
    kind: Option<Kind>,
}

/// Read as a map by serde, for its flattened field.
#[derive(Debug, Deserialize, PartialEq)]
struct Open {
    name: String,
    #[serde(flatten)]
    rest: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Plain,
    Timed { after: u32 },
}

#[test]
fn serde_alone_reads_a_struct_by_position_and_named_does_not_at_any_depth() {
    // What this module is for: serde fills a struct from an array.
    let alone: File = toml::from_str("retry = [5, 10]").unwrap();
    assert_eq!(
        alone.retry,
        Some(Retry {
            attempts: 5,
            base: 10
        })
    );
    for text in [
        "retry = [5, 10]",
        "steps = [[1, 2]]",
        "by_key.a = [1, 2]",
        "pair = [1, [2, 3]]",
        "kind = { timed = [5] }",
    ] {
        let err = from_toml::<File>(text).unwrap_err().to_string();
        assert!(err.contains("given by position"), "{text}: {err}");
        assert!(err.contains("line 1"), "{text}: where is said: {err}");
        let json: serde_json::Value =
            serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap();
        // serde_json refuses a struct variant from an array itself.
        let json_alone = serde_json::from_value::<File>(json.clone()).is_ok();
        let err = from_json_value::<File>(json).unwrap_err().to_string();
        assert!(
            err.contains("given by position") || !json_alone,
            "{text} as JSON: {err}"
        );
    }
}

#[test]
fn everything_given_by_name_reads_as_serde_reads_it() {
    let text = "name = \"n\"\nretry = { attempts = 5, base = 10 }\n\
                steps = [{ attempts = 1, base = 2 }]\nby_key.a = { attempts = 3, base = 4 }\n\
                pair = [1, { attempts = 6, base = 7 }]\nkind = { timed = { after = 8 } }\n";
    let named: File = from_toml(text).unwrap();
    assert_eq!(named, toml::from_str::<File>(text).unwrap());
    let value: toml::Value = toml::from_str(text).unwrap();
    assert_eq!(from_toml_value::<File>(value).unwrap(), named);
    let plain: File = from_toml("kind = \"plain\"").unwrap();
    assert_eq!(plain.kind, Some(Kind::Plain));
    // A value where a table belongs is named as such, not by the
    // Rust type's name.
    for text in [
        "retry = 5",
        "retry = \"x\"",
        "steps = [true]",
        "by_key.a = 1.5",
    ] {
        let err = from_toml::<File>(text).unwrap_err().to_string();
        assert!(
            err.contains("expected a table of named keys") && !err.contains("struct"),
            "{text}: {err}"
        );
    }
    // A plain value of the wrong kind is named in words, not as the
    // Rust type; a refusal inside an array is the element's own.
    for (text, words) in [
        (
            "retry = { attempts = -1, base = 2 }",
            "a whole number from 0 to 4294967295",
        ),
        (
            "retry = { attempts = \"5\", base = 2 }",
            "a whole number from 0 to 4294967295",
        ),
        ("steps = 5", "expected an array"),
        (
            "steps = [{ attempts = true, base = 1 }]",
            "expected a whole number from 0",
        ),
    ] {
        let err = from_toml::<File>(text).unwrap_err().to_string();
        assert!(
            err.contains(words) && !err.contains("u32") && !err.contains("sequence"),
            "{text}: {err}"
        );
    }
    // So is a struct serde reads as a map, for its flattened field.
    #[derive(Debug, Deserialize)]
    struct Holder {
        #[allow(dead_code)]
        open: Open,
    }
    for text in ["open = 5", "open = [\"n\", 1]"] {
        let err = from_toml::<Holder>(text).unwrap_err().to_string();
        assert!(!err.contains("struct"), "{text}: {err}");
    }
    let held: Holder = from_toml("open = { name = \"n\", a = 1 }").unwrap();
    assert_eq!(held.open.rest["a"], 1);
    // Unknown keys are still refused by the struct, with their place.
    let err = from_toml::<File>("\n[retry]\nattempts = 1\nbase = 2\nextra = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("extra") && err.contains("line 5"), "{err}");
}
