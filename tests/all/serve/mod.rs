//! `handoff serve` as a real process: its HTTP door (signatures, replays,
//! modes, slow and flooding clients), and its life (shutdown and restart,
//! start-up refusals, anchors, backups, logs, limits across workers), the
//! approvals it follows as they change. The doors that need the project's
//! test servers are in `systems::nats_door` (NATS) and `systems::serve`
//! (reconciliation against Redmine).

mod api;
mod approvals;
mod console;
mod delivery;
mod http;
mod in_flight;
mod life;
