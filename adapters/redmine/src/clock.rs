//! Redmine's times as seconds since the Unix epoch: an issue's `updated_on`
//! (RFC 3339, `2026-11-22T10:00:00Z`) and an answer's `Date` header (HTTP's
//! `Sun, 22 Nov 2026 10:00:03 GMT`, RFC 2822's form), and this machine's
//! clock for when an answer has no `Date`. Whole seconds are all either
//! carries.

use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimeParser;

/// `2026-11-22T10:00:00Z`, or with an offset (`+01:00`) instead of `Z`.
pub fn iso_seconds(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// An HTTP date: `Sun, 22 Nov 2026 10:00:03 GMT`.
pub fn http_date_seconds(text: &str) -> Option<i64> {
    DateTimeParser::new()
        .parse_timestamp(text)
        .ok()
        .map(|t| t.as_second())
}

/// This machine's clock, in whole seconds.
pub fn local_seconds() -> i64 {
    Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_one_moment_are_the_same_second() {
        // `date -u -d 2026-11-22T10:00:03Z +%s`
        let expected = 1_795_341_603;
        assert_eq!(iso_seconds("2026-11-22T10:00:03Z"), Some(expected));
        assert_eq!(iso_seconds("2026-11-22T11:00:03+01:00"), Some(expected));
        assert_eq!(iso_seconds("2026-11-22T10:00:03.750Z"), Some(expected));
        assert_eq!(
            http_date_seconds("Sun, 22 Nov 2026 10:00:03 GMT"),
            Some(expected)
        );
    }

    #[test]
    fn what_is_not_such_a_time_is_none() {
        for text in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:03",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(iso_seconds(text), None, "{text:?}");
        }
        for text in [
            "",
            "Sun, 22 Nov 2026 10:00:03",
            "Sun, 22 Foo 2026 10:00:03 GMT",
        ] {
            assert_eq!(http_date_seconds(text), None, "{text:?}");
        }
    }
}
