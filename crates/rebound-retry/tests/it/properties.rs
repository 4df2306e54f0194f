//! Property tests: for every valid setting and every attempt number up to
//! `u32::MAX`, computing a delay never panics, never overflows and never
//! exceeds the cap; invalid settings are typed errors.

use std::time::Duration;

use proptest::prelude::*;
use rebound_retry::{
    ConstantBuilder, DecorrelatedJitterBuilder, ExponentialBuilder, FibonacciBuilder, Jitter,
    PolicyError,
};

/// Durations from zero to `Duration::MAX`, weighted towards realistic ones.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=600_000_000_000).prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::ZERO),
        Just(Duration::MAX),
    ]
}

/// An ordered pair `(initial, max)` with `initial <= max`.
fn initial_and_max() -> impl Strategy<Value = (Duration, Duration)> {
    (duration(), duration()).prop_map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
}

fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![1.0f64..=10.0, 1.0f64..=f64::MAX, Just(1.0), Just(f64::MAX),]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), 0u32..100, Just(u32::MAX), Just(u32::MAX - 1)]
}

proptest! {
    #[test]
    fn exponential_delays_never_exceed_the_cap(
        (initial, max) in initial_and_max(),
        m in multiplier(),
        j in jitter(),
        n in attempt(),
        seed in any::<u64>(),
    ) {
        let b = ExponentialBuilder::new()
            .with_initial_delay(initial)
            .with_max_delay(max)
            .with_multiplier(m)
            .with_jitter(j)
            .with_seed(seed)
            .forever()
            .build()
            .unwrap();
        let nominal = b.nominal(n);
        prop_assert!(nominal <= max);
        prop_assert!(nominal >= initial.min(max));
        // Non-decreasing in n.
        prop_assert!(b.nominal(n.saturating_add(1)) >= nominal);
        prop_assert!(b.sample(n) <= nominal);
        for d in b.take(64) {
            prop_assert!(d <= max);
        }
    }

    #[test]
    fn fibonacci_delays_never_exceed_the_cap(
        (initial, max) in initial_and_max(),
        j in jitter(),
        n in attempt(),
    ) {
        let b = FibonacciBuilder::new()
            .with_initial_delay(initial)
            .with_max_delay(max)
            .with_jitter(j)
            .forever()
            .build()
            .unwrap();
        let d = b.nominal(n);
        prop_assert!(d <= max && d >= initial.min(max));
        prop_assert!(b.nominal(n.saturating_add(1)) >= d);
        for d in b.take(64) {
            prop_assert!(d <= max);
        }
    }

    #[test]
    fn constant_and_decorrelated_stay_in_bounds(
        (base, max) in initial_and_max(),
        j in jitter(),
        seed in any::<u64>(),
    ) {
        let c = ConstantBuilder::new().with_delay(max).with_jitter(j).forever().build().unwrap();
        for d in c.take(32) {
            prop_assert!(d <= max);
        }
        let dj = DecorrelatedJitterBuilder::new()
            .with_base_delay(base)
            .with_max_delay(max)
            .with_seed(seed)
            .forever()
            .build()
            .unwrap();
        for d in dj.take(64) {
            prop_assert!(d >= base && d <= max);
        }
    }

    #[test]
    fn attempts_bound_the_number_of_delays(attempts in 1u32..200) {
        let b = ExponentialBuilder::new().with_max_attempts(attempts).build().unwrap();
        prop_assert_eq!(b.count(), usize::try_from(attempts - 1).unwrap());
    }

    #[test]
    fn invalid_multipliers_are_rejected(
        m in prop_oneof![
            -1e300f64..1.0,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ],
    ) {
        let err = ExponentialBuilder::new().with_multiplier(m).build().unwrap_err();
        prop_assert_eq!(err.setting(), "multiplier");
    }

    #[test]
    fn max_below_initial_is_rejected((a, b) in initial_and_max()) {
        prop_assume!(a < b);
        let err = ExponentialBuilder::new()
            .with_initial_delay(b)
            .with_max_delay(a)
            .build()
            .unwrap_err();
        prop_assert_eq!(err, PolicyError::MaxBelowInitial { initial: b, max: a });
    }
}
