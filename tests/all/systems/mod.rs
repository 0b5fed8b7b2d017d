//! Against the project's real test servers (`scripts/test-servers start`:
//! Redmine, NATS JetStream, SMTP receivers, an HTTPS server, SeaweedFS):
//! select them as a group with `cargo test --test all systems::`. Without
//! the servers they fail saying how to start them. `webhook` is the
//! contract test of a hosted API that cannot run here.

mod end_to_end;
mod https;
mod mail;
mod mail_once;
mod nats;
mod nats_door;
mod notices;
mod redmine;
mod s3;
mod serve;
mod webhook;
