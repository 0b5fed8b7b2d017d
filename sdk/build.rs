//! Turns `wit/adapter.wit` into the SDK's `export!` macro.
//!
//! A guest component must carry the type information of exactly the world it
//! exports, so the export bindings are generated in the adapter author's crate
//! (where `export!` is invoked), from the same WIT text the host uses. The WIT
//! is embedded as an inline string so the author's crate needs no path to it.

use std::{env, fs, path::PathBuf};

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
                "handoff:adapter/types@0.1.0": ::handoff_sdk::types,
                "handoff:adapter/host@0.1.0": ::handoff_sdk::__private::host,
            }},
        }});
    }};
}}
"#
        ));
    }
    let dest = PathBuf::from(env::var("OUT_DIR").unwrap()).join("world_macros.rs");
    fs::write(&dest, out).expect("write world_macros.rs");
}
