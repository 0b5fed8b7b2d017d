//! handoff: carries approved closure work through to completion, inside the
//! capabilities each adapter declared and an operator approved, and proves
//! what it did.
//!
//! Module map: [`model`] holds the closed sets and records every layer
//! shares; [`pipeline`] takes an event through intake, revalidation,
//! validation, planning, execution and confirmation; [`policy`] says which
//! decision authorizes which steps; [`follow_up`] is the packet handed to a
//! person when a run stops; [`sandbox`] loads and runs adapter components
//! under least privilege; [`audit`] is the hash-chained audit trail;
//! [`store`] is the durable SQLite store; [`config`] is the operator's
//! `handoff.toml`; [`conform`] tries an adapter's idempotency promises on a
//! real record; [`readiness`] checks that everything it names would be
//! let run (`handoff check`); [`serve`] is the long-lived service (`handoff
//! serve`); [`cli`] is the `handoff` command; [`backtraces`] keeps error
//! values from walking the stack when nothing will show it; [`by_name`]
//! reads every struct of a file or body by its members' names, never by
//! position.

pub mod audit;
pub mod backtraces;
pub mod by_name;
pub mod cli;
pub mod config;
pub mod conform;
pub mod demo;
pub mod files;
pub mod follow_up;
pub mod kept;
pub mod model;
pub mod paths;
pub mod pipeline;
pub mod plain;
pub mod policy;
pub mod readiness;
pub mod sandbox;
pub mod serve;
pub mod store;
pub mod telemetry;

/// Where this build put the adapter packages it built (reference adapters
/// and test guests), for the demo, tests and benchmarks.
pub const BUILT_PACKAGES_DIR: &str = env!("HANDOFF_PACKAGES_DIR");
