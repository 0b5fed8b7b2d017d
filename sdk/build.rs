//! Turns `wit/adapter.wit` into the SDK's `export!` macro and its own
//! bindings, with the package id (name and version) read from the WIT
//! itself, so the version is written in one place.
//!
//! A guest component must carry the type information of exactly the world it
//! exports, so the export bindings are generated in the adapter author's crate
//! (where `export!` is invoked), from the same WIT text the host uses. The WIT
//! is embedded as an inline string so the author's crate needs no path to it.

use std::{env, fs, path::PathBuf};

/// The interfaces the SDK imports: the host's, and the optional capability
/// interfaces (a component imports one only when its code calls it).
const IMPORTS: &[&str] = &["host", "jetstream", "mail", "s3"];

const WORLDS: &[(&str, &str)] = &[
    ("source", "source-adapter"),
    ("target", "target-adapter"),
    ("source_target", "adapter"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let wit_path = manifest_dir.join("../wit/adapter.wit");
    println!("cargo:rerun-if-changed={}", wit_path.display());
    let wit = fs::read_to_string(&wit_path).unwrap_or_else(|e| {
        panic!(
            "cannot read the WIT contract at {}: {e}",
            wit_path.display()
        )
    });

    let package = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .and_then(|p| p.strip_suffix(';'))
        .unwrap_or_else(|| panic!("{} declares no package", wit_path.display()));
    let (name, version) = package
        .split_once('@')
        .unwrap_or_else(|| panic!("package {package} has no version"));
    let id = |interface: &str| format!("{name}/{interface}@{version}");

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let imports: String = IMPORTS
        .iter()
        .map(|i| format!("import {}; ", id(i)))
        .collect();
    let bindings = format!(
        r#"wit_bindgen::generate!({{
    inline: "package handoff:sdk-internal; world sdk {{ {imports}}}",
    path: "../wit",
    world: "handoff:sdk-internal/sdk",
    generate_all,
    generate_unused_types: true,
    additional_derives: [PartialEq, Eq, Clone],
}});
"#
    );
    fs::write(out_dir.join("sdk_bindings.rs"), bindings).expect("write sdk_bindings.rs");

    let mut out = String::new();
    for (arm, world) in WORLDS {
        out.push_str(&format!(
            r#"
#[doc(hidden)]
#[macro_export]
macro_rules! __handoff_world_{arm} {{
    () => {{
        $crate::__private::wit_bindgen::generate!({{
            inline: {wit:?},
            world: "{world}",
            runtime_path: "::handoff_sdk::__private::wit_bindgen::rt",
            export_macro_name: "__handoff_export_world",
            with: {{
                "{types}": ::handoff_sdk::types,
                "{host}": ::handoff_sdk::__private::host,
            }},
        }});
    }};
}}
"#,
            types = id("types"),
            host = id("host"),
        ));
    }
    let dest = out_dir.join("world_macros.rs");
    fs::write(&dest, out).expect("write world_macros.rs");
}
