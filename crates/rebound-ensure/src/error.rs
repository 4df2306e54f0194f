//! Errors of the public API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a start attempt failed (what a [`Start`](crate::Start) returns).
///
/// Its message is what callers are told (`Display` shows only it); the
/// underlying error, when there is one, is kept as its
/// [`source`](std::error::Error::source), so `{:#}`-style reports and
/// logs can show the chain. Cloning shares the source.
///
/// ```
/// use std::error::Error;
/// use rebound_ensure::StartError;
///
/// fn spawn_dockerd() -> Result<(), StartError> {
///     std::process::Command::new("/nonexistent/dockerd")
///         .spawn()
///         .map_err(|e| StartError::with_source("cannot run dockerd", e))?;
///     Ok(())
/// }
/// let e = spawn_dockerd().unwrap_err();
/// assert_eq!(e.to_string(), "cannot run dockerd");
/// let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).unwrap();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, Clone)]
pub struct StartError {
    message: String,
    /// The underlying error. Kept in an `Arc` so that the error stays
    /// `Clone`; `Error::source` hands out the error inside (not the `Arc`),
    /// so callers can downcast it. That is why `Error` is implemented by
    /// hand below: thiserror's `#[source]` would hand out the `Arc` itself.
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source: &(dyn std::error::Error + Send + Sync + 'static) = self.source.as_deref()?;
        Some(source)
    }
}

/// Equal when the messages are, and both have no source or share the same
/// one (sources are compared by identity: errors have no equality).
impl PartialEq for StartError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
            && match (&self.source, &other.source) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for StartError {}

impl StartError {
    /// An error with this message (it is shown to callers: no secrets).
    ///
    /// ```
    /// use rebound_ensure::{ReadyInfo, StartError};
    /// fn check_exit(code: i32) -> Result<ReadyInfo, StartError> {
    ///     match code {
    ///         0 => Ok(ReadyInfo::new("unix:/run/docker.sock", "up")),
    ///         n => Err(StartError::new(format_args!("dockerd exited with status {n}"))),
    ///     }
    /// }
    /// assert_eq!(check_exit(1).unwrap_err().to_string(), "dockerd exited with status 1");
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            source: None,
        }
    }

    /// An error with this message, caused by `source` (kept as the
    /// [`source`](std::error::Error::source); the message alone is shown
    /// to callers).
    ///
    /// ```
    /// use std::error::Error;
    /// let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "/run/docker.sock");
    /// let e = rebound_ensure::StartError::with_source("cannot bind the socket", io);
    /// assert_eq!(e.to_string(), "cannot bind the socket");
    /// assert_eq!(e.source().unwrap().to_string(), "/run/docker.sock");
    /// ```
    pub fn with_source(
        message: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.to_string(),
            source: Some(Arc::new(source)),
        }
    }

    /// The message callers are told.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, WaitError};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Err::<ReadyInfo, _>(StartError::new("no binary")) },
    ///     || async { ProbeOutcome::Down("down".into()) },
    /// );
    /// let Err(WaitError::Failed { message, .. }) = e.wait_ready(Duration::from_millis(10)).await
    /// else { panic!("the start fails") };
    /// assert_eq!(message, StartError::new("no binary").message());
    /// # }
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
