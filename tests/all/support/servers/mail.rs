//! Mail read back from the SMTP receivers' Maildirs.

use super::*;

/// The plain SMTP receiver's Maildir: every mail it accepted, as text.
pub fn mails_containing(needle: &str) -> Vec<String> {
    mails_in("HANDOFF_TEST_MAILDIR", needle)
}

/// The mails holding `needle` that the receiver whose Maildir the
/// environment variable `maildir_var` names accepted, as text.
pub fn mails_in(maildir_var: &str, needle: &str) -> Vec<String> {
    let dir = std::path::PathBuf::from(env_var(maildir_var)).join("new");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if text.contains(needle) {
            out.push(text);
        }
    }
    out
}
