//! Text people write and others read at a terminal (a manifest a reviewer
//! inspects, a policy, a resolution's note): what counts as plain text.
//! Neither a control character (which can move the cursor or erase a line)
//! nor a bidirectional formatting character (which shows the text around it
//! in another order than it is read: a reviewer would approve what they did
//! not see) is.

/// Whether `c` reorders the text around it as displayed: the embeddings,
/// overrides and isolates, and the invisible direction marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The first control or bidirectional formatting character in `text`.
/// With `lines`, line breaks (a file's or a form's: `\n`, `\r\n`) and tabs
/// are text too.
pub fn control_character(text: &str, lines: bool) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t'))) || is_bidi_control(c)
    })
}

/// `c` as a refusal names it: "the control character U+0007", or "the
/// bidirectional formatting character U+202E".
pub fn named(c: char) -> String {
    if is_bidi_control(c) {
        format!("the bidirectional formatting character U+{:04X}", c as u32)
    } else {
        format!("the control character U+{:04X}", c as u32)
    }
}

/// A file's `text` (`what`: "a policy") as a reviewer reads it: refused,
/// naming the line, when a bidirectional formatting character anywhere in
/// it (a comment included) would show it in another order.
pub fn in_reading_order(text: &str, what: &str) -> Result<(), String> {
    match bidi_control_in(text) {
        None => Ok(()),
        Some((line, c)) => Err(format!(
            "line {line} holds U+{:04X}, which shows the text around it in another order than \
             it is read; {what} is plain text",
            c as u32
        )),
    }
}

/// The first bidirectional formatting character anywhere in a file's
/// `text`, with its line (from 1).
fn bidi_control_in(text: &str) -> Option<(usize, char)> {
    text.lines().enumerate().find_map(|(i, line)| {
        line.chars()
            .find(|&c| is_bidi_control(c))
            .map(|c| (i + 1, c))
    })
}

/// The first key or string in `value` holding a control character, with
/// the dotted path to it. With `lines`, line breaks and tabs are allowed in
/// strings (a message's body), never in keys.
pub fn control_in_toml(value: &toml::Value, at: &str, lines: bool) -> Option<(String, char)> {
    match value {
        toml::Value::String(s) => control_character(s, lines).map(|c| (at.to_string(), c)),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_in_toml(v, &format!("{at}[{i}]"), lines)),
        toml::Value::Table(table) => table.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match control_character(k, false) {
                Some(c) => Some((format!("{path:?}"), c)),
                None => control_in_toml(v, &path, lines),
            }
        }),
        _ => None,
    }
}

/// The most characters of one line of a parser's error that is shown.
const ERROR_LINE_CHARS: usize = 160;

/// The most lines of a parser's error that are shown.
const ERROR_LINES: usize = 12;

/// A parser's error as a reader gets it (at a terminal, in a log): each
/// line at most [`ERROR_LINE_CHARS`] characters and the whole at most
/// [`ERROR_LINES`] lines. A TOML error quotes the line the parser stopped
/// on, and a file's one line can be a megabyte long.
pub fn bounded_error(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .take(ERROR_LINES)
        .map(|line| match line.char_indices().nth(ERROR_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        })
        .collect();
    if text.lines().nth(ERROR_LINES).is_some() {
        lines.push("…".into());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidirectional_formatting_are_not_plain_text() {
        assert_eq!(control_character("closed", false), None);
        assert_eq!(control_character("a\nb\tc", true), None);
        assert_eq!(control_character("a\nb", false), Some('\n'));
        assert_eq!(control_character("x\u{1b}[2J", true), Some('\u{1b}'));
        for c in ['\u{202E}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{061C}'] {
            assert_eq!(control_character(&format!("ok{c}ko"), true), Some(c));
        }
        // Right-to-left text itself is text.
        assert_eq!(control_character("שלום مرحبا", false), None);
        assert_eq!(
            bidi_control_in("a = 1\n# note \u{202E} }\nb = 2"),
            Some((2, '\u{202E}'))
        );
        assert_eq!(bidi_control_in("a = \"שלום\"\n"), None);
    }

    #[test]
    fn a_parsers_error_is_shown_in_bounded_lines() {
        let deep = format!("y = {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let err = toml::from_str::<toml::Table>(&deep)
            .unwrap_err()
            .to_string();
        assert!(err.len() > 200_000, "the parser quotes the line");
        let shown = bounded_error(&err);
        assert!(shown.len() < 2 * 1024, "{} bytes", shown.len());
        assert!(shown.starts_with("TOML parse error at line 1"), "{shown}");
        assert!(shown.lines().all(|l| l.chars().count() <= 161), "{shown}");
        // A short error is as the parser gave it.
        let short = toml::from_str::<toml::Table>("a = ")
            .unwrap_err()
            .to_string();
        assert_eq!(bounded_error(&short), short.trim_end());
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(bounded_error(&many).lines().count(), 13);
        // As the configuration, a policy and a manifest are refused.
        let path = std::path::Path::new("x.toml");
        for refused in [
            crate::config::Config::parse(&deep, path)
                .unwrap_err()
                .to_string(),
            crate::policy::Policy::parse(&deep, path)
                .unwrap_err()
                .to_string(),
            crate::sandbox::manifest::Manifest::parse(&deep, path)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(refused.len() < 4 * 1024, "{} bytes", refused.len());
            assert!(refused.contains("line 1"), "{refused}");
        }
    }
}
