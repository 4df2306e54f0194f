//! `ensure(false)`: the probe answers, and nothing changes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rebound_ensure::{Ensure, ProbeOutcome, ReadyInfo, StartError, StateKind, Status};

use crate::support::{Fixture, config, run_for};

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
