//! Runs one retried call N times (variant and N from the command line), for
//! counting instructions with valgrind; not part of the crate's API.
#![allow(missing_docs)]
use std::hint::black_box;
use std::time::Duration;

#[derive(Debug)]
struct Failure;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let variant = args[1].as_str();
    let n: u64 = args[2].parse().unwrap();
    let failures: u32 = args[3].parse().unwrap();
    if let Some(v) = breaker_variant(variant, n) {
        black_box(v);
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..n {
            let v = match variant {
                "bare" => {
                    let mut op = flaky(failures);
                    let mut out = 0;
                    for _ in 0..4 {
                        if let Ok(v) = op().await {
                            out = v;
                            break;
                        }
                    }
                    out
                }
                "rebound" => {
                    use rebound_retry::{ConstantBuilder, Retryable};
                    let b = ConstantBuilder::new()
                        .with_delay(Duration::ZERO)
                        .with_max_attempts(4)
                        .build()
                        .unwrap();
                    flaky(failures).retry(b).await.unwrap()
                }
                "tokio-retry2" => {
                    use tokio_retry2::strategy::FixedInterval;
                    use tokio_retry2::{Retry, RetryError};
                    let s = FixedInterval::new(Duration::ZERO).take(3);
                    let mut op = flaky(failures);
                    Retry::spawn(s, move || {
                        std::future::ready(op().into_inner().map_err(RetryError::transient))
                    })
                    .await
                    .unwrap()
                }
                "backon" => {
                    use backon::{ConstantBuilder, Retryable};
                    let b = ConstantBuilder::default()
                        .with_delay(Duration::ZERO)
                        .with_max_times(3);
                    flaky(failures).retry(b).await.unwrap()
                }
                "blocking-bare" => {
                    let mut op = flaky(failures);
                    let mut out = 0;
                    for _ in 0..4 {
                        if let Ok(v) = op().into_inner() {
                            out = v;
                            break;
                        }
                    }
                    out
                }
                "blocking-rebound" => {
                    use rebound_retry::{BlockingRetryable, ConstantBuilder};
                    let b = ConstantBuilder::new()
                        .with_delay(Duration::ZERO)
                        .with_max_attempts(4)
                        .build()
                        .unwrap();
                    let mut op = flaky(failures);
                    (move || op().into_inner()).retry(b).call().unwrap()
                }
                "blocking-backon" => {
                    use backon::{BlockingRetryable, ConstantBuilder};
                    let b = ConstantBuilder::default()
                        .with_delay(Duration::ZERO)
                        .with_max_times(3);
                    let mut op = flaky(failures);
                    (move || op().into_inner()).retry(b).call().unwrap()
                }
                _ => panic!("unknown variant"),
            };
            black_box(v);
        }
    });
}

/// The breaker variants: a closed breaker admitting a success, and an open
/// one rejecting, rebound vs failsafe.
fn breaker_variant(variant: &str, n: u64) -> Option<u64> {
    use failsafe::CircuitBreaker as _;
    let op = || Ok::<u64, Failure>(black_box(42));
    let mut sum = 0;
    match variant {
        "breaker-closed" | "breaker-open" => {
            let b = rebound_retry::CircuitBreaker::builder()
                .with_consecutive_failures(1)
                .with_cooldown(Duration::from_secs(3600))
                .with_max_cooldown(Duration::from_secs(3600))
                .build()
                .unwrap();
            if variant == "breaker-open" {
                b.try_acquire().unwrap().failure();
            }
            for _ in 0..n {
                sum += match b.try_acquire() {
                    Ok(p) => match op() {
                        Ok(v) => {
                            p.success();
                            v
                        }
                        Err(_) => {
                            p.failure();
                            0
                        }
                    },
                    Err(_) => 1,
                };
            }
        }
        "failsafe-closed" | "failsafe-open" => {
            let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
            let b = failsafe::Config::new()
                .failure_policy(failsafe::failure_policy::consecutive_failures(1, backoff))
                .build();
            if variant == "failsafe-open" {
                let _ = b.call(|| Err::<u64, Failure>(Failure));
            }
            for _ in 0..n {
                sum += b.call(op).unwrap_or(1);
            }
        }
        _ => return None,
    }
    Some(sum)
}
