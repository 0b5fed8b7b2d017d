//! The `handoff` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        handoff::backtraces::leave_off_unless_asked()
    };
    handoff::cli::main()
}
