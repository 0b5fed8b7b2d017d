//! Redmine's times as seconds since the Unix epoch: an issue's `updated_on`
//! (ISO 8601, `2026-11-22T10:00:00Z`) and an answer's `Date` header (HTTP's
//! `Sun, 22 Nov 2026 10:00:03 GMT`), and this machine's clock for when an
//! answer has no `Date`. Whole seconds are all either carries.

/// Days from 1970-01-01 to the given proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years counted from March, so the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn number<T: std::str::FromStr>(text: &str, digits: usize) -> Option<T> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `HH:MM:SS` as seconds into the day.
fn time_of_day(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let h: i64 = number(parts.next()?, 2)?;
    let m: i64 = number(parts.next()?, 2)?;
    let s: i64 = number(parts.next()?, 2)?;
    (parts.next().is_none() && h < 24 && m < 60 && s < 61).then_some(h * 3600 + m * 60 + s)
}

fn date(year: i64, month: u32, day: u32) -> Option<i64> {
    ((1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| days_from_civil(year, month, day) * 86_400)
}

/// `2026-11-22T10:00:00Z`, or with an offset (`+01:00`) instead of `Z`;
/// fractions of a second are dropped.
pub fn iso_seconds(text: &str) -> Option<i64> {
    let (day, rest) = text.split_once('T')?;
    let mut ymd = day.split('-');
    let year: i64 = number(ymd.next()?, 4)?;
    let month: u32 = number(ymd.next()?, 2)?;
    let d: u32 = number(ymd.next()?, 2)?;
    if ymd.next().is_some() || rest.len() < 8 {
        return None;
    }
    let (clock, zone) = rest.split_at(8);
    let zone = match zone.find(['Z', '+', '-']) {
        Some(at) if zone[..at].starts_with('.') || at == 0 => &zone[at..],
        _ => return None,
    };
    let offset = match zone {
        "Z" => 0,
        _ => {
            let (sign, hm) = zone.split_at(1);
            let (h, m) = hm.split_once(':')?;
            let minutes = number::<i64>(h, 2)? * 60 + number::<i64>(m, 2)?;
            if sign == "+" {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
    };
    Some(date(year, month, d)? + time_of_day(clock)? - offset)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP date in its one current form (RFC 9110's IMF-fixdate):
/// `Sun, 22 Nov 2026 10:00:03 GMT`.
pub fn http_date_seconds(text: &str) -> Option<i64> {
    let (_, rest) = text.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    Some(date(number(year, 4)?, month, number(day, 2)?)? + time_of_day(clock)?)
}

/// This machine's clock, in whole seconds (0 if it is set before 1970).
pub fn local_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
        assert_eq!(iso_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            iso_seconds("2024-03-01T00:00:00Z").unwrap()
                - iso_seconds("2024-02-28T00:00:00Z").unwrap(),
            2 * 86_400,
            "2024 is a leap year"
        );
    }

    #[test]
    fn what_is_not_such_a_time_is_none() {
        for text in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:03",
            "2026-13-01T00:00:00Z",
            "22/11/2026T10:00:00Z",
        ] {
            assert_eq!(iso_seconds(text), None, "{text:?}");
        }
        for text in [
            "",
            "Sun, 22 Nov 2026 10:00:03",
            "Sunday, 22-Nov-26 10:00:03 GMT",
            "Sun, 22 Foo 2026 10:00:03 GMT",
        ] {
            assert_eq!(http_date_seconds(text), None, "{text:?}");
        }
    }
}
