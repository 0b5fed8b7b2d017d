//! Values the command line takes, checked as clap parses them: a wrong one
//! is a wrong command line (exit 2), named with what it must be.

/// A time given on the command line: RFC 3339, its error showing the form.
pub(super) fn timestamp(text: &str) -> Result<jiff::Timestamp, String> {
    crate::model::time::parse_rfc3339(text)
}

/// The most bytes a `--by` may name: a person's or a role's name, shown in
/// lists, packets and the console.
const MAX_WHO_BYTES: usize = 256;

/// Who acts (`--by`): someone named, on one line of plain text, bounded.
pub(super) fn who(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("names nobody; say who acts (a person or a role)".into());
    }
    if name.len() > MAX_WHO_BYTES {
        return Err(format!(
            "is {} bytes; a name is at most {MAX_WHO_BYTES}",
            name.len()
        ));
    }
    if let Some(c) = crate::plain::control_character(name, false) {
        return Err(format!(
            "holds {}; a name is one line of plain text",
            crate::plain::named(c)
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_on_the_command_line_is_rfc_3339_and_its_error_shows_the_form() {
        assert_eq!(
            timestamp("2026-12-01T09:00:00+01:00").unwrap().to_string(),
            "2026-12-01T08:00:00Z"
        );
        for bad in ["yesterday", "2026-12-01", "2026-12-01T09:00:00"] {
            let e = timestamp(bad).unwrap_err();
            assert!(e.contains("such as 2026-12-01T09:00:00Z"), "{bad}: {e}");
        }
    }

    #[test]
    fn who_acts_is_named_on_one_bounded_line() {
        assert_eq!(who("  release-owner ").unwrap(), "release-owner");
        assert_eq!(who(&"a".repeat(256)).unwrap().len(), 256);
        for (bad, says) in [
            ("", "names nobody"),
            ("   ", "names nobody"),
            ("a\nb", "U+000A"),
            ("x\u{1b}[2Jy", "U+001B"),
        ] {
            let e = who(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let e = who(&"a".repeat(100_000)).unwrap_err();
        assert!(e.len() < 100 && e.contains("100000 bytes"), "{e}");
    }
}
