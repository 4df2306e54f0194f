//! `wait_ready`: in-process callers wait for the start.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rebound_ensure::{StartError, Status, WaitError};

use crate::support::{Fixture, first_start_then};

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
