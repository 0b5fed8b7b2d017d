//! The SDK's own bindings: the shared types and the host interface.
//!
//! The world here imports only `host`, so the type information it adds to a
//! component declares no export; the export world comes from `export!`.

wit_bindgen::generate!({
    inline: "package handoff:sdk-internal; world sdk { import handoff:adapter/host@0.1.0; }",
    path: "../wit",
    world: "handoff:sdk-internal/sdk",
    generate_all,
    generate_unused_types: true,
    additional_derives: [PartialEq, Eq, Clone],
});

pub use self::handoff::adapter::{host, types};
