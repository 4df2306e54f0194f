//! 1,000 callers against a dependency that is down for 10 s, in virtual
//! time, with and without a shared retry budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rebound_retry::{RetryBudget, Retryable, presets};
use tokio::time::Instant;

const CALLERS: u64 = 1_000;
/// Each caller starts one request per second for this many seconds.
const SECONDS: u64 = 20;
const OUTAGE: Duration = Duration::from_secs(10);
const MAX_TOKENS: u32 = 100;

#[derive(Debug, Default)]
struct Counts {
    first_attempts_in_outage: AtomicU64,
    retries_in_outage: AtomicU64,
    retries_after_outage: AtomicU64,
    failed_requests_after_outage: AtomicU64,
}

/// Runs the scenario and returns the counters (and the budget, if any).
async fn simulate(budget: Option<Arc<RetryBudget>>) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for second in 0..SECONDS {
        for caller in 0..CALLERS {
            // Callers are spread evenly over each second.
            let start = t0 + Duration::from_secs(second) + Duration::from_micros(caller * 1_000);
            let counts = Arc::clone(&counts);
            let budget = budget.clone();
            tasks.spawn(async move {
                tokio::time::sleep_until(start).await;
                let mut attempt = 0;
                let counters = Arc::clone(&counts);
                let op = move || {
                    attempt += 1;
                    let now = t0.elapsed();
                    let down = now < OUTAGE;
                    let counter = match (attempt, down) {
                        (1, true) => Some(&counters.first_attempts_in_outage),
                        (1, false) => None,
                        (_, true) => Some(&counters.retries_in_outage),
                        (_, false) => Some(&counters.retries_after_outage),
                    };
                    if let Some(c) = counter {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    async move {
                        if down {
                            Err("503 service unavailable")
                        } else {
                            Ok(())
                        }
                    }
                };
                let backoff = presets::network().build().unwrap();
                let result = match budget {
                    Some(b) => op.retry(backoff).budget(b).await,
                    None => op.retry(backoff).await,
                };
                if result.is_err() && start - t0 >= OUTAGE {
                    counts
                        .failed_requests_after_outage
                        .fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    counts
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn budget_holds_retries_to_a_small_share_during_an_outage() {
    let without = simulate(None).await;
    let budget = Arc::new(RetryBudget::new(MAX_TOKENS, 0.1).unwrap());
    let with = simulate(Some(Arc::clone(&budget))).await;

    let first = get(&without.first_attempts_in_outage);
    let retries_without = get(&without.retries_in_outage);
    let retries_with = get(&with.retries_in_outage);
    println!(
        "outage of {OUTAGE:?}, {CALLERS} callers x 1 request/s, network preset (4 attempts):\n\
         first attempts during the outage: {first} (with budget: {})\n\
         retries during the outage without budget: {retries_without} ({:.1}% of first attempts)\n\
         retries during the outage with budget({MAX_TOKENS}, 0.1): {retries_with} ({:.2}% of first attempts)\n\
         retries after the outage: without {}, with {}; budget tokens at the end: {}",
        get(&with.first_attempts_in_outage),
        100.0 * retries_without as f64 / first as f64,
        100.0 * retries_with as f64 / first as f64,
        get(&without.retries_after_outage),
        get(&with.retries_after_outage),
        budget.tokens(),
    );

    // Every caller's first attempt goes out either way.
    assert_eq!(first, CALLERS * 10);
    assert_eq!(get(&with.first_attempts_in_outage), CALLERS * 10);
    // Without a budget the retries multiply the load: almost every failed
    // request is retried three times.
    assert!(retries_without > 2 * first, "{retries_without}");
    // With it, once the bucket is at half (50 failures) no retry goes out
    // until a success refills it: at most max/2 retries in the whole outage.
    assert!(retries_with <= u64::from(MAX_TOKENS / 2), "{retries_with}");
    assert!(
        retries_with * 100 <= first,
        "more than 1% of first attempts"
    );
    // Once the dependency is back, successes refill the bucket and requests
    // started after the outage all succeed.
    assert_eq!(get(&with.failed_requests_after_outage), 0);
    assert_eq!(get(&without.failed_requests_after_outage), 0);
    assert!(budget.can_retry(), "tokens {}", budget.tokens());
}
