//! Overhead of a retried call, rebound vs backon 1.x vs tokio-retry2, each
//! against the bare call, in the same run:
//!
//! - `succeeds_at_once`: the operation returns `Ok` on the first attempt.
//! - `fails_3_times`: it fails three times, then succeeds; zero delays.
//! - `blocking_*`: the same two through the blocking runners (rebound and
//!   backon; tokio-retry2 has no blocking runner).
//!
//! Each iteration builds its policy and runs one call, inside one tokio
//! current-thread runtime (`iter_custom` times a loop of calls, so that
//! `block_on` is outside the measurement).
//!
//! ```text
//! cargo bench -p rebound-retry --bench retry -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[derive(Debug)]
struct Failure;

const FAILURES: u32 = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Times `iters` awaited calls of `call` inside one `block_on`.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(call().await);
        }
        start.elapsed()
    })
}

/// An operation that fails `failures` times, then returns `Ok(42)`.
fn flaky(failures: u32) -> impl FnMut() -> std::future::Ready<Result<u64, Failure>> {
    let mut calls = 0u32;
    move || {
        calls += 1;
        std::future::ready(if calls <= black_box(failures) {
            Err(Failure)
        } else {
            Ok(black_box(42))
        })
    }
}

fn scenario(c: &mut Criterion, name: &str, failures: u32) {
    let rt = runtime();
    let mut group = c.benchmark_group(name);

    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async move {
                // The hand-written loop a caller would write without a
                // library: call until Ok, at most FAILURES + 1 times.
                let mut op = flaky(failures);
                for _ in 0..FAILURES {
                    if let Ok(v) = op().await {
                        return v;
                    }
                }
                op().await.unwrap_or(0)
            })
        })
    });

    group.bench_function("rebound", |b| {
        use rebound_retry::{ConstantBuilder, Retryable};
        b.iter_custom(|iters| {
            timed(&rt, iters, || async move {
                let backoff = ConstantBuilder::new()
                    .with_delay(Duration::ZERO)
                    .with_max_attempts(FAILURES + 1)
                    .build()
                    .unwrap();
                flaky(failures).retry(backoff).await.unwrap()
            })
        })
    });

    group.bench_function("backon", |b| {
        use backon::{ConstantBuilder, Retryable};
        b.iter_custom(|iters| {
            timed(&rt, iters, || async move {
                let backoff = ConstantBuilder::default()
                    .with_delay(Duration::ZERO)
                    .with_max_times(FAILURES as usize);
                flaky(failures).retry(backoff).await.unwrap()
            })
        })
    });

    group.bench_function("tokio-retry2", |b| {
        use tokio_retry2::strategy::FixedInterval;
        use tokio_retry2::{Retry, RetryError};
        b.iter_custom(|iters| {
            timed(&rt, iters, || async move {
                let strategy = FixedInterval::new(Duration::ZERO).take(FAILURES as usize);
                let mut op = flaky(failures);
                Retry::spawn(strategy, move || {
                    let result = op().into_inner().map_err(RetryError::transient);
                    std::future::ready(result)
                })
                .await
                .unwrap()
            })
        })
    });

    group.finish();
}

/// A blocking operation that fails `failures` times, then returns `Ok(42)`.
fn flaky_blocking(failures: u32) -> impl FnMut() -> Result<u64, Failure> {
    let mut op = flaky(failures);
    move || op().into_inner()
}

/// The blocking runners (tokio-retry2 has none).
fn blocking_scenario(c: &mut Criterion, name: &str, failures: u32) {
    let mut group = c.benchmark_group(name);

    group.bench_function("bare", |b| {
        b.iter(|| {
            let mut op = flaky_blocking(failures);
            for _ in 0..FAILURES {
                if let Ok(v) = op() {
                    return v;
                }
            }
            op().unwrap_or(0)
        })
    });

    group.bench_function("rebound", |b| {
        use rebound_retry::{BlockingRetryable, ConstantBuilder};
        b.iter(|| {
            let backoff = ConstantBuilder::new()
                .with_delay(Duration::ZERO)
                .with_max_attempts(FAILURES + 1)
                .build()
                .unwrap();
            flaky_blocking(failures).retry(backoff).call().unwrap()
        })
    });

    group.bench_function("backon", |b| {
        use backon::{BlockingRetryable, ConstantBuilder};
        b.iter(|| {
            let backoff = ConstantBuilder::default()
                .with_delay(Duration::ZERO)
                .with_max_times(FAILURES as usize);
            flaky_blocking(failures).retry(backoff).call().unwrap()
        })
    });

    group.finish();
}

fn benches(c: &mut Criterion) {
    scenario(c, "succeeds_at_once", 0);
    scenario(c, "fails_3_times", FAILURES);
    blocking_scenario(c, "blocking_succeeds_at_once", 0);
    blocking_scenario(c, "blocking_fails_3_times", FAILURES);
}

criterion_group!(retry, benches);
criterion_main!(retry);
