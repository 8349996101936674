//! Writing to the terminal without ever panicking.
//!
//! `println!` and `eprintln!` panic when the other end of the pipe is gone
//! (`autopilot --check | head`), and a panic inside a job's task would end
//! that task silently. Everything autopilot prints directly (not through the
//! logger) goes through here; a write that fails is dropped, as there is no
//! one left to read it.

use std::fmt::Arguments;
use std::io::Write;

/// Writes a line to stdout.
pub(crate) fn out(line: Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Writes a line to stderr.
pub(crate) fn err(line: Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `println!` that never panics.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::out(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! complain {
    ($($arg:tt)*) => { $crate::console::err(format_args!($($arg)*)) };
}
