//! Circuit breaker cost, rebound vs failsafe 1.3, each against the bare
//! call, in the same run:
//!
//! - `breaker_closed_1_thread`: a closed breaker admits a call that
//!   succeeds and records the success; one thread.
//! - `breaker_closed_2_threads`: the same on two threads sharing one
//!   breaker (time per call per thread: wall time of `iters` calls on each
//!   thread, divided by `iters`).
//! - `breaker_open_rejection`: an open breaker rejects a call.
//!
//! rebound runs with its default rule (5 consecutive failures) and with a
//! failure-rate rule as well (`+rate`: 50% over 100 calls, at least 20);
//! failsafe with `consecutive_failures(5)` and with its default (success
//! rate over a time window, or consecutive failures).
//!
//! ```text
//! cargo bench -p rebound-retry --bench breaker -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;

#[derive(Debug)]
struct Failure;

/// The protected operation: returns at once.
#[inline(never)]
fn op() -> Result<u64, Failure> {
    Ok(black_box(42))
}

#[inline(never)]
fn failing() -> Result<u64, Failure> {
    Err(black_box(Failure))
}

fn rebound_consecutive() -> rebound_retry::CircuitBreaker {
    rebound_retry::CircuitBreaker::builder()
        .with_consecutive_failures(5)
        .with_cooldown(Duration::from_secs(3600))
        .with_max_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn rebound_rate() -> rebound_retry::CircuitBreaker {
    rebound_retry::CircuitBreaker::builder()
        .with_consecutive_failures(5)
        .with_failure_rate(0.5, 100, 20)
        .build()
        .unwrap()
}

fn rebound_call(b: &rebound_retry::CircuitBreaker) -> u64 {
    match b.try_acquire() {
        Ok(permit) => match op() {
            Ok(v) => {
                permit.success();
                v
            }
            Err(_) => {
                permit.failure();
                0
            }
        },
        Err(_) => 1,
    }
}

fn failsafe_consecutive() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build()
}

fn failsafe_default() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    failsafe::Config::new().build()
}

fn failsafe_call(b: &impl failsafe::CircuitBreaker) -> u64 {
    b.call(op).unwrap_or(0)
}

/// Wall time of `iters` calls on each of two threads.
fn two_threads(iters: u64, call: impl Fn() -> u64 + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    black_box(call());
                }
            });
        }
    });
    start.elapsed()
}

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed_1_thread");
    g.bench_function("bare", |b| b.iter(|| op().unwrap_or(0)));
    let r = rebound_consecutive();
    g.bench_function("rebound", |b| b.iter(|| rebound_call(&r)));
    let rr = rebound_rate();
    g.bench_function("rebound+rate", |b| b.iter(|| rebound_call(&rr)));
    let f = failsafe_consecutive();
    g.bench_function("failsafe", |b| b.iter(|| failsafe_call(&f)));
    let fd = failsafe_default();
    g.bench_function("failsafe-default", |b| b.iter(|| failsafe_call(&fd)));
    g.finish();

    let mut g = c.benchmark_group("breaker_closed_2_threads");
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| two_threads(iters, || op().unwrap_or(0)))
    });
    g.bench_function("rebound", |b| {
        b.iter_custom(|iters| two_threads(iters, || rebound_call(&r)))
    });
    g.bench_function("rebound+rate", |b| {
        b.iter_custom(|iters| two_threads(iters, || rebound_call(&rr)))
    });
    g.bench_function("failsafe", |b| {
        b.iter_custom(|iters| two_threads(iters, || failsafe_call(&f)))
    });
    g.bench_function("failsafe-default", |b| {
        b.iter_custom(|iters| two_threads(iters, || failsafe_call(&fd)))
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_open_rejection");
    let r = rebound_consecutive();
    for _ in 0..5 {
        r.try_acquire().unwrap().failure();
    }
    assert!(r.try_acquire().is_err());
    g.bench_function("rebound", |b| b.iter(|| rebound_call(&r)));
    let f = failsafe_consecutive();
    for _ in 0..5 {
        let _ = f.call(failing);
    }
    assert!(!f.is_call_permitted());
    g.bench_function("failsafe", |b| b.iter(|| failsafe_call(&f)));
    g.finish();
}

criterion_group!(breaker, closed, open);
criterion_main!(breaker);
