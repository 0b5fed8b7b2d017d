//! The commands' output on standard output. A reader that goes away before
//! the end (`handoff runs list | head`, `audit export | less` quit early)
//! ends the process quietly, as it ends other Unix tools: `println!` would
//! panic on the broken pipe instead.
//!
//! Whatever a command prints, a character that would drive the reader's
//! terminal or turn the text around it (a control character other than a
//! line break or a tab, a line or paragraph separator, a bidirectional
//! formatting character) is written
//! out as `\uXXXX`, whichever value it came in with. In JSON output that
//! is the string escape for the same character, so the JSON means what it
//! meant; in text it is inert.

use std::borrow::Cow;
use std::fmt::Arguments;
use std::io::{ErrorKind, Write};

/// What `say!` and `say_part!` write; a line when `newline`.
pub fn write(args: Arguments<'_>, newline: bool) {
    let text = args.to_string();
    let mut out = std::io::stdout().lock();
    let written = out.write_all(written_out(&text).as_bytes()).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        // Nobody reads the rest; whatever the command did is done (each
        // command prints after its work is stored).
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => panic!("failed printing to stdout: {e}"),
    }
}

/// `text` with each character that is live at a terminal written out as
/// `\uXXXX` (JSON's escape for it).
fn written_out(text: &str) -> Cow<'_, str> {
    crate::kept::written_out_as(
        text,
        |c| crate::kept::live_at_terminal(c) && c != '\n' && c != '\t',
        // Every such character is in the Basic Multilingual Plane.
        |c| format!("\\u{:04x}", c as u32),
    )
}

/// `println!` for a command's output.
macro_rules! say {
    () => { $crate::cli::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), true) };
}

/// `print!` for a command's output.
macro_rules! say_part {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), false) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_characters_are_written_out_and_json_keeps_its_meaning() {
        assert_eq!(written_out("a table\twith\nlines"), "a table\twith\nlines");
        assert_eq!(
            written_out("evt\u{202e}-1 \u{1b}[2J\r"),
            "evt\\u202e-1 \\u001b[2J\\u000d"
        );
        assert_eq!(written_out("a\u{2028}b"), "a\\u2028b");
        let value = serde_json::json!({ "id": "evt\u{202e}-1\u{2066}", "n": "a\u{85}b" });
        let json = serde_json::to_string(&value).unwrap();
        let shown = written_out(&json);
        assert!(
            !shown.contains(['\u{202e}', '\u{2066}', '\u{85}']),
            "{shown}"
        );
        let read: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(read, value, "the same JSON");
    }
}
