//! After a failed start: the backoff, and what callers are told during it and the retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rebound_ensure::{Ensure, ProbeOutcome, ReadyInfo, StartError, StateKind, Status};
use tokio::time::Instant;

use crate::support::{config, run_for};

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
