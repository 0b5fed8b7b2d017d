//! The `handoff` command as users meet it: every subcommand, `check`,
//! `demo` and `adapter conform`.

mod check;
mod commands;
mod conform;
mod demo;
mod installed;
mod reviewer;
