//! Whether error values capture a stack backtrace when they are made.
//!
//! The standard library captures one for every `std::backtrace::Backtrace::
//! capture()` (which `anyhow` and wasmtime's errors call) when
//! `RUST_LIB_BACKTRACE`, or failing that `RUST_BACKTRACE`, is set and not
//! `0`. wasmtime-wasi makes an error value of every filesystem call that
//! fails, and adapters make such calls on every request as a matter of
//! course, so with `RUST_BACKTRACE=1` every one walked the stack (what it
//! cost: `docs/benchmarks.md`). handoff never shows those backtraces
//! (errors are reported by message and cause), so they are off unless
//! `RUST_LIB_BACKTRACE` asks for them by name. Panics keep theirs: they
//! follow `RUST_BACKTRACE` alone.

use std::ffi::OsStr;

/// The variable that decides library backtraces before `RUST_BACKTRACE`.
pub const VARIABLE: &str = "RUST_LIB_BACKTRACE";

/// The value to give [`VARIABLE`], given its value now: `Some("0")` when the
/// operator did not set it, `None` (leave it) when they did, whatever to.
pub fn default_for(current: Option<&OsStr>) -> Option<&'static str> {
    match current {
        Some(_) => None,
        None => Some("0"),
    }
}

/// Turns library backtraces off unless the operator set [`VARIABLE`].
///
/// # Safety
/// It sets an environment variable: call it before the process starts any
/// thread (first thing in `main`), when nothing can read the environment
/// at the same time.
#[allow(unsafe_code)]
pub unsafe fn leave_off_unless_asked() {
    if let Some(value) = default_for(std::env::var_os(VARIABLE).as_deref()) {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var(VARIABLE, value) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_backtraces_are_off_unless_the_operator_named_them() {
        assert_eq!(default_for(None), Some("0"));
        assert_eq!(default_for(Some(OsStr::new("1"))), None);
        assert_eq!(default_for(Some(OsStr::new("0"))), None);
        assert_eq!(default_for(Some(OsStr::new(""))), None);
    }
}
