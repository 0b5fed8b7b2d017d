//! The integration tests: one binary, grouped by area. They run real
//! components in the real sandbox, the real `handoff` binary, and real
//! servers on 127.0.0.1.
//!
//! - `capabilities`: each sandbox surface, what is allowed and what is refused;
//! - `pipeline`: runs through the example, halts, follow-ups, crashes, the audit chain;
//! - `serve`: the service as a process;
//! - `cli`: the command as users meet it;
//! - `systems`: against the project's test servers (`cargo test --test all systems::`);
//! - `parsers`: every parser of untrusted input, on arbitrary input.

mod capabilities;
mod cli;
mod parsers;
mod pipeline;
mod serve;
mod support;
mod systems;
