//! The counters of one runtime, and their public copy [`Stats`].

use std::time::Duration;

use crate::loom::sync::atomic::{AtomicU64, Ordering};

/// Bumped by the start and TTL tasks; read by [`Ensure::stats`](crate::Ensure::stats).
/// Plain counters (`Relaxed`): no other memory is published through them.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) starts: AtomicU64,
    pub(super) ready: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) panics: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) finished: AtomicU64,
    pub(super) duration_micros: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one finished start that took `took`.
    pub(super) fn finished(&self, took: Duration) {
        Self::bump(&self.finished);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counters now.
    pub(super) fn read(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            starts: get(&self.starts),
            ready: get(&self.ready),
            failures: get(&self.failures),
            timeouts: get(&self.timeouts),
            panics: get(&self.panics),
            lost: get(&self.lost),
            finished: get(&self.finished),
            start_time_total: Duration::from_micros(get(&self.duration_micros)),
        }
    }
}

/// Counters of one runtime since the agent began (for metrics).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
/// let e = Ensure::new(
///     EnsureConfig::default(),
///     || async {
///         tokio::time::sleep(Duration::from_millis(300)).await;
///         Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up"))
///     },
///     || async { ProbeOutcome::Down("no answer".into()) },
/// );
/// e.wait_ready(Duration::from_secs(1)).await.unwrap();
/// let s = e.stats();
/// assert_eq!((s.starts, s.ready, s.failures, s.finished), (1, 1, 0, 1));
/// // Mean start time, as a metrics exporter would compute it.
/// assert_eq!(s.start_time_total / s.finished as u32, Duration::from_millis(300));
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
