//! What an `ensure` call answers, and what the machine is doing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The answer's status, as the agent protocol spells it.
///
/// ```
/// use rebound_ensure::Status;
/// assert_eq!(Status::NotStarted.as_str(), "not_started");
/// assert_eq!(Status::Reused.to_string(), "reused");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Ready, and this caller waited for the start that made it so
    /// (only [`Ensure::wait_ready`](crate::Ensure::wait_ready) reports it).
    Started,
    /// A start is running; ask again later.
    Starting,
    /// Ready: the endpoint is the one already known.
    Reused,
    /// The last start failed; see the message and `retry_after`.
    Failed,
    /// Not running and not being started (a probe-only answer, or a
    /// runtime that was found dead).
    NotStarted,
}

impl Status {
    /// Every status, in protocol order.
    ///
    /// ```
    /// let names: Vec<_> = rebound_ensure::Status::ALL.iter().map(|s| s.as_str()).collect();
    /// assert_eq!(names, ["started", "starting", "reused", "failed", "not_started"]);
    /// ```
    pub const ALL: [Status; 5] = [
        Status::Started,
        Status::Starting,
        Status::Reused,
        Status::Failed,
        Status::NotStarted,
    ];

    /// The protocol name: `started`, `starting`, `reused`, `failed` or
    /// `not_started`.
    ///
    /// ```
    /// assert_eq!(rebound_ensure::Status::Starting.as_str(), "starting");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Starting => "starting",
            Status::Reused => "reused",
            Status::Failed => "failed",
            Status::NotStarted => "not_started",
        }
    }

    /// Parses a protocol name (the inverse of [`as_str`](Self::as_str)).
    ///
    /// ```
    /// use rebound_ensure::Status;
    /// assert_eq!(Status::parse("reused"), Some(Status::Reused));
    /// assert_eq!(Status::parse("ready"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a ready runtime is reached, and what its start said about it.
///
/// ```
/// let info = rebound_ensure::ReadyInfo::new("tcp://127.0.0.1:2375", "dockerd up");
/// assert_eq!(info.endpoint(), "tcp://127.0.0.1:2375");
/// assert_eq!(info.message(), "dockerd up");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyInfo {
    endpoint: String,
    message: String,
}

impl ReadyInfo {
    /// An endpoint with a human-readable message.
    ///
    /// ```
    /// let info = rebound_ensure::ReadyInfo::new("tcp://127.0.0.1:2375", "up");
    /// assert_eq!(info.endpoint(), "tcp://127.0.0.1:2375");
    /// ```
    pub fn new(endpoint: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            message: message.into(),
        }
    }

    /// The endpoint handed back to callers.
    ///
    /// ```
    /// let info = rebound_ensure::ReadyInfo::new("unix:/run/x.sock", "up");
    /// assert_eq!(info.endpoint(), "unix:/run/x.sock");
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The message handed back to callers.
    ///
    /// ```
    /// let info = rebound_ensure::ReadyInfo::new("unix:/run/x.sock", "up");
    /// assert_eq!(info.message(), "up");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The answer to one `ensure` call.
///
/// Cheap to build on the Ready fast path: it shares the cached
/// [`ReadyInfo`] instead of copying its strings.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
/// let e = Ensure::new(
///     EnsureConfig::default(),
///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
///     || async { ProbeOutcome::Down("no answer".into()) },
/// );
/// let r = e.ensure(true).await;
/// assert_eq!(r.status(), Status::Starting);
/// assert!(!r.is_ready());
/// assert_eq!(r.endpoint(), "");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: Status,
    detail: Detail,
    retry_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Detail {
    Ready(Arc<ReadyInfo>),
    Message(Arc<str>),
}

impl Response {
    pub(crate) fn ready(status: Status, info: Arc<ReadyInfo>) -> Self {
        Self {
            status,
            detail: Detail::Ready(info),
            retry_after: None,
        }
    }

    pub(crate) fn not_ready(
        status: Status,
        message: impl Into<Arc<str>>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            status,
            detail: Detail::Message(message.into()),
            retry_after,
        }
    }

    pub(crate) fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// The answer given while a start runs.
    pub(crate) fn starting() -> Self {
        Self::not_ready(Status::Starting, "runtime start in progress", None)
    }

    /// The answer while a start runs that retries a failed one: it still
    /// says why the previous start failed.
    pub(crate) fn starting_after(previous: Option<&str>) -> Self {
        match previous {
            None => Self::starting(),
            Some(why) => Self::not_ready(
                Status::Starting,
                format!("runtime start in progress (the previous start failed: {why})"),
                None,
            ),
        }
    }

    /// The status.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// use rebound_ensure::Status;
    /// assert_eq!(e.ensure(true).await.status(), Status::Starting);
    /// e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(e.ensure(true).await.status(), Status::Reused);
    /// # }
    /// ```
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the runtime is ready (then [`endpoint`](Self::endpoint) is set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// assert!(!e.ensure(false).await.is_ready());
    /// e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert!(e.ensure(false).await.is_ready());
    /// # }
    /// ```
    pub fn is_ready(&self) -> bool {
        matches!(self.detail, Detail::Ready(_))
    }

    /// The endpoint when ready, else the empty string.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let r = e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(r.endpoint(), "unix:/run/x.sock");
    /// # }
    /// ```
    pub fn endpoint(&self) -> &str {
        match &self.detail {
            Detail::Ready(info) => info.endpoint(),
            Detail::Message(_) => "",
        }
    }

    /// A human-readable message: the start's message when ready, else why
    /// it is not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let r = e.ensure(false).await;
    /// assert_eq!(r.message(), "no answer");
    /// # }
    /// ```
    pub fn message(&self) -> &str {
        match &self.detail {
            Detail::Ready(info) => info.message(),
            Detail::Message(m) => m,
        }
    }

    /// With `failed`: how long until the next start may be tried.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
    ///     || async { ProbeOutcome::Down("down".into()) },
    /// );
    /// assert_eq!(e.ensure(true).await.retry_after(), None); // starting
    /// tokio::task::yield_now().await; // the start fails at once
    /// let failed = e.ensure(true).await;
    /// assert_eq!(failed.status(), Status::Failed);
    /// // The default backoff: about 1 s after the first failure (jittered).
    /// let wait = failed.retry_after().unwrap();
    /// assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// The four states of the machine.
///
/// ```
/// assert_eq!(rebound_ensure::StateKind::NotStarted.as_str(), "not_started");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateKind {
    /// Never started, or found dead after its TTL.
    NotStarted,
    /// A start is running.
    Starting,
    /// Ready (possibly being re-probed after its TTL).
    Ready,
    /// The last start failed.
    Failed,
}

impl StateKind {
    /// `not_started`, `starting`, `ready` or `failed`.
    ///
    /// ```
    /// assert_eq!(rebound_ensure::StateKind::Ready.as_str(), "ready");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::NotStarted => "not_started",
            StateKind::Starting => "starting",
            StateKind::Ready => "ready",
            StateKind::Failed => "failed",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point-in-time view of one runtime, for listings.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, StateKind};
/// let e = Ensure::new(
///     EnsureConfig::default(),
///     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
///     || async { ProbeOutcome::Down("no".into()) },
/// );
/// let view = e.state();
/// assert_eq!(view.kind(), StateKind::NotStarted);
/// assert_eq!(view.failures(), 0);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateView {
    pub(crate) kind: StateKind,
    pub(crate) endpoint: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) for_time: Duration,
    pub(crate) failures: u32,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) verifying: bool,
}

impl StateView {
    /// The state.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// use rebound_ensure::StateKind;
    /// assert_eq!(e.state().kind(), StateKind::NotStarted);
    /// e.ensure(true).await;
    /// assert_eq!(e.state().kind(), StateKind::Starting);
    /// # }
    /// ```
    pub fn kind(&self) -> StateKind {
        self.kind
    }

    /// The endpoint, when ready.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(e.state().endpoint(), Some("unix:/run/x.sock"));
    /// # }
    /// ```
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The last message (the start's, the failure's or why it was found dead).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(e.state().message(), Some("up"));
    /// # }
    /// ```
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// How long the machine has been in this state.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// use std::time::Duration;
    /// e.wait_ready(Duration::from_secs(1)).await.unwrap();
    /// tokio::time::sleep(Duration::from_secs(3)).await;
    /// assert_eq!(e.state().for_time(), Duration::from_secs(3)); // ready for 3 s
    /// # }
    /// ```
    pub fn for_time(&self) -> Duration {
        self.for_time
    }

    /// Failed starts since the last success.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
    ///     || async { ProbeOutcome::Down("down".into()) },
    /// );
    /// e.ensure(true).await;
    /// tokio::task::yield_now().await; // the start fails at once
    /// assert_eq!(e.state().failures(), 1);
    /// # }
    /// ```
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When failed: time left before the next start may begin.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
    ///     || async { ProbeOutcome::Down("down".into()) },
    /// );
    /// e.ensure(true).await;
    /// tokio::task::yield_now().await; // the start fails at once
    /// let left = e.state().retry_after().expect("failed");
    /// assert!(left <= Duration::from_secs(1)); // the default backoff's first wait
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// When ready: whether its TTL ran out and the probe is checking it now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// let e = Ensure::new(
    ///     EnsureConfig::builder().ready_ttl(Duration::from_secs(10)).build().unwrap(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    ///     // A probe that takes 2 s to answer.
    ///     || async {
    ///         tokio::time::sleep(Duration::from_secs(2)).await;
    ///         ProbeOutcome::Up(ReadyInfo::new("unix:/run/x.sock", "up"))
    ///     },
    /// );
    /// e.wait_ready(Duration::from_secs(1)).await.unwrap();
    /// assert!(!e.state().verifying());
    /// tokio::time::sleep(Duration::from_secs(11)).await; // past the TTL, probe running
    /// assert!(e.state().verifying());
    /// tokio::time::sleep(Duration::from_secs(2)).await; // the probe answered
    /// assert!(!e.state().verifying());
    /// # }
    /// ```
    pub fn verifying(&self) -> bool {
        self.verifying
    }
}
