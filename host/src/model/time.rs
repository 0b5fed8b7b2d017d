//! Timestamps as every layer writes them: RFC 3339 UTC with exactly three
//! fraction digits, so that text order is time order (leases and due times
//! are compared as text).

use std::time::Duration;

/// Now.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// A time in the one form.
pub fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `from_now` later than now, in the same form.
pub fn rfc3339_in(from_now: Duration) -> String {
    let span = jiff::SignedDuration::try_from(from_now).unwrap_or(jiff::SignedDuration::MAX);
    rfc3339(
        jiff::Timestamp::now()
            .checked_add(span)
            .unwrap_or(jiff::Timestamp::MAX),
    )
}
