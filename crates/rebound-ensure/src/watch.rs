//! A feed of state changes: [`Ensure::subscribe`](crate::Ensure::subscribe).
//!
//! Every transition a watcher cares about (a start begins, it ends ready or
//! failed, a ready runtime is found dead) publishes the new [`StateView`] on
//! a bounded broadcast channel. Publishing never waits: a subscriber that
//! falls more than [`FEED_CAPACITY`] changes behind gets
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged)
//! and should read [`Ensure::state`](crate::Ensure::state) afresh.

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::machine::{Machine, Phase, Snapshot};
use crate::status::{StateKind, StateView};

/// How many changes a subscriber may fall behind before it lags.
pub const FEED_CAPACITY: usize = 32;

/// The sending side, one per [`Ensure`](crate::Ensure).
pub(crate) struct Feed {
    tx: broadcast::Sender<StateView>,
}

impl Feed {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StateView> {
        self.tx.subscribe()
    }

    /// Publishes the machine's state as it is now (nothing to do without
    /// subscribers; never waits).
    pub(crate) fn publish(&self, machine: &Machine) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(view(&machine.load(), Instant::now()));
        }
    }
}

/// The view of a snapshot at `now`.
pub(crate) fn view(snap: &Snapshot, now: Instant) -> StateView {
    let mut view = StateView {
        kind: StateKind::NotStarted,
        endpoint: None,
        message: None,
        for_time: now.saturating_duration_since(snap.since),
        failures: snap.failures,
        retry_after: None,
        verifying: false,
    };
    match &snap.phase {
        Phase::NotStarted { message } => {
            view.message = message.as_deref().map(str::to_owned);
        }
        Phase::Starting { previous } => {
            view.kind = StateKind::Starting;
            view.message = previous
                .as_deref()
                .map(|m| format!("the previous start failed: {m}"));
        }
        Phase::Ready { info, verifying } => {
            view.kind = StateKind::Ready;
            view.endpoint = Some(info.endpoint().to_owned());
            view.message = Some(info.message().to_owned());
            view.verifying = *verifying;
        }
        Phase::Failed { message, retry_at } => {
            view.kind = StateKind::Failed;
            view.message = Some(message.to_string());
            view.retry_after = Some(retry_at.saturating_duration_since(now));
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::broadcast::error::RecvError;

    use crate::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, StateKind};

    fn config(ttl: Duration) -> EnsureConfig {
        EnsureConfig::builder()
            .ready_ttl(ttl)
            .probe_timeout(Duration::from_secs(1))
            .backoff(
                rebound_retry::ExponentialBuilder::new()
                    .with_initial_delay(Duration::from_millis(10))
                    .with_max_delay(Duration::from_millis(10))
                    .without_jitter()
                    .forever()
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_publishes_starting_then_ready_and_a_lost_runtime_not_started() {
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let probe_up = std::sync::Arc::clone(&up);
        let e = Ensure::new(
            config(Duration::from_secs(10)),
            || async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:1", "up"))
            },
            move || {
                let up = probe_up.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if up {
                        ProbeOutcome::Up(ReadyInfo::new("tcp://127.0.0.1:1", "probe: up"))
                    } else {
                        ProbeOutcome::Down("connection refused".into())
                    }
                }
            },
        );
        let mut feed = e.subscribe();
        e.ensure(true).await;
        let starting = feed.recv().await.unwrap();
        assert_eq!(starting.kind(), StateKind::Starting);
        let ready = feed.recv().await.unwrap();
        assert_eq!(ready.kind(), StateKind::Ready);
        assert_eq!(ready.endpoint(), Some("tcp://127.0.0.1:1"));
        // A TTL probe that finds it up publishes nothing; one that finds it
        // dead publishes not_started with the reason.
        up.store(false, std::sync::atomic::Ordering::SeqCst);
        let lost = feed.recv().await.unwrap();
        assert_eq!(lost.kind(), StateKind::NotStarted);
        assert_eq!(
            lost.message(),
            Some("runtime stopped answering: connection refused")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_publishes_failed_with_the_backoff() {
        let e = Ensure::new(
            config(Duration::from_secs(10)),
            || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let mut feed = e.subscribe();
        e.ensure(true).await;
        assert_eq!(feed.recv().await.unwrap().kind(), StateKind::Starting);
        let failed = feed.recv().await.unwrap();
        assert_eq!(failed.kind(), StateKind::Failed);
        assert_eq!(failed.message(), Some("exit status 1"));
        assert_eq!(failed.retry_after(), Some(Duration::from_millis(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_falls_behind_lags_and_nobody_waits_for_it() {
        let e = Ensure::new(
            config(Duration::from_secs(10)),
            || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
            || async { ProbeOutcome::Down("down".into()) },
        );
        let mut slow = e.subscribe();
        // Each round is two changes (starting, failed); nobody reads.
        for _ in 0..super::FEED_CAPACITY {
            e.ensure(true).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(e.stats().starts, super::FEED_CAPACITY as u64);
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(_))));
        // After the lag it reads the newest changes, not stale ones.
        assert_eq!(slow.recv().await.unwrap().kind(), StateKind::Starting);
    }
}
