//! Called outside a tokio runtime: no panic, and the answer matches the state.

use std::future::Future;
use std::time::Duration;

use rebound_ensure::{Ensure, ProbeOutcome, ReadyInfo, StartError, StateKind, Status};

use crate::support::config;

#[test]
fn ensure_outside_a_runtime_fails_instead_of_panicking_and_says_so() {
    let e = Ensure::new(
        config(),
        || async { Ok::<_, StartError>(ReadyInfo::new("e", "")) },
        || async { ProbeOutcome::Down("down".into()) },
    );
    // Polled by hand, outside any tokio runtime context.
    let fut = std::pin::pin!(e.ensure(true));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let answer = match fut.poll(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => panic!("ensure(true) must not wait"),
    };
    let state = e.state();
    assert_eq!(state.kind(), StateKind::Failed);
    assert_eq!(
        state.message(),
        Some("no tokio runtime to run the start in")
    );
    // The answer tells the state the call left (it once said `starting`
    // while the machine was already `failed`).
    assert_eq!(answer.status(), Status::Failed);
    assert_eq!(answer.status().as_str(), state.kind().as_str());
    assert_eq!(Some(answer.message()), state.message());
    // The first failure's backoff (2 s, no jitter), counted from the failure.
    assert_eq!(answer.retry_after(), Some(Duration::from_secs(2)));
    assert!(
        state
            .retry_after()
            .is_some_and(|left| left <= Duration::from_secs(2))
    );
    assert_eq!((e.stats().starts, e.stats().failures), (1, 1));
    let probe = std::pin::pin!(e.ensure(false));
    match probe.poll(&mut cx) {
        std::task::Poll::Ready(r) => {
            assert_eq!(r.status(), Status::Failed);
            assert_eq!(r.message(), "no tokio runtime to run the start in");
        }
        std::task::Poll::Pending => panic!("a probe without a runtime must not wait"),
    }
}
