//! The Ready fast path, calls per second at 1 and 2 threads:
//!
//! - `rebound_ready`: [`Ensure::ready`], the endpoint by reference;
//! - `seed_tokio_mutex`: the seed's design, a tokio `Mutex` around the
//!   state, locked on every call, the endpoint read under the lock;
//! - `tokio_oncecell_get`: `tokio::sync::OnceCell::get`, the endpoint read;
//!
//! each reading the endpoint's length so that only the access differs; plus,
//! for reference, `rebound_try_ready` (an owned answer: one `Arc` clone),
//! `rebound_try_ready_overflow` (the same for a runtime that published more
//! distinct answers than the fast path keeps: read from the machine's state
//! under its lock) and `rebound_ensure_future` (the whole `ensure(true)` future,
//! polled once).
//!
//! Run: `cargo bench -p rebound-ensure --bench fast_path -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};

/// Polls a future to completion, spinning while it is pending (a contended
/// tokio mutex hands the lock to the queued waiter, which the next poll
/// takes).
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

/// The seed's state, behind a tokio mutex.
enum SeedState {
    #[allow(dead_code)]
    NotStarted,
    Ready(Arc<ReadyInfo>),
}

fn ready_ensure() -> Ensure {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let e = Ensure::new(
        EnsureConfig::builder().no_ready_ttl().build().unwrap(),
        || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:2375", "up")) },
        || async { ProbeOutcome::Down("down".into()) },
    );
    rt.block_on(async {
        e.wait_ready(Duration::from_secs(5)).await.unwrap();
    });
    // Keep the runtime alive for the TTL task: leak it (benchmark process).
    std::mem::forget(rt);
    e
}

/// A Ready runtime whose start reported a new message on each of 70 starts
/// (more than the 64 answers the by-reference fast path keeps): `ready()`
/// is `None` for it and `try_ready()` reads the state under the lock.
fn overflowed_ensure() -> Ensure {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let e = Ensure::new(
        EnsureConfig::builder()
            .ready_ttl(Duration::from_millis(1))
            .build()
            .unwrap(),
        move || {
            let n = starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:2375", format!("start {n}")))
            }
        },
        || async { ProbeOutcome::Down("down".into()) },
    );
    rt.block_on(async {
        for _ in 0..70 {
            e.wait_ready(Duration::from_secs(5)).await.unwrap();
            // The TTL runs out and the probe finds it down: NotStarted.
            while e.try_ready().is_some() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        e.wait_ready(Duration::from_secs(5)).await.unwrap();
    });
    // Not driven any more: the TTL task never runs again, so the Ready
    // stays trusted for the benchmark.
    std::mem::forget(rt);
    assert!(e.ready().is_none() && e.try_ready().is_some());
    e
}

/// Runs `call` `iters` times on each of `threads` threads at once; the wall
/// time of the whole.
fn parallel(threads: usize, iters: u64, call: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let begun = Instant::now();
                    for _ in 0..iters {
                        call();
                    }
                    begun.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn fast_path(c: &mut Criterion) {
    let ensure = ready_ensure();
    let overflowed = overflowed_ensure();
    let info = Arc::new(ReadyInfo::new("tcp://127.0.0.1:2375", "up"));
    let seed = tokio::sync::Mutex::new(SeedState::Ready(Arc::clone(&info)));
    let cell = tokio::sync::OnceCell::new_with(Some(Arc::clone(&info)));

    let mut group = c.benchmark_group("ready_fast_path");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("rebound_ready", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        black_box(black_box(&ensure).ready().map(|r| r.endpoint().len()));
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("rebound_try_ready", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        black_box(ensure.try_ready());
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("rebound_try_ready_overflow", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        black_box(overflowed.try_ready());
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("rebound_ensure_future", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        black_box(now(ensure.ensure(true)));
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("seed_tokio_mutex", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        let answer = now(async {
                            let state = seed.lock().await;
                            match &*state {
                                SeedState::Ready(info) => Some(info.endpoint().len()),
                                SeedState::NotStarted => None,
                            }
                        });
                        black_box(answer);
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("tokio_oncecell_get", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, || {
                        black_box(black_box(&cell).get().map(|r| r.endpoint().len()));
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fast_path);
criterion_main!(benches);
