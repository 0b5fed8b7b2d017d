//! The closed sets of a handoff to a person and of the sandbox's checks:
//! why a run stopped, what a person may decide, and a capability verdict.

crate::closed_enum! {
    /// Why a run stopped for a person.
    pub enum Reason {
        /// The source no longer shows the approval.
        StaleApproval = "stale-approval",
        /// The decision was revoked, rejected or withdrawn.
        Revoked = "revoked",
        /// A newer decision replaced this one.
        Superseded = "superseded",
        /// The source shows another version than the event.
        VersionMismatch = "version-mismatch",
        /// A mapped target record does not exist.
        MappingMissing = "mapping-missing",
        /// A mapped target record exists but does not match.
        MappingConflict = "mapping-conflict",
        /// The evidence a check looks for is not there.
        EvidenceMissing = "evidence-missing",
        /// The evidence is there, with another digest.
        EvidenceHashMismatch = "evidence-hash-mismatch",
        /// A target kept failing after every retry.
        RetriesExhausted = "retries-exhausted",
        /// A target acknowledged a write but does not show its end state.
        NotConfirmed = "not-confirmed",
        /// The sandbox refused something the step needed.
        CapabilityDenied = "capability-denied",
        /// A target refused the request: invalid, or in conflict with the
        /// record's state. Not retried.
        TargetRefused = "target-refused",
        /// The policy, or its approval, does not cover the request.
        OutOfScope = "out-of-scope",
    }
}

crate::closed_enum! {
    /// What a person may decide about a follow-up.
    pub enum Resolution {
        /// Revalidate and carry out only the unfinished steps.
        Resume = "resume",
        /// Stop for good; nothing more is written.
        Abandon = "abandon",
        /// The person finished the work by hand.
        MarkResolved = "mark-resolved",
    }
}

crate::closed_enum! {
    /// Whether a resolved packet was needed: `unnecessary` marks a false
    /// positive of the automation (it should not have handed off).
    pub enum ResolutionVerdict {
        Needed = "needed",
        Unnecessary = "unnecessary",
    }
}

crate::closed_enum! {
    /// A capability check's verdict.
    pub enum Verdict {
        Allowed = "allowed",
        Denied = "denied",
    }
}
