//! The SDK's own bindings: the shared types, the host interface and the
//! optional capability interfaces (`jetstream`, `mail`).
//!
//! The world here only imports, so the type information it adds to a
//! component declares no export; the export world comes from `export!`. An
//! interface the adapter never calls is not imported by the final component
//! (so it needs no capability).

wit_bindgen::generate!({
    inline: "package handoff:sdk-internal; world sdk { import handoff:adapter/host@0.1.0; import handoff:adapter/jetstream@0.1.0; import handoff:adapter/mail@0.1.0; }",
    path: "../wit",
    world: "handoff:sdk-internal/sdk",
    generate_all,
    generate_unused_types: true,
    additional_derives: [PartialEq, Eq, Clone],
});

pub use self::handoff::adapter::{host, jetstream, mail, types};
