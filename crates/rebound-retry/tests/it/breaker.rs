//! The circuit breaker: a property test of its state machine against a
//! model (manual clock), and the breaker with the blocking runner.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use rebound_retry::breaker::{ManualClock, StateChange, TripCause};
use rebound_retry::{
    BlockingRetryable, BreakerState, CircuitBreaker, ConstantBuilder, Decision, RetryBudget,
    StopReason,
};

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Success(usize),
    Failure(usize),
    Ignore(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Success),
        3 => any::<usize>().prop_map(Op::Failure),
        1 => any::<usize>().prop_map(Op::Ignore),
        2 => (0u64..3000).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Config {
    consecutive: Option<u32>,
    rate: Option<(f64, u32, u32)>,
    trials: u32,
}

fn config() -> impl Strategy<Value = Config> {
    let rate = (0u32..=4, 1u32..=8)
        .prop_flat_map(|(r, w)| (Just(f64::from(r) / 4.0), Just(w), 1..=w))
        .prop_map(|(r, w, m)| (r, w, m));
    (
        proptest::option::of(1u32..=5),
        proptest::option::of(rate),
        1u32..=4,
    )
        .prop_filter("a rule to open", |(c, r, _)| c.is_some() || r.is_some())
        .prop_map(|(consecutive, rate, trials)| Config {
            consecutive,
            rate,
            trials,
        })
}

/// What a permit was, by the state the breaker was in right after it was
/// given: a closed-state call or a trial of half-open period `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Closed,
    Trial(u32),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Never more than K trial calls out in one half-open period; never
    /// opens without the configured evidence (and always opens with it);
    /// always closes after K trial successes; a trial failure reopens.
    #[test]
    fn state_machine_follows_the_model(cfg in config(), ops in proptest::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new());
        let changes = Arc::new(Mutex::new(Vec::<StateChange>::new()));
        let log = Arc::clone(&changes);
        let mut builder = CircuitBreaker::builder()
            .with_trial_calls(cfg.trials)
            .with_cooldown(Duration::from_secs(1))
            .with_max_cooldown(Duration::from_secs(8))
            .with_clock(clock.clone())
            .on_state_change(move |c| log.lock().unwrap().push(c.clone()));
        builder = match cfg.consecutive {
            Some(n) => builder.with_consecutive_failures(n),
            None => builder.without_consecutive_failures(),
        };
        if let Some((rate, window, min)) = cfg.rate {
            builder = builder.with_failure_rate(rate, window, min);
        }
        let breaker = builder.build().unwrap();

        // The model.
        let mut consecutive = 0u32;
        let mut window = VecDeque::<bool>::new();
        let mut period = 0u32;
        let mut trials_out = 0u32;
        let mut trial_successes = 0u32;
        let mut permits = Vec::new();

        for op in ops {
            let before = breaker.state();
            match op {
                Op::Acquire => match breaker.try_acquire() {
                    Ok(p) => {
                        let kind = match breaker.state() {
                            BreakerState::Closed => Kind::Closed,
                            BreakerState::HalfOpen => {
                                if before != BreakerState::HalfOpen {
                                    period += 1;
                                    trials_out = 0;
                                    trial_successes = 0;
                                }
                                trials_out += 1;
                                prop_assert!(trials_out <= cfg.trials, "{} trials out, K = {}", trials_out, cfg.trials);
                                Kind::Trial(period)
                            }
                            other => {
                                return Err(TestCaseError::fail(format!("a permit from a {other} breaker")));
                            }
                        };
                        permits.push((p, kind));
                    }
                    Err(open) => {
                        prop_assert_ne!(before, BreakerState::Closed);
                        match open.state() {
                            BreakerState::Open => {
                                let left = open.retry_in().unwrap();
                                prop_assert!(left > Duration::ZERO && left <= Duration::from_secs(8));
                            }
                            BreakerState::HalfOpen => {
                                prop_assert_eq!(trials_out, cfg.trials);
                                prop_assert_eq!(open.retry_in(), None);
                            }
                            other => return Err(TestCaseError::fail(format!("rejected while {other}"))),
                        }
                    }
                },
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::Success(i) | Op::Failure(i) | Op::Ignore(i) => {
                    if permits.is_empty() {
                        continue;
                    }
                    let (permit, kind) = permits.swap_remove(i % permits.len());
                    let changes_before = changes.lock().unwrap().len();
                    match (&op, kind) {
                        (Op::Success(_), _) => permit.success(),
                        (Op::Failure(_), _) => permit.failure(),
                        _ => permit.ignore(),
                    }
                    let after = breaker.state();
                    let new_changes: Vec<StateChange> = changes.lock().unwrap()[changes_before..].to_vec();
                    match kind {
                        Kind::Closed if before == BreakerState::Closed => {
                            match op {
                                Op::Success(_) => { consecutive = 0; push(&mut window, cfg, false); }
                                Op::Failure(_) => { consecutive += 1; push(&mut window, cfg, true); }
                                _ => {}
                            }
                            let by_count = cfg.consecutive.is_some_and(|n| consecutive >= n);
                            let by_rate = cfg.rate.is_some_and(|(rate, _, min)| {
                                let fails = window.iter().filter(|f| **f).count() as f64;
                                window.len() as u32 >= min && fails > rate * window.len() as f64
                            });
                            if matches!(op, Op::Failure(_)) && (by_count || by_rate) {
                                prop_assert_eq!(after, BreakerState::Open);
                                let cause = new_changes[0].cause.unwrap();
                                match cause {
                                    TripCause::ConsecutiveFailures { failures } => {
                                        prop_assert!(by_count);
                                        prop_assert_eq!(failures, consecutive);
                                    }
                                    TripCause::FailureRate { .. } => prop_assert!(by_rate),
                                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                                }
                                consecutive = 0;
                                window.clear();
                            } else {
                                prop_assert_eq!(after, BreakerState::Closed, "opened without evidence");
                                prop_assert!(new_changes.is_empty());
                            }
                        }
                        Kind::Trial(p) if p == period && before == BreakerState::HalfOpen => {
                            match op {
                                Op::Success(_) => {
                                    trial_successes += 1;
                                    if trial_successes == cfg.trials {
                                        prop_assert_eq!(after, BreakerState::Closed);
                                        trials_out = 0;
                                    } else {
                                        prop_assert_eq!(after, BreakerState::HalfOpen);
                                    }
                                }
                                Op::Failure(_) => {
                                    prop_assert_eq!(after, BreakerState::Open);
                                    prop_assert_eq!(new_changes[0].cause, Some(TripCause::TrialFailed));
                                }
                                _ => {
                                    prop_assert_eq!(after, BreakerState::HalfOpen);
                                    trials_out -= 1;
                                }
                            }
                        }
                        // A late outcome of an old call changes nothing.
                        _ => {
                            prop_assert_eq!(after, before);
                            prop_assert!(new_changes.is_empty());
                        }
                    }
                }
            }
        }
    }
}

fn push(window: &mut VecDeque<bool>, cfg: Config, failed: bool) {
    if let Some((_, size, _)) = cfg.rate {
        if window.len() == size as usize {
            window.pop_front();
        }
        window.push_back(failed);
    }
}

fn zero_delays(attempts: u32) -> rebound_retry::Constant {
    ConstantBuilder::new()
        .with_delay(Duration::ZERO)
        .with_max_attempts(attempts)
        .build()
        .unwrap()
}

#[test]
fn a_rejected_call_does_not_consume_retry_budget() {
    let breaker = CircuitBreaker::builder()
        .with_consecutive_failures(2)
        .build()
        .unwrap();
    let budget = Arc::new(RetryBudget::new(10, 0.1).unwrap());
    let err = (|| Err::<(), _>("down"))
        .retry(zero_delays(10))
        .breaker(&breaker)
        .budget(Arc::clone(&budget))
        .call()
        .unwrap_err();
    // Two failures: the first is a retry (one token), the second opens the
    // breaker and stops the call before the budget is charged again.
    assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 2));
    assert_eq!(budget.tokens(), 9.0);
    let mut calls = 0;
    for _ in 0..100 {
        let err = (|| {
            calls += 1;
            Err::<(), _>("down")
        })
        .retry(zero_delays(10))
        .breaker(&breaker)
        .budget(Arc::clone(&budget))
        .call()
        .unwrap_err();
        assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 0));
        assert_eq!(err.last_error(), None);
        assert!(err.breaker_rejection().unwrap().retry_in().is_some());
    }
    assert_eq!(calls, 0, "an open breaker makes no attempt");
    assert_eq!(budget.tokens(), 9.0, "rejections are free");
}

#[test]
fn permanent_errors_do_not_trip_unless_counted() {
    let run = |breaker: &CircuitBreaker| {
        for _ in 0..5 {
            let err = (|| Err::<(), _>(404))
                .retry(zero_delays(3))
                .classify(|_: &i32| Decision::Stop)
                .breaker(breaker)
                .call()
                .unwrap_err();
            if err.reason() == StopReason::BreakerOpen {
                return true;
            }
            assert_eq!(err.reason(), StopReason::Permanent);
        }
        false
    };
    let lenient = CircuitBreaker::builder()
        .with_consecutive_failures(2)
        .build()
        .unwrap();
    assert!(!run(&lenient));
    assert_eq!(lenient.state(), BreakerState::Closed);
    let strict = CircuitBreaker::builder()
        .with_consecutive_failures(2)
        .with_permanent_errors_counted(true)
        .build()
        .unwrap();
    assert!(run(&strict));
    assert_eq!(strict.state(), BreakerState::Open);
}

#[test]
fn half_open_trial_through_the_runner_closes_the_breaker() {
    let clock = Arc::new(ManualClock::new());
    let breaker = CircuitBreaker::builder()
        .with_consecutive_failures(1)
        .with_cooldown(Duration::from_secs(5))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let _ = (|| Err::<(), _>("down"))
        .retry(zero_delays(3))
        .breaker(&breaker)
        .call();
    assert_eq!(breaker.state(), BreakerState::Open);
    clock.advance(Duration::from_secs(5));
    let mut calls = 0;
    let out = (|| {
        calls += 1;
        Ok::<_, &str>(calls)
    })
    .retry(zero_delays(3))
    .breaker(&breaker)
    .call();
    assert_eq!(out, Ok(1));
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn error_display_says_when_to_try_again() {
    let breaker = CircuitBreaker::builder()
        .with_consecutive_failures(1)
        .with_cooldown(Duration::from_secs(30))
        .with_name("registry")
        .with_clock(Arc::new(ManualClock::new()))
        .build()
        .unwrap();
    let _ = (|| Err::<(), _>(()))
        .retry(zero_delays(1))
        .breaker(&breaker)
        .call();
    let err = (|| Ok::<_, ()>(()))
        .retry(zero_delays(1))
        .name("pull")
        .breaker(&breaker)
        .call()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pull: circuit breaker open after 0 attempts (circuit breaker registry is open: try again in 30s)"
    );
}

#[test]
fn blocking_elapsed_counts_from_the_first_failure_without_a_deadline() {
    // The first attempt runs before the clock is read; the rest is counted.
    let mut calls = 0;
    let err = (|| {
        calls += 1;
        if calls == 2 {
            // The second attempt takes at least 20 ms of real time (not a
            // backoff: the runner's delays here are zero).
            let until = std::time::Instant::now() + Duration::from_millis(20);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        Err::<(), _>(())
    })
    .retry(zero_delays(3))
    .call()
    .unwrap_err();
    assert!(
        err.elapsed() >= Duration::from_millis(20),
        "{:?}",
        err.elapsed()
    );
}
