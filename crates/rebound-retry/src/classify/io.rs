//! `std::io` errors: which kinds are passing.

use std::io::{Error, ErrorKind};

use super::Decision;

/// Classifies an I/O error by its kind (see [`io_kind`]).
///
/// ```
/// use rebound_retry::{classify, Decision};
/// use std::io;
/// let e = io::Error::new(io::ErrorKind::TimedOut, "slow peer");
/// assert_eq!(classify::io_error(&e), Decision::Retry);
/// let e = io::Error::from(io::ErrorKind::PermissionDenied);
/// assert_eq!(classify::io_error(&e), Decision::Stop);
/// ```
pub fn io_error(error: &Error) -> Decision {
    io_kind(error.kind())
}

/// `Retry` for the kinds a peer or the kernel may clear by itself
/// (connection refused/reset/aborted, not connected, broken pipe, timed out,
/// interrupted, would block); `Stop` for every other kind.
///
/// ```
/// use rebound_retry::{classify, Decision};
/// use std::io::ErrorKind;
/// assert_eq!(classify::io_kind(ErrorKind::ConnectionReset), Decision::Retry);
/// assert_eq!(classify::io_kind(ErrorKind::NotFound), Decision::Stop);
/// ```
pub fn io_kind(kind: ErrorKind) -> Decision {
    Decision::from_bool(matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_kinds_retry_and_others_stop() {
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::NotConnected,
            ErrorKind::BrokenPipe,
            ErrorKind::TimedOut,
            ErrorKind::Interrupted,
            ErrorKind::WouldBlock,
        ] {
            assert_eq!(io_kind(kind), Decision::Retry, "{kind:?}");
        }
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::InvalidInput,
            ErrorKind::InvalidData,
            ErrorKind::AlreadyExists,
            ErrorKind::Other,
        ] {
            assert_eq!(io_kind(kind), Decision::Stop, "{kind:?}");
        }
    }
}
