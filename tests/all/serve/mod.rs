//! `handoff serve` as a real process: its HTTP door (signatures, replays,
//! modes, slow and flooding clients), and its life (shutdown and restart,
//! start-up refusals, anchors, backups, logs, limits across workers). The
//! doors that need the project's test servers (NATS, reconciliation against
//! Redmine) are in `systems::serve`.

mod api;
mod approvals;
mod console;
mod delivery;
mod http;
mod in_flight;
mod life;
