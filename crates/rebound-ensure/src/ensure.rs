//! [`Ensure`]: the state machine driven by tokio tasks.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use crate::machine::{Begin, Machine, Phase, StartTicket};
use crate::start::{Probe, Start};
use crate::status::{ReadyInfo, Response, StateView, Status};
use crate::{EnsureConfig, ProbeOutcome, WaitError, fmt_duration};

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
    machine: crate::sync::Arc<Machine>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ensure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensure")
            .field("state", &self.state().kind())
            .finish_non_exhaustive()
    }
}

struct Shared {
    machine: crate::sync::Arc<Machine>,
    start: Box<dyn Start>,
    probe: Box<dyn Probe>,
    config: EnsureConfig,
    /// Woken after every transition a waiter may care about.
    changed: Notify,
    counters: Counters,
    feed: crate::watch::Feed,
}

#[derive(Default)]
struct Counters {
    starts: AtomicU64,
    ready: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    panics: AtomicU64,
    lost: AtomicU64,
    finished: AtomicU64,
    duration_micros: AtomicU64,
}

/// Counters of one runtime since the agent began (for metrics).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
/// # let e = Ensure::new(EnsureConfig::default(),
/// #     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
/// #     || async { ProbeOutcome::Down("no".into()) });
/// assert_eq!(e.stats().starts, 0);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Starts begun.
    pub starts: u64,
    /// Starts that ended ready.
    pub ready: u64,
    /// Starts that ended failed (errors, panics and timeouts).
    pub failures: u64,
    /// Of the failures: starts cancelled at `start_timeout`.
    pub timeouts: u64,
    /// Of the failures: starts that panicked.
    pub panics: u64,
    /// Ready runtimes found dead by the TTL probe.
    pub lost: u64,
    /// Starts that finished either way (the count of the duration sum).
    pub finished: u64,
    /// Total time of finished starts.
    pub start_time_total: Duration,
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
        let machine = crate::sync::Arc::new(Machine::new(Box::new(move |n| backoff.sample(n))));
        Self {
            machine: crate::sync::Arc::clone(&machine),
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

    /// The settings.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// assert_eq!(e.config().start_timeout(), std::time::Duration::from_secs(90));
    /// # }
    /// ```
    pub fn config(&self) -> &EnsureConfig {
        &self.shared.config
    }

    /// The Ready fast path: the `reused` answer when the runtime is Ready and
    /// within its TTL, without a lock or a wait; `None` otherwise.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
    /// #     || async { ProbeOutcome::Down("no".into()) });
    /// assert!(e.try_ready().is_none());
    /// # }
    /// ```
    #[inline]
    pub fn try_ready(&self) -> Option<Response> {
        self.machine
            .ready_owned()
            .map(|info| Response::ready(Status::Reused, info))
    }

    /// The Ready fast path by reference, like `OnceCell::get`: the trusted
    /// Ready's endpoint and message, read with two atomic loads (no lock, no
    /// reference count), or `None` when not Ready or within a re-probe.
    ///
    /// Answers are kept for the life of the [`Ensure`] so that references
    /// stay valid; equal answers share one copy, and at most 64 distinct
    /// ones are kept. A runtime whose start reports a new endpoint or
    /// message each time gets `None` here after 64 of them; use
    /// [`try_ready`](Self::try_ready) (also lock-free, one reference count)
    /// or [`ensure`](Self::ensure), which answer in every case.
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
    #[cfg(not(loom))]
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
    /// Must be called within a tokio runtime (the start runs as a task).
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
                    self.spawn_start(ticket);
                    let snap = self.shared.machine.load();
                    let previous = match &snap.phase {
                        Phase::Starting { previous } => previous.as_deref(),
                        _ => None,
                    };
                    return Response::starting_after(previous);
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

    async fn probe_only(&self) -> Response {
        loop {
            if let Some(ready) = self.try_ready() {
                return ready;
            }
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            let verifying = matches!(
                self.shared.machine.load().phase,
                Phase::Ready {
                    verifying: true,
                    ..
                }
            );
            if !verifying {
                break;
            }
            self.wait_verified(changed).await;
        }
        match run_probe(&self.shared).await {
            ProbeOutcome::Up(info) => Response::ready(Status::Reused, Arc::new(info)),
            ProbeOutcome::Down(found) => {
                let snap = self.shared.machine.load();
                match &snap.phase {
                    Phase::Starting { .. } => Response::not_ready(Status::Starting, found, None),
                    Phase::Failed { message, retry_at } => Response::not_ready(
                        Status::Failed,
                        Arc::clone(message),
                        Some(retry_at.saturating_duration_since(Instant::now())),
                    ),
                    Phase::NotStarted { .. } | Phase::Ready { .. } => {
                        Response::not_ready(Status::NotStarted, found, None)
                    }
                }
            }
        }
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
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            starts: get(&c.starts),
            ready: get(&c.ready),
            failures: get(&c.failures),
            timeouts: get(&c.timeouts),
            panics: get(&c.panics),
            lost: get(&c.lost),
            finished: get(&c.finished),
            start_time_total: Duration::from_micros(get(&c.duration_micros)),
        }
    }

    fn spawn_start(&self, ticket: StartTicket) {
        self.shared.counters.starts.fetch_add(1, Ordering::Relaxed);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                self.shared.feed.publish(&self.shared.machine);
                // The caller's span (an agent's `runtime{name}`) follows the
                // start, its log lines and the TTL probes after it.
                handle.spawn(supervise(Arc::clone(&self.shared), ticket).in_current_span());
            }
            Err(_) => {
                ticket.fail("no tokio runtime to run the start in", Instant::now());
                self.shared
                    .counters
                    .failures
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.changed.notify_waiters();
                self.shared.feed.publish(&self.shared.machine);
            }
        }
    }
}

/// Runs one start in its own task (so a panic is caught as a `JoinError`),
/// bounded by the start timeout, publishes the outcome, and then keeps the
/// Ready honest by re-probing it every TTL.
async fn supervise(shared: Arc<Shared>, ticket: StartTicket) {
    let begun = Instant::now();
    let generation = ticket.generation();
    let task = tokio::spawn(
        {
            let shared = Arc::clone(&shared);
            async move { shared.start.start().await }
        }
        .in_current_span(),
    );
    let abort = task.abort_handle();
    let limit = shared.config.start_timeout();
    let outcome = tokio::time::timeout(limit, task).await;
    let now = Instant::now();
    let c = &shared.counters;
    let result: Result<ReadyInfo, String> = match outcome {
        Ok(Ok(Ok(info))) => Ok(info),
        Ok(Ok(Err(err))) => Err(err.message().to_owned()),
        Ok(Err(join)) if join.is_panic() => {
            c.panics.fetch_add(1, Ordering::Relaxed);
            Err(format!(
                "runtime start panicked: {}",
                panic_message(join.into_panic())
            ))
        }
        Ok(Err(_)) => Err("runtime start was cancelled".to_owned()),
        Err(_) => {
            abort.abort();
            c.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(format!("start timed out after {}", fmt_duration(limit)))
        }
    };
    let ready = result.is_ok();
    match result {
        Ok(info) => {
            tracing::info!(endpoint = info.endpoint(), "runtime ready");
            ticket.succeed(info, now);
            c.ready.fetch_add(1, Ordering::Relaxed);
        }
        Err(message) => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            let wait = ticket.fail(&message, now);
            tracing::warn!(
                %message,
                retry_after_ms = wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
                "runtime start failed"
            );
        }
    }
    c.finished.fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(now.duration_since(begun).as_micros()).unwrap_or(u64::MAX);
    c.duration_micros.fetch_add(micros, Ordering::Relaxed);
    shared.changed.notify_waiters();
    shared.feed.publish(&shared.machine);
    if ready {
        let weak = Arc::downgrade(&shared);
        drop(shared);
        watch_ttl(weak, generation).await;
    }
}

/// Re-probes a Ready of `generation` each time its TTL runs out, until the
/// machine moves on, the runtime is found dead, or the [`Ensure`] is gone.
async fn watch_ttl(weak: Weak<Shared>, generation: u64) {
    loop {
        let Some(ttl) = weak.upgrade().and_then(|s| s.config.ready_ttl()) else {
            return;
        };
        tokio::time::sleep(ttl).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let Some(ticket) = Machine::begin_verify(&shared.machine, generation) else {
            return;
        };
        let outcome = run_probe(&shared).await;
        let now = Instant::now();
        let alive = match outcome {
            ProbeOutcome::Up(_) => {
                ticket.confirm(now);
                true
            }
            ProbeOutcome::Down(found) => {
                tracing::warn!(%found, "ready runtime no longer answers its probe");
                ticket.lost(&format!("runtime stopped answering: {found}"), now);
                shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                shared.feed.publish(&shared.machine);
                false
            }
        };
        shared.changed.notify_waiters();
        if !alive {
            return;
        }
    }
}

/// One probe in its own task, bounded by the probe timeout; a panic or a
/// timeout counts as down.
async fn run_probe(shared: &Arc<Shared>) -> ProbeOutcome {
    let limit = shared.config.probe_timeout();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return ProbeOutcome::Down("no tokio runtime to run the probe in".to_owned());
    };
    let task = handle.spawn(shared.probe.probe().in_current_span());
    let abort = task.abort_handle();
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => ProbeOutcome::Down(format!(
            "probe panicked: {}",
            panic_message(join.into_panic())
        )),
        Ok(Err(_)) => ProbeOutcome::Down("probe was cancelled".to_owned()),
        Err(_) => {
            abort.abort();
            ProbeOutcome::Down(format!("probe timed out after {}", fmt_duration(limit)))
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StartError, StateKind};
    use std::sync::atomic::{AtomicBool, AtomicU32};

    const TTL: Duration = Duration::from_secs(10);

    fn config() -> EnsureConfig {
        EnsureConfig::builder()
            .start_timeout(Duration::from_secs(90))
            .ready_ttl(TTL)
            .probe_timeout(Duration::from_secs(1))
            .backoff(
                rebound_retry::ExponentialBuilder::new()
                    .with_initial_delay(Duration::from_secs(2))
                    .with_max_delay(Duration::from_secs(60))
                    .without_jitter()
                    .forever()
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    /// A start that counts its runs and takes `delay`, and a probe that
    /// reports `up`.
    struct Fixture {
        starts: Arc<AtomicU32>,
        up: Arc<AtomicBool>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                starts: Arc::new(AtomicU32::new(0)),
                up: Arc::new(AtomicBool::new(false)),
            }
        }

        fn ensure(&self, delay: Duration) -> Ensure {
            let starts = Arc::clone(&self.starts);
            let up = Arc::clone(&self.up);
            let probe_up = Arc::clone(&self.up);
            Ensure::new(
                config(),
                move || {
                    let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
                    let up = Arc::clone(&up);
                    async move {
                        tokio::time::sleep(delay).await;
                        up.store(true, Ordering::SeqCst);
                        Ok::<_, StartError>(ReadyInfo::new(
                            "tcp://127.0.0.1:2375",
                            format!("start {n}"),
                        ))
                    }
                },
                move || {
                    let up = probe_up.load(Ordering::SeqCst);
                    async move {
                        if up {
                            ProbeOutcome::Up(ReadyInfo::new("tcp://127.0.0.1:2375", "probe: up"))
                        } else {
                            ProbeOutcome::Down("connection refused".into())
                        }
                    }
                },
            )
        }

        fn starts(&self) -> u32 {
            self.starts.load(Ordering::SeqCst)
        }
    }

    /// A runtime whose first start ends as `first` does (in the start task)
    /// and whose later starts are ready with the message `then`; with the
    /// count of starts run.
    fn first_start_then(
        first: fn() -> Result<ReadyInfo, StartError>,
        then: &'static str,
    ) -> (Ensure, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let e = Ensure::new(
            config(),
            move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        first()
                    } else {
                        Ok(ReadyInfo::new("e", then))
                    }
                }
            },
            || async { ProbeOutcome::Down("down".into()) },
        );
        (e, runs)
    }

    /// Lets background tasks run for `d` of virtual time.
    async fn run_for(d: Duration) {
        tokio::time::sleep(d).await;
    }

    #[tokio::test(start_paused = true)]
    async fn starting_then_reused_with_one_start() {
        let f = Fixture::new();
        let e = f.ensure(Duration::from_secs(3));
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        run_for(Duration::from_secs(4)).await;
        let r = e.ensure(true).await;
        assert_eq!(r.status(), Status::Reused);
        assert!(r.is_ready());
        assert_eq!(r.endpoint(), "tcp://127.0.0.1:2375");
        assert_eq!(r.message(), "start 1");
        assert_eq!(f.starts(), 1);
        assert_eq!(e.stats().ready, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_callers_start_once() {
        let starts = Arc::new(AtomicU32::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (count, open) = (Arc::clone(&starts), Arc::clone(&gate));
        let e = Ensure::new(
            config(),
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                let open = Arc::clone(&open);
                async move {
                    // Held until every caller has had its answer.
                    let _permit = open.acquire().await;
                    Ok::<_, StartError>(ReadyInfo::new("e", "up"))
                }
            },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let e = e.clone();
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    e.ensure(true).await.status()
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Status::Starting);
        }
        // Poll the waiter once while the start is still held, so that it
        // sees the runtime not ready yet (and answers `started`) however the
        // two worker threads are scheduled once the gate opens.
        let wait = e.wait_ready(Duration::from_secs(30));
        tokio::pin!(wait);
        let pending =
            std::future::poll_fn(|cx| std::task::Poll::Ready(wait.as_mut().poll(cx).is_pending()))
                .await;
        assert!(pending, "ready before the start was let through");
        gate.add_permits(1);
        let ready = wait.await.unwrap();
        assert_eq!(ready.status(), Status::Started);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn panicking_start_ends_failed_and_is_retried_after_backoff() {
        let (e, runs) = first_start_then(|| panic!("boom in start"), "second try");
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        run_for(Duration::from_millis(10)).await;
        let failed = e.ensure(true).await;
        assert_eq!(failed.status(), Status::Failed);
        assert_eq!(failed.message(), "runtime start panicked: boom in start");
        assert!(failed.retry_after().is_some());
        assert_eq!(e.state().kind(), StateKind::Failed);
        assert_eq!(e.stats().panics, 1);
        run_for(Duration::from_secs(2)).await;
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        run_for(Duration::from_millis(10)).await;
        assert_eq!(e.ensure(true).await.message(), "second try");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_start_fails_at_the_timeout_and_is_cancelled() {
        struct DropFlag(Arc<AtomicBool>);
        impl Drop for DropFlag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let e = Ensure::new(
            config(),
            move || {
                let guard = DropFlag(Arc::clone(&flag));
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok::<_, StartError>(ReadyInfo::new("never", ""))
                }
            },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let begun = Instant::now();
        e.ensure(true).await;
        // Still running 1 ms before the 90 s timeout; failed at it.
        tokio::time::sleep_until(begun + Duration::from_secs(90) - Duration::from_millis(1)).await;
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        tokio::time::sleep_until(begun + Duration::from_secs(90)).await;
        tokio::task::yield_now().await;
        let r = e.ensure(true).await;
        assert_eq!(r.status(), Status::Failed);
        assert_eq!(r.message(), "start timed out after 90s");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the start future was not dropped"
        );
        assert_eq!(e.stats().timeouts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_start_still_says_why_the_previous_one_failed() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let e = Ensure::new(
            config(),
            move || {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        return Err(StartError::new("bad flag --xyz"));
                    }
                    std::future::pending::<Result<ReadyInfo, StartError>>().await
                }
            },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let plain = e.ensure(true).await;
        assert_eq!(plain.message(), "runtime start in progress");
        run_for(Duration::from_millis(1)).await;
        assert_eq!(e.ensure(true).await.status(), Status::Failed);
        run_for(Duration::from_secs(2)).await;
        // The retry: its first caller and every caller during it are told
        // why the previous start failed.
        for _ in 0..2 {
            let r = e.ensure(true).await;
            assert_eq!(r.status(), Status::Starting);
            assert_eq!(
                r.message(),
                "runtime start in progress (the previous start failed: bad flag --xyz)"
            );
        }
        run_for(Duration::from_millis(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let view = e.state();
        assert_eq!(view.kind(), StateKind::Starting);
        assert_eq!(
            view.message(),
            Some("the previous start failed: bad flag --xyz")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_start_is_not_retried_before_the_backoff() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let e = Ensure::new(
            config(),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) }
            },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let begun = Instant::now();
        e.ensure(true).await;
        run_for(Duration::from_millis(1)).await;
        // First failure (at `begun`: the start fails at once): a 2 s
        // backoff, to the millisecond. Every poll inside it gets `failed`
        // with the exact time left, and nothing is started again.
        let first = e.ensure(true).await;
        assert_eq!(first.status(), Status::Failed);
        assert_eq!(first.message(), "exit status 1");
        assert_eq!(
            first.retry_after(),
            Some(Duration::from_secs(2) - Duration::from_millis(1))
        );
        for _ in 0..13 {
            run_for(Duration::from_millis(150)).await;
            let r = e.ensure(true).await;
            assert_eq!(r.status(), Status::Failed);
            assert_eq!(
                r.retry_after(),
                Some(begun + Duration::from_secs(2) - Instant::now())
            );
        }
        // The last moment of the window: 1 ms left, still `failed`.
        tokio::time::sleep_until(begun + Duration::from_secs(2) - Duration::from_millis(1)).await;
        let last = e.ensure(true).await;
        assert_eq!(last.status(), Status::Failed);
        assert_eq!(last.retry_after(), Some(Duration::from_millis(1)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The window's end: the next call starts again.
        tokio::time::sleep_until(begun + Duration::from_secs(2)).await;
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        run_for(Duration::from_millis(1)).await;
        // Second failure: the backoff doubled to 4 s.
        let r = e.ensure(true).await;
        assert_eq!(
            r.retry_after(),
            Some(Duration::from_secs(4) - Duration::from_millis(1))
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(e.state().failures(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn dead_runtime_goes_back_to_not_started_after_the_ttl() {
        let f = Fixture::new();
        let e = f.ensure(Duration::from_secs(1));
        e.wait_ready(Duration::from_secs(5)).await.unwrap();
        // Still up at the first TTL: stays ready.
        run_for(TTL + Duration::from_millis(10)).await;
        assert_eq!(e.ensure(true).await.status(), Status::Reused);
        f.up.store(false, Ordering::SeqCst);
        run_for(TTL).await;
        let view = e.state();
        assert_eq!(view.kind(), StateKind::NotStarted);
        assert_eq!(
            view.message(),
            Some("runtime stopped answering: connection refused")
        );
        assert_eq!(e.stats().lost, 1);
        assert_eq!(e.ensure(true).await.status(), Status::Starting);
        run_for(Duration::from_secs(2)).await;
        assert_eq!(e.ensure(true).await.message(), "start 2");
        assert_eq!(f.starts(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_only_reports_the_probe_and_changes_nothing() {
        let f = Fixture::new();
        let e = f.ensure(Duration::from_secs(1));
        let r = e.ensure(false).await;
        assert_eq!(r.status(), Status::NotStarted);
        assert!(!r.is_ready());
        // Regression (ArcBox): a probe that finds it up says `reused` only then.
        f.up.store(true, Ordering::SeqCst);
        let r = e.ensure(false).await;
        assert_eq!(r.status(), Status::Reused);
        assert_eq!(r.message(), "probe: up");
        assert_eq!(e.state().kind(), StateKind::NotStarted);
        assert_eq!(f.starts(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_only_during_a_start_and_after_a_failure() {
        let e = Ensure::new(
            config(),
            || async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err::<ReadyInfo, _>(StartError::new("dockerd exited"))
            },
            || async { ProbeOutcome::Down("connection refused".into()) },
        );
        e.ensure(true).await;
        assert_eq!(e.ensure(false).await.status(), Status::Starting);
        run_for(Duration::from_secs(2)).await;
        let r = e.ensure(false).await;
        assert_eq!(r.status(), Status::Failed);
        assert_eq!(r.message(), "dockerd exited");
        assert!(r.retry_after().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_ready_times_out_on_a_slow_start() {
        let f = Fixture::new();
        let e = f.ensure(Duration::from_secs(30));
        let err = e.wait_ready(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            err,
            WaitError::TimedOut {
                after: Duration::from_secs(5)
            }
        );
        // A second wait, long enough, sees it come up.
        let r = e.wait_ready(Duration::from_secs(60)).await.unwrap();
        assert_eq!(r.status(), Status::Started);
        assert_eq!(
            e.wait_ready(Duration::from_secs(1)).await.unwrap().status(),
            Status::Reused
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_ready_waits_out_a_short_backoff() {
        let (e, runs) = first_start_then(|| Err(StartError::new("first try fails")), "ok");
        let r = e.wait_ready(Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.message(), "ok");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ensure_outside_a_runtime_fails_instead_of_panicking() {
        let e = Ensure::new(
            config(),
            || async { Ok::<_, StartError>(ReadyInfo::new("e", "")) },
            || async { ProbeOutcome::Down("down".into()) },
        );
        // Polled by hand, outside any tokio runtime context.
        let fut = std::pin::pin!(e.ensure(true));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(r) => assert_eq!(r.status(), Status::Starting),
            std::task::Poll::Pending => panic!("ensure(true) must not wait"),
        }
        assert_eq!(e.state().kind(), StateKind::Failed);
        assert_eq!(
            e.state().message(),
            Some("no tokio runtime to run the start in")
        );
        let probe = std::pin::pin!(e.ensure(false));
        match probe.poll(&mut cx) {
            std::task::Poll::Ready(r) => {
                assert_eq!(r.status(), Status::Failed);
                assert_eq!(r.message(), "no tokio runtime to run the start in");
            }
            std::task::Poll::Pending => panic!("a probe without a runtime must not wait"),
        }
    }
}
