//! Deciding whether an error is worth another attempt.
//!
//! A [`Decision`] says retry, retry after a given delay, or stop; a
//! [`Classify`] maps an error to one. Any `Fn(&E) -> Decision` is a
//! classifier, so the built-in functions below can be passed directly:
//!
//! ```
//! use rebound_retry::classify::{self, Classify, Decision};
//! use std::io;
//!
//! let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
//! assert_eq!(classify::io_error.classify(&refused), Decision::Retry);
//! ```

mod exit;
mod http;
mod io;
mod message;

use std::time::Duration;

pub use exit::{ExitCodes, ParseExitCodesError, exit_code};
pub use http::{DEFAULT_RETRY_AFTER_CAP, http_status, http_status_capped, parse_retry_after};
pub use io::{io_error, io_kind};
pub use message::message;

/// What to do after a failed attempt.
///
/// ```
/// use rebound_retry::Decision;
/// use std::time::Duration;
/// let d = Decision::RetryAfter(Duration::from_secs(2));
/// assert!(d.is_retry());
/// assert!(!Decision::Stop.is_retry());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Transient: retry after the backoff's next delay.
    Retry,
    /// Transient, and the server said when: retry after this delay instead
    /// of the backoff's (the backoff still advances, and counts the attempt).
    RetryAfter(Duration),
    /// Permanent: stop now.
    Stop,
}

impl Decision {
    /// True for [`Decision::Retry`] and [`Decision::RetryAfter`].
    ///
    /// ```
    /// # use rebound_retry::Decision;
    /// assert!(Decision::Retry.is_retry());
    /// ```
    pub fn is_retry(self) -> bool {
        !matches!(self, Decision::Stop)
    }

    /// `Retry` when `transient`, else `Stop`.
    ///
    /// ```
    /// # use rebound_retry::Decision;
    /// assert_eq!(Decision::from_bool(false), Decision::Stop);
    /// ```
    pub fn from_bool(transient: bool) -> Self {
        if transient {
            Decision::Retry
        } else {
            Decision::Stop
        }
    }
}

/// Maps an error to a [`Decision`].
///
/// Implemented for every `Fn(&E) -> Decision`:
///
/// ```
/// use rebound_retry::{Classify, Decision};
/// let c = |e: &u16| if *e >= 500 { Decision::Retry } else { Decision::Stop };
/// assert_eq!(c.classify(&503), Decision::Retry);
/// assert_eq!(c.classify(&404), Decision::Stop);
/// ```
pub trait Classify<E: ?Sized> {
    /// The decision for `error`.
    fn classify(&self, error: &E) -> Decision;
}

impl<E: ?Sized, F: Fn(&E) -> Decision> Classify<E> for F {
    fn classify(&self, error: &E) -> Decision {
        self(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_and_fn_items_classify() {
        fn stop_all(_: &str) -> Decision {
            Decision::Stop
        }
        assert_eq!(stop_all.classify("x"), Decision::Stop);
        let c = |_: &str| Decision::RetryAfter(Duration::from_secs(1));
        assert!(c.classify("x").is_retry());
        assert_eq!(Decision::from_bool(true), Decision::Retry);
    }
}
