//! How a run ends: the closed set of outcomes the CLI, the audit chain, the
//! store and the metrics name.

crate::closed_enum! {
    /// How a run ended.
    pub enum Outcome {
        /// Every step applied and confirmed.
        Completed = "completed",
        /// Done; some steps were already in their end state (skipped as
        /// idempotent).
        CompletedWithSkips = "completed-with-skips",
        /// A target failed after its retries, or did not confirm, after
        /// something was written; resumable.
        PartiallyCompleted = "partially-completed",
        /// Stale, revoked, superseded, mapping drift, evidence mismatch,
        /// out of scope, capability denied: a person decides.
        HaltedForFollowUp = "halted-for-follow-up",
        /// A policy in shadow mode: every target was looked at, what the
        /// run would have done recorded, and nothing written.
        Shadowed = "shadowed",
        /// The decision was already received: no new run (an answer of
        /// intake, never stored as a run's outcome).
        DuplicateSuppressed = "duplicate-suppressed",
    }
}

impl Outcome {
    /// Whether a person has something to do.
    pub fn needs_follow_up(self) -> bool {
        matches!(
            self,
            Outcome::PartiallyCompleted | Outcome::HaltedForFollowUp
        )
    }

    /// Whether a run can end this way (every outcome but a duplicate).
    pub fn ends_a_run(self) -> bool {
        self != Outcome::DuplicateSuppressed
    }
}
