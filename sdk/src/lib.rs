//! The Rust SDK for handoff adapters.
//!
//! An adapter is a WebAssembly component that connects handoff to one system
//! (a tracker, an archive, a queue). Write a type, implement [`Source`] and/or
//! [`Target`] for it, and call [`export!`]:
//!
//! ```ignore
//! use handoff_sdk::{export, Target, RecordRef, Observed, Action, AdapterError};
//!
//! struct Tracker;
//!
//! impl Target for Tracker {
//!     fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
//!         let base = handoff_sdk::config("base_url").ok_or_else(|| AdapterError::Invalid("base_url not configured".into()))?;
//!         let response = handoff_sdk::http::get(&format!("{base}/issues/{}.json", record.id))?;
//!         // ...
//!         # todo!()
//!     }
//! }
//!
//! export!(Tracker: target);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2`. Outbound HTTP goes through
//! [`http`], which reports a request the host refused as
//! [`AdapterError::Denied`] with the reason. Files are plain `std::fs` under the
//! directories the manifest declares (mounted at `/<name>`). NATS, mail and S3
//! go through the host ([`nats`], [`mail`], [`s3`]), which holds the
//! connections and credentials. Unit-test adapter logic natively with
//! [`testing::Harness`].

mod bindings;
pub mod fs;
pub mod http;
pub mod mail;
pub mod nats;
pub mod s3;
pub mod sent;
pub mod testing;

pub use bindings::types;
pub use types::{
    Action, AdapterError, Change, ChangePage, Decision, Level, Link, Message, Observed, RecordRef,
};

/// A system of record that holds authoritative decisions.
///
/// `read_decision` is required; `list_changes` defaults to `unsupported`.
pub trait Source {
    /// Read the decision as the source holds it now. No side effects, no caching.
    fn read_decision(record: RecordRef) -> Result<Decision, AdapterError>;

    /// Decisions changed after `cursor` (empty: from the start), oldest first,
    /// at most `limit`. No side effects.
    fn list_changes(cursor: String, limit: u32) -> Result<ChangePage, AdapterError> {
        let _ = (cursor, limit);
        Err(AdapterError::Unsupported(
            "this adapter does not list changes".into(),
        ))
    }
}

/// A system the host writes closure work into.
///
/// `observe` is required; `apply` defaults to `unsupported`.
pub trait Target {
    /// What the record holds now. No side effects.
    fn observe(record: RecordRef) -> Result<Observed, AdapterError>;

    /// Apply one action; must be safe to repeat with the same key.
    fn apply(
        record: RecordRef,
        action: Action,
        idempotency_key: String,
    ) -> Result<Observed, AdapterError> {
        let _ = (record, idempotency_key);
        Err(AdapterError::Unsupported(format!(
            "this adapter does not apply {}",
            action_name(&action)
        )))
    }
}

/// The manifest name of an action (`set-state`, `attach-link`...).
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::SetState(_) => "set-state",
        Action::AttachLink(_) => "attach-link",
        Action::Annotate(_) => "annotate",
        Action::ClearEntry => "clear-entry",
        Action::Publish(_) => "publish",
    }
}

/// An operator-supplied configuration value for this adapter instance.
pub fn config(key: &str) -> Option<String> {
    backend::config(key)
}

/// The configuration value `key` as a whole number from 1 to `most`, or
/// `default` when the operator left it out. Anything else is
/// [`AdapterError::Invalid`], naming the key: a mistyped value must not
/// quietly become the default.
pub fn config_count(key: &str, default: u32, most: u32) -> Result<u32, AdapterError> {
    let Some(text) = config(key) else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=most).contains(&n) => Ok(n),
        _ => Err(AdapterError::Invalid(format!(
            "config `{key}` is {text:?}; a whole number from 1 to {most}"
        ))),
    }
}

/// How many of a channel's latest messages `observe` reports as applied,
/// for a target that cannot be asked whether one key was written (mail, a
/// webhook, a subject): config `observe-window`, 100 unless the operator
/// says otherwise, at most 10,000 ([`config_count`]'s refusal otherwise).
pub fn observe_window() -> Result<u32, AdapterError> {
    config_count("observe-window", 100, 10_000)
}

/// In an `apply`: whether a person resumed this step after it failed (its
/// follow-up resolved with `resume`), so that a delivery an earlier try may
/// have made is to be made again, as they decided. False in every other
/// call, and after a crash or a retry ([`sent::SentLog::deliver`] asks).
pub fn person_resumed() -> bool {
    backend::person_resumed()
}

/// Write a log line; the host attributes it to this adapter.
pub fn log(level: Level, message: &str) {
    backend::log(level, message)
}

impl Observed {
    /// A record that does not exist.
    pub fn missing() -> Self {
        Observed {
            exists: false,
            state: String::new(),
            revision: None,
            fields: Vec::new(),
            links: Vec::new(),
            applied_keys: Vec::new(),
        }
    }

    /// The value of a named field, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl AdapterError {
    /// The variant's name as the WIT spells it (`denied`, `transient`...).
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterError::NotFound(_) => "not-found",
            AdapterError::Conflict(_) => "conflict",
            AdapterError::Transient(_) => "transient",
            AdapterError::Denied(_) => "denied",
            AdapterError::Invalid(_) => "invalid",
            AdapterError::Unsupported(_) => "unsupported",
        }
    }

    /// The message the variant carries.
    pub fn message(&self) -> &str {
        match self {
            AdapterError::NotFound(m)
            | AdapterError::Conflict(m)
            | AdapterError::Transient(m)
            | AdapterError::Denied(m)
            | AdapterError::Invalid(m)
            | AdapterError::Unsupported(m) => m,
        }
    }
}

/// Where `config` and `log` go: the host's imports inside a component, the
/// test harness in a native build.
#[cfg(target_arch = "wasm32")]
mod backend {
    use super::{Level, bindings::host};

    pub fn config(key: &str) -> Option<String> {
        host::config(key)
    }

    pub fn person_resumed() -> bool {
        host::person_resumed()
    }

    pub fn log(level: Level, message: &str) {
        host::log(level, message)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::Level;

    pub fn config(key: &str) -> Option<String> {
        crate::testing::with_current(|h| h.config_value(key))
    }

    pub fn person_resumed() -> bool {
        crate::testing::with_current(|h| h.answer_person_resumed())
    }

    pub fn log(level: Level, message: &str) {
        crate::testing::with_current(|h| h.record_log(level, message))
    }
}

include!(concat!(env!("OUT_DIR"), "/world_macros.rs"));

/// Export a type as this component's adapter.
///
/// `export!(MyAdapter: target)`, `export!(MyAdapter: source)` or
/// `export!(MyAdapter: source, target)`; the type implements the matching
/// traits. The world in `adapter.toml` must match: `target-adapter`,
/// `source-adapter` or `adapter`.
#[macro_export]
macro_rules! export {
    ($ty:ident : target) => {
        $crate::__handoff_world_target!();
        $crate::__handoff_impl_target!($ty);
        __handoff_export_world!($ty with_types_in self);
    };
    ($ty:ident : source) => {
        $crate::__handoff_world_source!();
        $crate::__handoff_impl_source!($ty);
        __handoff_export_world!($ty with_types_in self);
    };
    ($ty:ident : source, target) => {
        $crate::__handoff_world_source_target!();
        $crate::__handoff_impl_source!($ty);
        $crate::__handoff_impl_target!($ty);
        __handoff_export_world!($ty with_types_in self);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __handoff_impl_target {
    ($ty:ident) => {
        impl self::exports::handoff::adapter::target::Guest for $ty {
            fn observe(
                record: $crate::RecordRef,
            ) -> ::core::result::Result<$crate::Observed, $crate::AdapterError> {
                <$ty as $crate::Target>::observe(record)
            }
            fn apply(
                record: $crate::RecordRef,
                action: $crate::Action,
                idempotency_key: ::std::string::String,
            ) -> ::core::result::Result<$crate::Observed, $crate::AdapterError> {
                <$ty as $crate::Target>::apply(record, action, idempotency_key)
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __handoff_impl_source {
    ($ty:ident) => {
        impl self::exports::handoff::adapter::source::Guest for $ty {
            fn read_decision(
                record: $crate::RecordRef,
            ) -> ::core::result::Result<$crate::Decision, $crate::AdapterError> {
                <$ty as $crate::Source>::read_decision(record)
            }
            fn list_changes(
                cursor: ::std::string::String,
                limit: u32,
            ) -> ::core::result::Result<$crate::ChangePage, $crate::AdapterError> {
                <$ty as $crate::Source>::list_changes(cursor, limit)
            }
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::host;
    pub use wit_bindgen;
}
