//! `print!`, `println!`, `eprint!` and `eprintln!` for the whole crate, in place of std's:
//! the same output, but a stream that went away is not a panic. Rust ignores SIGPIPE, so
//! writing to a closed pipe (`mkplan runs | head -1`) fails with EPIPE, and std's macros
//! panic on any write error (exit 101). Here such output is dropped and the command carries
//! on to its end: a run still writes its report, a rehearsal still stops its simulated
//! processes, and the exit code is the command's own.
//!
//! Exported at `mkplan_engine`'s root: a crate that prints declares
//! `#[macro_use] extern crate mkplan_engine;` first, and these shadow std's in all of it.

use std::fmt::Arguments;
use std::io::Write;

/// Writes to stdout; a failure (a closed pipe, a full disk) drops the output.
#[doc(hidden)]
pub fn out(args: Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes to stderr; a failure drops the output.
#[doc(hidden)]
pub fn err(args: Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::stdio::out(format_args!($($arg)*))
    };
}

#[macro_export]
macro_rules! println {
    () => {
        $crate::stdio::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdio::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::stdio::err(format_args!($($arg)*))
    };
}

#[macro_export]
macro_rules! eprintln {
    () => {
        $crate::stdio::err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdio::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
