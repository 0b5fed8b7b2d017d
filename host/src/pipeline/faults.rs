//! Named pause points for crash testing.
//!
//! With `HANDOFF_FAULT_PAUSE=<point>` set (for example
//! `after-apply:close-checklist`), a run that reaches that point (after
//! the target was written and before the store records it) says so on
//! stderr and stops there for good, its task waiting to be killed with the
//! process (the other runs go on). The crash tests SIGKILL it there and
//! check that a restart neither loses nor repeats anything. Unset, every
//! point is a no-op.

/// The configured pause point, if any.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pause_at: Option<String>,
}

/// The line printed on stderr when a pause point is reached.
pub const PAUSED: &str = "handoff: paused at fault point";

impl Faults {
    pub fn from_env() -> Faults {
        Faults {
            pause_at: std::env::var("HANDOFF_FAULT_PAUSE")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// Whether this is the configured point.
    pub fn armed(&self, stage: &str, step: &str) -> bool {
        self.pause_at.as_ref().is_some_and(|target| {
            target == stage
                || target
                    .strip_prefix(stage)
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(step)
        })
    }

    /// Stop here forever if this is the configured point: the task that
    /// reached it waits for good, as a run paused there would (the other
    /// runs on its thread go on).
    pub async fn point(&self, stage: &str, step: &str) {
        if self.armed(stage, step) {
            eprintln!("{PAUSED} {stage}:{step}");
            std::future::pending::<()>().await;
        }
    }
}
