//! The circuit breaker with the async runner, on tokio's paused clock: the
//! cool-down grows while half-open probes fail, and a success closes it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound_retry::breaker::TokioClock;
use rebound_retry::{BreakerState, CircuitBreaker, ConstantBuilder, Retryable, StopReason};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The states entered, with the cool-down of each opening.
type Changes = Arc<Mutex<Vec<(BreakerState, Option<Duration>)>>>;

fn breaker(changes: Changes) -> CircuitBreaker {
    CircuitBreaker::builder()
        .with_consecutive_failures(3)
        .with_cooldown(secs(1))
        .with_max_cooldown(secs(10))
        .with_clock(Arc::new(TokioClock))
        .on_state_change(move |c| changes.lock().unwrap().push((c.to, c.cooldown)))
        .build()
        .unwrap()
}

/// A caller that retries on its own schedule: waits as long as the breaker
/// says, then calls again through the runner.
#[tokio::test(start_paused = true)]
async fn cooldown_grows_while_probes_fail_then_closes() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let breaker = breaker(Arc::clone(&changes));
    let healthy_from = Instant::now() + secs(20);
    let attempts = Arc::new(AtomicU32::new(0));
    let mut opened_at = Vec::new();
    let mut rejections = 0;
    loop {
        let seen = Arc::clone(&attempts);
        let result = (move || {
            seen.fetch_add(1, Ordering::Relaxed);
            async move {
                if Instant::now() < healthy_from {
                    Err("503")
                } else {
                    Ok(())
                }
            }
        })
        .retry(
            ConstantBuilder::new()
                .with_delay(Duration::from_millis(100))
                .with_max_attempts(5)
                .build()
                .unwrap(),
        )
        .breaker(&breaker)
        .await;
        match result {
            Ok(()) => break,
            Err(err) => {
                assert_eq!(err.reason(), StopReason::BreakerOpen, "{err}");
                let rejection = err.breaker_rejection().unwrap();
                let wait = rejection.retry_in().unwrap();
                if err.attempts() == 0 {
                    rejections += 1;
                } else {
                    opened_at.push(Instant::now());
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let changes = changes.lock().unwrap();
    let cooldowns: Vec<u64> = changes
        .iter()
        .filter(|(to, _)| *to == BreakerState::Open)
        .map(|(_, c)| c.unwrap().as_secs())
        .collect();
    // Closed -> open after 3 failures at t = 0.2 s, then each failed probe
    // doubles the cool-down (capped at 10 s) until the service is back at
    // t = 20 s.
    assert_eq!(cooldowns, [1, 2, 4, 8, 10]);
    assert_eq!(changes.last().unwrap().0, BreakerState::Closed);
    // The gaps between openings are the cool-downs: one probe each time.
    let gaps: Vec<Duration> = opened_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [secs(1), secs(2), secs(4), secs(8)]);
    // 3 attempts before the first opening, then one probe per cool-down
    // (4 failed, 1 succeeded).
    assert_eq!(attempts.load(Ordering::Relaxed), 3 + 4 + 1);
    assert_eq!(rejections, 0, "the caller waited as told");
}

/// Many tasks share one breaker: once open, none of them reaches the
/// dependency until the cool-down is over, and then only one probe does.
#[tokio::test(start_paused = true)]
async fn tasks_sharing_an_open_breaker_fail_fast() {
    let breaker = CircuitBreaker::builder()
        .with_consecutive_failures(1)
        .with_cooldown(secs(5))
        .with_clock(Arc::new(TokioClock))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let call = |breaker: CircuitBreaker, calls: Arc<AtomicU32>| async move {
        (move || {
            calls.fetch_add(1, Ordering::Relaxed);
            // A slow failing dependency.
            async {
                tokio::time::sleep(secs(1)).await;
                Err::<(), _>("refused")
            }
        })
        .retry(ConstantBuilder::new().with_max_attempts(3).build().unwrap())
        .breaker(&breaker)
        .await
        .unwrap_err()
    };
    let first = call(breaker.clone(), Arc::clone(&calls)).await;
    assert_eq!(
        (first.reason(), first.attempts()),
        (StopReason::BreakerOpen, 1)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        tasks.spawn(call(breaker.clone(), Arc::clone(&calls)));
    }
    while let Some(err) = tasks.join_next().await {
        let err = err.unwrap();
        assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 0));
        assert_eq!(err.breaker_rejection().unwrap().retry_in(), Some(secs(5)));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    tokio::time::advance(secs(5)).await;
    // Half-open with one trial: one task probes, the others are told to
    // wait for it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        tasks.spawn(call(breaker.clone(), Arc::clone(&calls)));
    }
    let mut probes = 0;
    while let Some(err) = tasks.join_next().await {
        let err = err.unwrap();
        assert_eq!(err.reason(), StopReason::BreakerOpen);
        probes += err.attempts();
    }
    assert_eq!(probes, 1);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}
