//! The feed of state changes (`Ensure::subscribe`): what a start, a failed
//! start and a lost runtime publish, and a subscriber that falls behind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rebound_ensure::{Ensure, FEED_CAPACITY, ProbeOutcome, ReadyInfo, StartError, StateKind};
use tokio::sync::broadcast::error::RecvError;

use crate::support::{Fixture, config_with_backoff};

/// A runtime whose every start fails with `exit status 1`, backing off a
/// fixed 10 ms.
fn failing() -> Ensure {
    let backoff = Duration::from_millis(10);
    Ensure::new(
        config_with_backoff(backoff, backoff),
        || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
        || async { ProbeOutcome::Down("down".into()) },
    )
}

#[tokio::test(start_paused = true)]
async fn a_start_publishes_starting_then_ready_and_a_lost_runtime_not_started() {
    let fixture = Fixture::new();
    let e = fixture.ensure(Duration::from_secs(1));
    let mut feed = e.subscribe();
    e.ensure(true).await;
    let starting = feed.recv().await.unwrap();
    assert_eq!(starting.kind(), StateKind::Starting);
    let ready = feed.recv().await.unwrap();
    assert_eq!(ready.kind(), StateKind::Ready);
    assert_eq!(ready.endpoint(), Some("tcp://127.0.0.1:2375"));
    // A TTL probe that finds it up publishes nothing; one that finds it
    // dead publishes not_started with the reason.
    fixture.up.store(false, Ordering::SeqCst);
    let lost = feed.recv().await.unwrap();
    assert_eq!(lost.kind(), StateKind::NotStarted);
    assert_eq!(
        lost.message(),
        Some("runtime stopped answering: connection refused")
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_publishes_failed_with_the_backoff() {
    let e = failing();
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
    let e = failing();
    let mut slow = e.subscribe();
    // Each round is two changes (starting, failed); nobody reads.
    for _ in 0..FEED_CAPACITY {
        e.ensure(true).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.stats().starts, FEED_CAPACITY as u64);
    assert!(matches!(slow.recv().await, Err(RecvError::Lagged(_))));
    // After the lag it reads the newest changes, not stale ones.
    assert_eq!(slow.recv().await.unwrap().kind(), StateKind::Starting);
}
