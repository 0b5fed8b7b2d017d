//! The `handoff` command as users meet it: every subcommand, `check`,
//! `demo`, `adapter conform` and `store restore`.

mod check;
mod commands;
mod conform;
mod demo;
mod installed;
mod restore;
mod reviewer;
