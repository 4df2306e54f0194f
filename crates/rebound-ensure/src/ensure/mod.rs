//! [`Ensure`]: the public type, driving the state machine (`machine.rs`)
//! from tokio tasks.
//!
//! - `start_task.rs`: the task that runs one start and publishes its outcome;
//! - `ttl.rs`: the task that re-probes a Ready each time its TTL runs out;
//! - `probe.rs`: running the caller's probe, and the probe-only answer;
//! - `stats.rs`: the counters behind [`Ensure::stats`].

mod probe;
mod start_task;
mod stats;
mod ttl;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::machine::{Begin, Machine};
use crate::start::{Probe, Start};
use crate::status::{ReadyInfo, Response, StateView, Status};
use crate::{EnsureConfig, WaitError};

use self::stats::Counters;
pub use self::stats::Stats;

/// One runtime that is started at most once at a time and whose readiness
/// is kept true.
///
/// `ensure(true)` never waits for a start: the first caller moves the
/// machine to Starting, spawns the start on the current tokio runtime and
/// answers `starting`; later callers get `starting` until it settles, then
/// `reused` with the endpoint. A start that fails, panics or outlives
/// `start_timeout` ends in `failed`, and the next start waits out the
/// backoff. A Ready older than `ready_ttl` is probed again before it is
/// reported. Cloning shares the same runtime.
///
/// The start, its probes and its log lines run in the `tracing` span that
/// is current when the start begins: enter a span naming the runtime around
/// `ensure` (as `rebound agent` does) so that several runtimes' logs can be
/// told apart.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
///
/// let runtime = Ensure::new(
///     EnsureConfig::default(),
///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/docker.sock", "dockerd up")) },
///     || async { ProbeOutcome::Down("not running".into()) },
/// );
/// assert_eq!(runtime.ensure(true).await.status(), Status::Starting);
/// let ready = runtime.wait_ready(Duration::from_secs(5)).await.unwrap();
/// assert_eq!(ready.endpoint(), "unix:/run/docker.sock");
/// assert_eq!(runtime.ensure(true).await.status(), Status::Reused);
/// # }
/// ```
#[derive(Clone)]
pub struct Ensure {
    /// The machine again, one pointer away for the fast path.
    machine: crate::loom::sync::Arc<Machine>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ensure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensure")
            .field("state", &self.state().kind())
            .finish_non_exhaustive()
    }
}

/// What the start and TTL tasks share with every clone of the [`Ensure`].
struct Shared {
    machine: crate::loom::sync::Arc<Machine>,
    start: Box<dyn Start>,
    probe: Box<dyn Probe>,
    config: EnsureConfig,
    /// Woken after every transition a waiter may care about.
    changed: Notify,
    counters: Counters,
    /// State changes, for [`Ensure::subscribe`].
    feed: crate::watch::Feed,
}

impl Ensure {
    /// A runtime in NotStarted, started by `start` and checked by `probe`.
    ///
    /// ```
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, StateKind};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:5432", "up")) },
    ///     || async { ProbeOutcome::Down("no answer".into()) },
    /// );
    /// assert_eq!(e.state().kind(), StateKind::NotStarted);
    /// ```
    pub fn new(config: EnsureConfig, start: impl Start, probe: impl Probe) -> Self {
        let backoff = config.backoff().clone();
        let machine =
            crate::loom::sync::Arc::new(Machine::new(Box::new(move |n| backoff.sample(n))));
        Self {
            machine: crate::loom::sync::Arc::clone(&machine),
            shared: Arc::new(Shared {
                machine,
                start: Box::new(start),
                probe: Box::new(probe),
                config,
                changed: Notify::new(),
                counters: Counters::default(),
                feed: crate::watch::Feed::new(),
            }),
        }
    }

    /// The settings it was made with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// let e = Ensure::new(
    ///     EnsureConfig::builder().start_timeout(Duration::from_secs(30)).build().unwrap(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    ///     || async { ProbeOutcome::Down("no answer".into()) },
    /// );
    /// // A caller that waits no longer than one start may take.
    /// let ready = e.wait_ready(e.config().start_timeout()).await.unwrap();
    /// assert_eq!(ready.endpoint(), "unix:/run/x.sock");
    /// # }
    /// ```
    pub fn config(&self) -> &EnsureConfig {
        &self.shared.config
    }

    /// The Ready fast path, owned: the `reused` answer when the runtime is
    /// Ready and within its TTL, without a wait; `None` otherwise.
    ///
    /// It takes no lock and costs one reference count (the answer shares
    /// the kept [`ReadyInfo`]); for a runtime past the 64 answers
    /// [`ready`](Self::ready) keeps, it reads the state under the machine's
    /// small lock instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    ///     || async { ProbeOutcome::Down("no answer".into()) },
    /// );
    /// assert!(e.try_ready().is_none(), "not started yet");
    /// e.wait_ready(Duration::from_secs(1)).await.unwrap();
    /// let answer = e.try_ready().expect("ready and trusted");
    /// assert_eq!((answer.status(), answer.endpoint()), (Status::Reused, "unix:/run/x.sock"));
    /// # }
    /// ```
    #[inline]
    pub fn try_ready(&self) -> Option<Response> {
        self.machine
            .ready_owned()
            .map(|info| Response::ready(Status::Reused, info))
    }

    /// The Ready fast path by reference, like `OnceCell::get`: the trusted
    /// Ready's endpoint and message, read with one atomic load and a
    /// `OnceLock` read (no lock, no reference count, no allocation), or
    /// `None` when not Ready or within a re-probe.
    ///
    /// Answers are kept for the life of the [`Ensure`] so that references
    /// stay valid; equal answers share one copy, and at most 64 distinct
    /// ones are kept. A runtime whose start reports a new endpoint or
    /// message each time gets `None` here after 64 of them; use
    /// [`try_ready`](Self::try_ready) (which then reads the state under the
    /// machine's small lock) or [`ensure`](Self::ensure), which answer in
    /// every case.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::time::Duration;
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no".into()) });
    /// assert!(e.ready().is_none());
    /// e.wait_ready(Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(e.ready().map(|r| r.endpoint()), Some("unix:/run/x.sock"));
    /// # }
    /// ```
    #[inline]
    pub fn ready(&self) -> Option<&ReadyInfo> {
        self.machine.ready()
    }

    /// Answers one `ensure` call.
    ///
    /// With `start_if_needed`, a runtime that is not running (or whose
    /// backoff has passed) is started in the background and the answer is
    /// `starting`. Without it, nothing changes: a trusted Ready answers
    /// `reused`, otherwise the probe runs and its finding is reported
    /// (`reused` only when it answers; else `starting`, `failed` or
    /// `not_started` as the machine stands).
    ///
    /// Call it within a tokio runtime: the start and the probe run as tasks.
    /// Outside one, a start cannot begin: the runtime is left `failed`
    /// ("no tokio runtime to run the start in", with the backoff) and the
    /// answer says so.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
    ///     || async { ProbeOutcome::Down("connection refused".into()) },
    /// );
    /// let probed = e.ensure(false).await;
    /// assert_eq!(probed.status(), Status::NotStarted);
    /// assert_eq!(probed.message(), "connection refused");
    /// # }
    /// ```
    pub async fn ensure(&self, start_if_needed: bool) -> Response {
        if let Some(ready) = self.try_ready() {
            return ready;
        }
        if start_if_needed {
            self.ensure_slow().await
        } else {
            self.probe_only().await
        }
    }

    async fn ensure_slow(&self) -> Response {
        loop {
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            match Machine::begin_start(&self.shared.machine, Instant::now()) {
                Begin::Ready(info) => return Response::ready(Status::Reused, info),
                Begin::Verifying => self.wait_verified(changed).await,
                Begin::Starting { previous } => {
                    return Response::starting_after(previous.as_deref());
                }
                Begin::Backoff {
                    message,
                    retry_after,
                } => return Response::not_ready(Status::Failed, message, Some(retry_after)),
                Begin::Drive(ticket) => {
                    // The answer says what the spawn left: Starting, or
                    // Failed when there is no runtime to run the start in.
                    let previous = ticket.previous().map(str::to_owned);
                    return match start_task::spawn(&self.shared, ticket) {
                        Ok(()) => Response::starting_after(previous.as_deref()),
                        Err(retry_after) => {
                            Response::not_ready(Status::Failed, start_task::NO_RUNTIME, retry_after)
                        }
                    };
                }
            }
        }
    }

    /// Waits for a running re-probe to settle (bounded by the probe timeout,
    /// in case the probe task went away without waking anyone).
    async fn wait_verified(&self, changed: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) {
        let bound = self.shared.config.probe_timeout() + Duration::from_millis(100);
        let _ = tokio::time::timeout(bound, changed).await;
    }

    /// Ensures the runtime is started and waits until it is ready, for
    /// in-process users.
    ///
    /// Answers `started` when this call saw it not ready first, `reused` when
    /// it already was. Fails with [`WaitError::Failed`] when a start failed
    /// and the backoff ends after the timeout, and with
    /// [`WaitError::TimedOut`] when the timeout runs out first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status, WaitError};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Err::<ReadyInfo, _>(StartError::new("no such binary")) },
    ///     || async { ProbeOutcome::Down("down".into()) },
    /// );
    /// let err = e.wait_ready(Duration::from_millis(100)).await.unwrap_err();
    /// assert!(matches!(err, WaitError::Failed { ref message, .. } if message == "no such binary"));
    /// # }
    /// ```
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Response, WaitError> {
        if let Some(ready) = self.try_ready() {
            return Ok(ready);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            let answer = self.ensure_slow().await;
            match answer.status() {
                Status::Reused | Status::Started => {
                    return Ok(answer.with_status(Status::Started));
                }
                Status::Failed => {
                    let retry_after = answer.retry_after().unwrap_or_default();
                    if Instant::now() + retry_after > deadline {
                        return Err(WaitError::Failed {
                            message: answer.message().to_owned(),
                            retry_after: answer.retry_after(),
                        });
                    }
                    tokio::time::sleep(retry_after).await;
                }
                _ => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(WaitError::TimedOut { after: timeout });
                    }
                }
            }
        }
    }

    /// What the runtime is doing now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, StateKind};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
    /// #     || async { ProbeOutcome::Down("no".into()) });
    /// e.ensure(true).await;
    /// assert_eq!(e.state().kind(), StateKind::Starting);
    /// # }
    /// ```
    pub fn state(&self) -> StateView {
        crate::watch::view(&self.shared.machine.load(), Instant::now())
    }

    /// A feed of this runtime's state changes: a start begins (`Starting`),
    /// ends (`Ready` with the endpoint, or `Failed` with `retry_after`), or
    /// a ready runtime is found dead by its TTL probe (`NotStarted`). Each
    /// change is sent as the [`StateView`] right after it; sending never
    /// waits, and a receiver more than
    /// [`FEED_CAPACITY`](crate::FEED_CAPACITY) changes behind gets
    /// `RecvError::Lagged` (then read [`state`](Self::state) afresh).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, StateKind};
    /// let e = Ensure::new(
    ///     EnsureConfig::default(),
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    ///     || async { ProbeOutcome::Down("no answer".into()) },
    /// );
    /// let mut changes = e.subscribe();
    /// e.ensure(true).await;
    /// assert_eq!(changes.recv().await.unwrap().kind(), StateKind::Starting);
    /// let ready = changes.recv().await.unwrap();
    /// assert_eq!(ready.endpoint(), Some("unix:/run/x.sock"));
    /// # }
    /// ```
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StateView> {
        self.shared.feed.subscribe()
    }

    /// Counters since this runtime was created.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// e.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// let s = e.stats();
    /// assert_eq!((s.starts, s.ready, s.failures), (1, 1, 0));
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.counters.read()
    }
}

/// The text of a caught panic's payload.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}
