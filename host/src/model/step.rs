//! A step's lifecycle: its states and the one table of moves between them.
//! The driver moves a step only by an event through [`StepState::on`], so a
//! move the table does not hold cannot be made.
//!
//! ```text
//! planned ─┬─ intent recorded ──► observed ── confirmed ──► verified
//!          ├─ found done ───────► skipped
//!          ├─ found ours ───────► verified
//!          └─ failed ───────────► failed
//! observed and failed take the same events as planned again (a resumed
//! run starts the step over from observe); verified and skipped take none.
//! ```

crate::closed_enum! {
    /// Where a step stands.
    pub enum StepState {
        /// In the plan; nothing done yet.
        Planned = "planned",
        /// About to write: the intent, with the step's key, is on record.
        Observed = "observed",
        /// Written and confirmed (or found written with this step's key).
        Verified = "verified",
        /// Its end state already held: nothing written.
        Skipped = "skipped",
        /// Retries exhausted or refused; a resumed run starts it again.
        Failed = "failed",
    }
}

crate::closed_enum! {
    /// What happened to a step.
    pub enum StepEvent {
        /// The intent to write, with the step's key, is recorded.
        IntentRecorded = "intent-recorded",
        /// The target already shows the step's end state.
        FoundDone = "found-done",
        /// The target shows the end state and carries this step's key: an
        /// earlier attempt wrote it.
        FoundOurs = "found-ours",
        /// After the write, the target shows the end state.
        Confirmed = "confirmed",
        /// An adapter call failed for good, or the confirmation did not hold.
        Failed = "failed",
    }
}

/// A move the lifecycle does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a step that is {from} cannot take the event {event}")]
pub struct IllegalTransition {
    pub from: StepState,
    pub event: StepEvent,
}

impl StepState {
    /// The state `event` moves a step in this state to.
    pub fn on(self, event: StepEvent) -> Result<StepState, IllegalTransition> {
        use StepEvent as E;
        use StepState as S;
        let next = match (self, event) {
            (S::Verified | S::Skipped, _) => None,
            (_, E::IntentRecorded) => Some(S::Observed),
            (_, E::FoundDone) => Some(S::Skipped),
            (_, E::FoundOurs) => Some(S::Verified),
            (S::Observed, E::Confirmed) => Some(S::Verified),
            (_, E::Confirmed) => None,
            (_, E::Failed) => Some(S::Failed),
        };
        next.ok_or(IllegalTransition { from: self, event })
    }

    /// Whether nothing is left to do for the step.
    pub fn is_final(self) -> bool {
        matches!(self, StepState::Verified | StepState::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table, written out: a change to the lifecycle changes this.
    #[test]
    fn the_lifecycle_is_this_table() {
        let mut table = Vec::new();
        for from in StepState::ALL {
            for event in StepEvent::ALL {
                if let Ok(to) = from.on(*event) {
                    table.push(format!("{from} --{event}--> {to}"));
                }
            }
        }
        assert_eq!(
            table,
            [
                "planned --intent-recorded--> observed",
                "planned --found-done--> skipped",
                "planned --found-ours--> verified",
                "planned --failed--> failed",
                "observed --intent-recorded--> observed",
                "observed --found-done--> skipped",
                "observed --found-ours--> verified",
                "observed --confirmed--> verified",
                "observed --failed--> failed",
                "failed --intent-recorded--> observed",
                "failed --found-done--> skipped",
                "failed --found-ours--> verified",
                "failed --failed--> failed",
            ]
        );
    }

    #[test]
    fn a_finished_step_takes_no_event() {
        for event in StepEvent::ALL {
            assert!(StepState::Verified.on(*event).is_err());
            assert!(StepState::Skipped.on(*event).is_err());
        }
        let err = StepState::Planned.on(StepEvent::Confirmed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a step that is planned cannot take the event confirmed"
        );
    }
}
