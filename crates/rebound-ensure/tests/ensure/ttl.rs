//! A Ready is trusted for its TTL, then probed again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rebound_ensure::{StateKind, Status};

use crate::support::{Fixture, TTL, run_for};

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
