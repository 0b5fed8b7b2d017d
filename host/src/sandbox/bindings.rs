//! The host's bindings of the WIT contract (the `host-runtime` world: the
//! adapter worlds and every capability interface), generated once here and
//! imported by whatever implements or calls them.

wasmtime::component::bindgen!({
    world: "host-runtime",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

pub use self::handoff::adapter::types as wit;
