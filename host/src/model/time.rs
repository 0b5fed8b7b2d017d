//! Timestamps as every layer writes them: RFC 3339 UTC with exactly three
//! fraction digits, so that text order is time order (leases and due times
//! are compared as text).

use std::time::Duration;

/// Reads a time as RFC 3339 writes it (`2026-12-01T09:00:00Z`,
/// `2026-12-01T10:00:00.250+01:00`): a date, `T` (or a space), a time with
/// its seconds, an optional fraction, and `Z` or an offset of at most
/// 23:59. The other forms ISO 8601 allows (no seconds, an hour-only
/// offset, a bracketed zone) are refused: a CloudEvent's `time` and the
/// command line's times are RFC 3339. The error says what is wrong.
pub fn parse_rfc3339(text: &str) -> Result<jiff::Timestamp, String> {
    if !rfc3339_shaped(text.as_bytes()) {
        return Err("is not an RFC 3339 time with its offset, such as 2026-12-01T09:00:00Z".into());
    }
    text.parse::<jiff::Timestamp>().map_err(|e| {
        // Four-digit years reach past jiff's last instant only at the end of
        // year 9999; a date and time that exist there are out of range.
        let civil = format!("{}T{}", &text[..10], &text[11..19]);
        if text.starts_with("9999-") && civil.parse::<jiff::civil::DateTime>().is_ok() {
            format!(
                "is past the latest time handoff takes ({})",
                jiff::Timestamp::MAX.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        } else {
            format!("is not a time that exists ({e})")
        }
    })
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS(.d+)?(Z|z|(+|-)HH:MM)`, an offset's hours at
/// most 23 (RFC 3339 section 5.6).
fn rfc3339_shaped(text: &[u8]) -> bool {
    let digits = |from: usize, to: usize| {
        text.get(from..to)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| text.get(i) == Some(&c);
    let date_and_time = digits(0, 4)
        && at(4, b'-')
        && digits(5, 7)
        && at(7, b'-')
        && digits(8, 10)
        && matches!(text.get(10), Some(b'T' | b't' | b' '))
        && digits(11, 13)
        && at(13, b':')
        && digits(14, 16)
        && at(16, b':')
        && digits(17, 19);
    if !date_and_time {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc_3339_writes_them_and_nothing_else() {
        for (text, utc) in [
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00.000Z"),
            ("2026-12-01t09:00:00z", "2026-12-01T09:00:00.000Z"),
            ("2026-12-01 09:00:00Z", "2026-12-01T09:00:00.000Z"),
            ("2026-12-01T10:00:00.25+01:00", "2026-12-01T09:00:00.250Z"),
            ("2026-12-01T09:00:00-23:59", "2026-12-02T08:59:00.000Z"),
        ] {
            assert_eq!(rfc3339(parse_rfc3339(text).unwrap()), utc, "{text}");
        }
        for (text, why) in [
            ("2026-12-01T09:00:00+25:00", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00+24:00", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00+01:60", "not an RFC 3339 time"),
            ("2026-12-01T09:00Z", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00+01", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00.Z", "not an RFC 3339 time"),
            ("2026-12-01T09:00:00Z[Europe/Paris]", "not an RFC 3339 time"),
            ("2026-12-01", "not an RFC 3339 time"),
            ("", "not an RFC 3339 time"),
            ("2026-02-30T09:00:00Z", "not a time that exists"),
            ("2026-12-01T25:00:00Z", "not a time that exists"),
            ("9999-12-31T23:59:59Z", "past the latest time handoff takes"),
            ("9999-02-30T00:00:00Z", "not a time that exists"),
        ] {
            let err = parse_rfc3339(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
