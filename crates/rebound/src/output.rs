//! What the commands share about their output, and the one way they write
//! to standard output.
//!
//! `println!` panics when stdout cannot be written (a full disk, a reader
//! that went away: `rebound schema | head -1`). Commands write through
//! [`out!`] or [`with_stdout`] instead, which return a [`StdoutError`];
//! [`crate::exit::report`] turns it into the exit code, in one place: a
//! reader that went away (EPIPE) ends the command quietly with exit 0, any
//! other write error is exit 3 with a message.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe returns EPIPE instead
//! of killing the process; this module relies on that and keeps it so.
//!
//! Diagnostics go to stderr through [`err!`], best effort: `eprintln!`
//! panics too when stderr cannot be written, and there is nowhere left to
//! say that it failed.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

/// How often plain output says that a step is still running.
pub const STILL_WAITING_EVERY: Duration = Duration::from_secs(15);

/// Writing to standard output failed.
#[derive(Debug)]
pub struct StdoutError(io::Error);

impl StdoutError {
    /// Whether the reader of stdout went away (a closed pipe): the command
    /// ends quietly, as `cmd | head` expects.
    pub fn reader_gone(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot write to standard output")
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Runs `write` on the locked stdout and flushes it, so that a write error
/// shows up here rather than in a buffer flushed at exit.
pub fn with_stdout(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes one line to stdout (see [`out!`]).
pub fn line(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    with_stdout(|out| writeln!(out, "{args}"))
}

/// Writes one line to stderr, ignoring a write error (see [`err!`]).
pub fn err_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `println!` that returns a [`StdoutError`] instead of panicking:
/// `out!("{endpoint}")?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// `eprintln!` that never panics: a diagnostic that cannot be written is
/// dropped.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::err_line(format_args!($($arg)*))
    };
}
pub(crate) use err;
