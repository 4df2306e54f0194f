//! Starting a runtime: one start for many callers, and starts that panic or hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rebound_ensure::{Ensure, ProbeOutcome, ReadyInfo, StartError, StateKind, Status};
use tokio::time::Instant;

use crate::support::{Fixture, config, first_start_then, run_for};

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
async fn a_start_error_keeps_its_source_and_callers_see_its_message() {
    let e = Ensure::new(
        config(),
        || async {
            let io = std::io::Error::new(std::io::ErrorKind::NotFound, "/usr/bin/dockerd");
            let err = StartError::with_source("dockerd is not installed", io);
            // The cause is kept, and not in the text callers are shown.
            let cause = std::error::Error::source(&err).expect("a source");
            assert_eq!(
                cause.downcast_ref::<std::io::Error>().map(|io| io.kind()),
                Some(std::io::ErrorKind::NotFound)
            );
            Err::<ReadyInfo, _>(err)
        },
        || async { ProbeOutcome::Down("down".into()) },
    );
    e.ensure(true).await;
    run_for(Duration::from_millis(1)).await;
    let r = e.ensure(true).await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(r.message(), "dockerd is not installed");
    assert_eq!(e.state().message(), Some("dockerd is not installed"));
}
