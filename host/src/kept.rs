//! What is kept of a value that came from outside (an adapter's answer, an
//! error message) when it goes into a follow-up packet or an audit row: the
//! value itself when it is small, else a prefix with the length and sha256
//! of the whole, so what is stored stays small and still identifies it.

use sha2::{Digest, Sha256};

/// `text` as kept: whole when it has at most `max` bytes, else its first
/// `max` bytes (cut at a character) followed by its length and sha256, so
/// that what is kept stays small and still identifies the whole value.
pub fn render(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!(
        "{}… [{} bytes in all, sha256 {}]",
        prefix(text, max),
        text.len(),
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// The longest start of `text` of at most `max` bytes that ends at a
/// character.
pub fn prefix(text: &str, max: usize) -> &str {
    let mut cut = max.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `text` as an error repeats it: whole when it has at most `max` bytes,
/// else its start and its length (a path or a value from a request may be
/// many kilobytes long).
pub fn shortened(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    format!("{}... ({} bytes)", prefix(text, max), text.len()).into()
}

/// Whether `c`, shown at a terminal, does something other than show: a
/// control character (a line break, an escape that drives the terminal), a
/// Unicode line or paragraph separator, a bidirectional formatting
/// character (which turns the text around it).
pub fn live_at_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || crate::plain::is_bidi_control(c)
}

/// `text` to be shown at a terminal: each character [`live_at_terminal`]
/// written as `\u{..}`; the rest as it is.
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    written_out(text, live_at_terminal)
}

/// `text` with each character `live` says is live written as `\u{..}`.
pub fn written_out(text: &str, live: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    written_out_as(text, live, |c| format!("\\u{{{:x}}}", c as u32))
}

/// `text` with each character `live` says is live written as `escape`
/// writes it; the rest as it is.
pub fn written_out_as(
    text: &str,
    live: impl Fn(char) -> bool,
    escape: impl Fn(char) -> String,
) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(&live) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if live(c) {
            out.push_str(&escape(c));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `text` of several lines to be shown at a terminal: each line [`inert`],
/// the line breaks between them kept.
pub fn inert_lines(text: &str) -> String {
    text.split('\n').map(inert).collect::<Vec<_>>().join("\n")
}

/// Longest string a kept JSON value (an audit payload, a packet) holds whole.
pub const KEPT_STRING_BYTES: usize = 1024;
/// Most entries of a list of strings a kept JSON value holds.
pub const KEPT_LIST_ENTRIES: usize = 100;

/// Bound every string of a JSON value to [`KEPT_STRING_BYTES`] and every
/// list of strings to [`KEPT_LIST_ENTRIES`] (the rest said as one last entry
/// with its count and sha256), in place.
pub fn bound_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > KEPT_STRING_BYTES => *s = render(s, KEPT_STRING_BYTES),
        Value::Array(items) => {
            if items.len() > KEPT_LIST_ENTRIES && items.iter().all(Value::is_string) {
                let rest = items.split_off(KEPT_LIST_ENTRIES);
                let mut hash = Sha256::new();
                for item in &rest {
                    hash.update(item.as_str().unwrap_or_default().as_bytes());
                    hash.update(b"\n");
                }
                items.push(Value::String(format!(
                    "… and {} more [sha256 of them, one a line: {}]",
                    rest.len(),
                    hex::encode(hash.finalize())
                )));
            }
            items.iter_mut().for_each(bound_json);
        }
        Value::Object(map) => map.values_mut().for_each(bound_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_shortened_to_its_start_and_length_at_a_character() {
        assert_eq!(shortened("short", 5), "short");
        assert_eq!(shortened("abcdef", 4), "abcd... (6 bytes)");
        // Cut before a character that would not fit whole.
        assert_eq!(shortened("abcé", 4), "abc... (5 bytes)");
    }

    #[test]
    fn shown_text_drives_no_terminal_and_keeps_the_rest() {
        assert_eq!(inert(r"RV-77\/1 ok"), r"RV-77\/1 ok");
        assert_eq!(inert("a\x1b[2J\nb\u{2028}"), "a\\u{1b}[2J\\u{a}b\\u{2028}");
        assert_eq!(inert_lines("one\x07\ntwo\r\n"), "one\\u{7}\ntwo\\u{d}\n");
        // Text that would show in another order than it is read.
        assert_eq!(inert("pay\u{202E}gnp.exe"), "pay\\u{202e}gnp.exe");
        assert_eq!(inert("שלום"), "שלום");
    }

    #[test]
    fn a_kept_rendering_is_a_prefix_with_the_length_and_digest() {
        assert_eq!(render("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes; byte 5 is inside a character
        let kept = render(&long, 5);
        assert!(kept.starts_with("éé…"), "{kept}");
        assert!(kept.contains("20 bytes in all"), "{kept}");
        assert!(kept.contains(&hex::encode(Sha256::digest(long.as_bytes()))));
    }

    #[test]
    fn kept_json_is_bounded_in_strings_and_lists() {
        let mut v = serde_json::json!({
            "state": "s".repeat(5000),
            "links": (0..1000).map(|i| format!("https://e/{i}")).collect::<Vec<_>>(),
            "steps": [{"step": "a"}],
        });
        bound_json(&mut v);
        assert!(v["state"].as_str().unwrap().len() < 1200);
        let links = v["links"].as_array().unwrap();
        assert_eq!(links.len(), KEPT_LIST_ENTRIES + 1);
        assert!(links[100].as_str().unwrap().starts_with("… and 900 more"));
        assert_eq!(v["steps"][0]["step"], "a");
    }
}
