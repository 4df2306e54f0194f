//! Errors of the public API.

use std::fmt;
use std::time::Duration;

/// Why a start attempt failed (what a [`Start`](crate::Start) returns).
///
/// ```
/// let e = rebound_ensure::StartError::new("dockerd exited with status 1");
/// assert_eq!(e.to_string(), "dockerd exited with status 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    message: String,
}

impl StartError {
    /// An error with this message (it is shown to callers: no secrets).
    ///
    /// ```
    /// let e = rebound_ensure::StartError::new(format_args!("exit status {}", 1));
    /// assert_eq!(e.message(), "exit status 1");
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(rebound_ensure::StartError::new("no binary").message(), "no binary");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why [`Ensure::wait_ready`](crate::Ensure::wait_ready) gave up.
///
/// ```
/// use std::time::Duration;
/// let e = rebound_ensure::WaitError::TimedOut { after: Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "runtime not ready after 2s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout ran out first.
    #[error("runtime not ready after {}", crate::fmt_duration(*after))]
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The start failed and the next one may not begin within the timeout.
    #[error("runtime start failed: {message}")]
    Failed {
        /// Why it failed.
        message: String,
        /// Time left before the next start may begin.
        retry_after: Option<Duration>,
    },
}

/// A setting of [`EnsureConfig`](crate::EnsureConfig) that cannot work.
///
/// ```
/// use std::time::Duration;
/// let err = rebound_ensure::EnsureConfig::builder()
///     .start_timeout(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "start_timeout must be above zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("{setting} must be above zero")]
    Zero {
        /// The setting's name.
        setting: &'static str,
    },
}
