//! The commands' output on standard output. A reader that goes away before
//! the end (`handoff runs list | head`, `audit export | less` quit early)
//! ends the process quietly, as it ends other Unix tools: `say!` would
//! panic on the broken pipe instead.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};

/// What `say!` and `say_part!` write; a line when `newline`.
pub fn write(args: Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
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

/// `say!` for a command's output.
macro_rules! say {
    () => { $crate::cli::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), true) };
}

/// `print!` for a command's output.
macro_rules! say_part {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), false) };
}
