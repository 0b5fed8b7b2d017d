//! The sandbox: loads adapter components only within the capabilities their
//! authors declared and an operator approved, and runs each call under
//! least privilege.
//!
//! Each capability surface is one folder under [`surfaces`] behind the
//! [`surface::Surface`] trait (its manifest section, grant algebra, import
//! coverage, narrowing, reviewer lines, load, gate and linker wiring);
//! [`surfaces::limits`] holds CPU and memory. Around them: [`manifest`] and
//! [`package`] (what is on disk), [`approval`] (digests, widening, the
//! effective grant), [`imports`] (the link-time check), [`narrowing`] (an
//! instance's own narrowing), [`reach`] (what a reviewer reads),
//! [`load`] (the [`Sandbox`] and the load order), [`instance`] (loaded
//! adapters and guarded calls), [`engine`] and [`artifacts`] (wasmtime and
//! compiled components), [`linker`] and [`bindings`] (the wiring),
//! [`bounds`] and [`guest_log`] (what crosses back from a guest),
//! [`decision`] (the record of every check), [`net`] (what the network
//! surfaces share), [`binding`] and [`ceiling`] (the operator's side).

pub mod approval;
pub mod artifacts;
pub mod binding;
pub mod bindings;
pub mod bounds;
pub mod budget;
pub mod ceiling;
pub mod decision;
pub mod engine;
pub mod error;
pub mod guest_log;
pub mod imports;
pub mod instance;
pub mod linker;
pub mod load;
pub mod manifest;
pub mod narrowing;
pub mod net;
pub mod package;
pub mod reach;
pub mod settings;
pub mod surface;
pub mod surfaces;

pub use bindings::wit::{
    Action, AdapterError, Change, ChangePage, Decision, Link, Message, Observed, RecordRef,
};
pub use error::{CallError, LoadError};
pub use instance::{CallResult, Instance, LoadedAdapter, action_kind};
pub use load::{Inspection, Sandbox};
pub use surfaces::limits::MOST_HOST_RESOURCES;
