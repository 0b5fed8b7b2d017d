//! The integration tests: one binary, one module per area. They run real
//! components in the real sandbox, against real servers on 127.0.0.1.

mod approval;
mod audit;
mod calls;
mod check;
mod cli;
mod conform;
mod demo;
mod dry_run;
mod end_to_end;
mod hostile;
mod intake;
mod mail;
mod parsers;
mod pipeline;
mod redmine;
mod reference;
mod s3;
mod sandbox;
mod scenario;
mod serve;
mod servers;
mod support;
mod webhook;
