//! The notices a follow-up packet sends to people: what kind each is, and
//! where its delivery stands.

crate::closed_enum! {
    /// Why a notice goes out.
    pub enum NoticeKind {
        /// A new packet, to its role.
        Opened = "opened",
        /// Before the due time (at `remind-at` percent of the SLA), while
        /// nobody has taken it on.
        Reminder = "reminder",
        /// The due time passed and nobody has taken it on.
        Overdue = "overdue",
        /// Still not taken on `after-hours` after it opened: to the next
        /// role of the escalation chain.
        Escalated = "escalated",
    }
}

crate::closed_enum! {
    /// Where a notice's delivery stands.
    pub enum NoticeState {
        /// Waiting for its time, or for another try.
        Pending = "pending",
        /// Delivered (the adapter accepted the publish).
        Sent = "sent",
        /// Every try failed; counted, and left for an operator to see.
        Failed = "failed",
        /// Not needed any more: the packet was taken on or resolved first.
        Cancelled = "cancelled",
    }
}

impl NoticeKind {
    /// Whether a person taking the packet on makes this notice pointless.
    pub fn stopped_by_acknowledgement(self) -> bool {
        self != NoticeKind::Opened
    }
}
