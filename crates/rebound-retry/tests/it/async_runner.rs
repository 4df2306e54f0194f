//! The async runner under tokio's paused clock: exact sleep sequences,
//! jitter bounds, deadline cuts, attempt timeouts, Retry-After.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound_retry::{
    ConstantBuilder, Decision, ExponentialBuilder, Retryable, StopReason, classify, presets,
};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs an always-failing operation under `backoff` and returns the gaps
/// between consecutive attempts (the slept delays) in virtual time.
async fn gaps_of(backoff: impl IntoIterator<Item = Duration>) -> Vec<Duration> {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let err = (move || {
        seen.lock().unwrap().push(Instant::now());
        async { Err::<(), _>("down") }
    })
    .retry(backoff)
    .await
    .unwrap_err();
    assert_eq!(err.reason(), StopReason::Exhausted);
    let starts = starts.lock().unwrap();
    assert_eq!(usize::try_from(err.attempts()).unwrap(), starts.len());
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn presets_sleep_smolvm_sequences_without_jitter() {
    let cases = [
        (presets::default(), vec![ms(100), ms(200)]),
        (presets::network(), vec![ms(500), ms(1000), ms(2000)]),
        (presets::connection(), vec![ms(50), ms(100)]),
    ];
    for (preset, expected) in cases {
        let gaps = gaps_of(preset.without_jitter().build().unwrap()).await;
        assert_eq!(gaps, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn presets_with_jitter_sleep_between_half_and_nominal() {
    for name in presets::NAMES {
        for _ in 0..20 {
            let backoff = presets::by_name(name).unwrap().build().unwrap();
            let nominal = backoff.clone();
            let gaps = gaps_of(backoff).await;
            assert_eq!(
                gaps.len(),
                usize::try_from(nominal.max_attempts().unwrap() - 1).unwrap()
            );
            for (i, gap) in gaps.iter().enumerate() {
                let n = nominal.nominal(u32::try_from(i).unwrap() + 1);
                assert!(
                    *gap >= n / 2 && *gap <= n,
                    "{name}: gap {gap:?} nominal {n:?}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_instead_of_sleeping_past_it() {
    let t0 = Instant::now();
    let backoff = ConstantBuilder::new()
        .with_delay(Duration::from_secs(4))
        .forever()
        .build()
        .unwrap();
    let err = (|| async { Err::<(), _>("down") })
        .retry(backoff)
        .deadline(Duration::from_secs(10))
        .await
        .unwrap_err();
    // Attempts at 0 s, 4 s, 8 s; a 4 s sleep from 8 s would reach 12 s.
    assert_eq!(err.reason(), StopReason::Deadline);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.elapsed(), Duration::from_secs(8));
    assert_eq!(t0.elapsed(), Duration::from_secs(8));
    assert_eq!(err.last_error(), Some(&"down"));
}

#[tokio::test(start_paused = true)]
async fn deadline_cancels_the_running_attempt_exactly_on_time() {
    let t0 = Instant::now();
    let backoff = ConstantBuilder::new()
        .with_delay(Duration::from_secs(1))
        .forever()
        .build()
        .unwrap();
    let mut calls = 0;
    let err = (|| {
        calls += 1;
        let first = calls == 1;
        async move {
            if first {
                return Err("refused");
            }
            std::future::pending::<Result<(), &str>>().await
        }
    })
    .retry(backoff)
    .deadline(Duration::from_secs(10))
    .await
    .unwrap_err();
    assert_eq!(err.reason(), StopReason::Deadline);
    assert_eq!(err.attempts(), 2);
    assert!(err.last_attempt_timed_out());
    assert_eq!(err.last_error(), Some(&"refused"));
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_is_cut_by_the_deadline_when_less_is_left() {
    let t0 = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let backoff = ConstantBuilder::new()
        .with_delay(Duration::from_secs(1))
        .forever()
        .build()
        .unwrap();
    let err = (move || {
        seen.lock().unwrap().push(t0.elapsed());
        std::future::pending::<Result<(), ()>>()
    })
    .retry(backoff)
    .attempt_timeout(Duration::from_secs(3))
    .deadline(Duration::from_secs(10))
    .await
    .unwrap_err();
    // 0..3 timeout, sleep 1, 4..7 timeout, sleep 1, 8..10 cut by the deadline.
    let secs = Duration::from_secs;
    assert_eq!(*starts.lock().unwrap(), [secs(0), secs(4), secs(8)]);
    assert_eq!(err.reason(), StopReason::Deadline);
    assert_eq!(err.elapsed(), secs(10));
    assert_eq!(err.last_error(), None);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_retries_then_succeeds() {
    let mut calls = 0;
    let t0 = Instant::now();
    let value = (|| {
        calls += 1;
        let n = calls;
        async move {
            if n < 3 {
                std::future::pending::<()>().await;
            }
            Ok::<_, ()>(n)
        }
    })
    .retry(
        ConstantBuilder::new()
            .with_delay(ms(100))
            .with_max_attempts(5)
            .build()
            .unwrap(),
    )
    .attempt_timeout(Duration::from_secs(2))
    .await
    .unwrap();
    assert_eq!(value, 3);
    assert_eq!(t0.elapsed(), ms(4200));
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_http_overrides_the_backoff_and_is_capped() {
    let headers = Arc::new(Mutex::new(vec!["7", "86400"].into_iter()));
    let gaps = {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&starts);
        let err = (move || {
            seen.lock().unwrap().push(Instant::now());
            async { Err::<(), u16>(503) }
        })
        .retry(
            presets::default()
                .without_jitter()
                .with_max_attempts(4)
                .build()
                .unwrap(),
        )
        .classify(move |status: &u16| {
            let header = headers.lock().unwrap().next();
            classify::http_status(*status, header)
        })
        .await
        .unwrap_err();
        assert_eq!(err.reason(), StopReason::Exhausted);
        let starts = starts.lock().unwrap();
        starts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    };
    // Retry-After 7 s, then 1 day cut to the 60 s cap, then no header: the
    // backoff's own third delay (400 ms).
    assert_eq!(
        gaps,
        [Duration::from_secs(7), Duration::from_secs(60), ms(400)]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_deadline_stops_at_once() {
    let t0 = Instant::now();
    let err = (|| async { Err::<(), u16>(429) })
        .retry(presets::default().build().unwrap())
        .classify(|_: &u16| Decision::RetryAfter(Duration::from_secs(30)))
        .deadline(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (StopReason::Deadline, 1));
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_stop_after_one_attempt_and_notify_sees_each_retry() {
    let mut notes = Vec::new();
    let mut calls = 0;
    let err = (|| {
        calls += 1;
        let n = calls;
        async move {
            Err::<(), _>(if n < 3 {
                "connection reset"
            } else {
                "404 not found"
            })
        }
    })
    .retry(
        ExponentialBuilder::new()
            .without_jitter()
            .with_max_attempts(10)
            .build()
            .unwrap(),
    )
    .classify(|e: &&str| classify::message(e).unwrap_or(Decision::Stop))
    .notify(|e: &&str, attempt, delay| notes.push((e.to_string(), attempt, delay)))
    .name("pull")
    .await
    .unwrap_err();
    assert_eq!(err.reason(), StopReason::Permanent);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.last_error(), Some(&"404 not found"));
    assert_eq!(
        notes,
        [
            ("connection reset".to_string(), 1, ms(100)),
            ("connection reset".to_string(), 2, ms(200)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn when_predicate_filters_errors() {
    let err = (|| async { Err::<(), i32>(7) })
        .retry(ConstantBuilder::new().build().unwrap())
        .when(|e: &i32| *e != 7)
        .await
        .unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (StopReason::Permanent, 1));
}

#[tokio::test(start_paused = true)]
async fn retried_future_is_send_and_runs_on_a_spawned_task() {
    let handle = tokio::spawn(
        (|| async { Ok::<_, std::io::Error>(5) })
            .retry(presets::network().build().unwrap())
            .classify(classify::io_error),
    );
    assert_eq!(handle.await.unwrap().unwrap(), 5);
}
