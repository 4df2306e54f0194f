//! Backoff policies: iterators of the delays to sleep before each retry.
//!
//! Every policy is built by a builder with `with_*` setters whose `build()`
//! rejects invalid settings with a [`PolicyError`]; after that, computing a
//! delay never panics and never exceeds the cap, for any attempt number.

/// The `with_*` setters of a builder, each one an entry
/// `name(argument: Type) => field = value;` after its doc comment (whose
/// examples name the builder): `pub fn name(mut self, argument: Type) ->
/// Self` that sets `field` to `value` and returns the builder.
macro_rules! setters {
    ($($(#[$attr:meta])* $name:ident($($arg:ident: $ty:ty)?) => $field:ident = $value:expr;)*) => {
        $(
            $(#[$attr])*
            pub fn $name(mut self, $($arg: $ty)?) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}

mod constant;
mod decorrelated;
mod error;
mod exponential;
mod fibonacci;
mod jitter;

use std::time::Duration;

pub use constant::{Constant, ConstantBuilder};
pub use decorrelated::{DecorrelatedJitter, DecorrelatedJitterBuilder};
pub use error::PolicyError;
pub use exponential::{Exponential, ExponentialBuilder};
pub use fibonacci::{Fibonacci, FibonacciBuilder};
pub use jitter::{Jitter, ParseJitterError};

/// Counts the delays a policy may still yield (attempts minus one) and
/// numbers them from 1.
#[derive(Debug, Clone)]
struct DelayCount {
    /// Delays left; `None` for no limit.
    left: Option<u32>,
    /// The retry number of the next delay (saturates at `u32::MAX`).
    next: u32,
}

impl DelayCount {
    fn new(max_attempts: Option<u32>) -> Self {
        Self {
            left: max_attempts.map(|n| n.saturating_sub(1)),
            next: 1,
        }
    }

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if let Some(left) = &mut self.left {
            *left = left.checked_sub(1)?;
        }
        let n = self.next;
        self.next = n.saturating_add(1);
        Some(n)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.left {
            Some(left) => {
                let left = usize::try_from(left).unwrap_or(usize::MAX);
                (left, Some(left))
            }
            None => (usize::MAX, None),
        }
    }
}

/// `base × factor`, capped at `cap`. `factor` is at least 1 (may be +inf).
/// Never panics or overflows; never above `cap`.
fn scale_capped(base: Duration, factor: f64, cap: Duration) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let nanos = (base.as_nanos() as f64 * factor).round();
    // NaN and infinity count as "at or above the cap".
    if nanos.is_nan() || nanos >= cap.as_nanos() as f64 {
        return cap;
    }
    // `nanos` is below the cap, so finite and non-negative; float-to-int
    // `as` casts saturate, so neither branch can overflow.
    let scaled = if nanos < u64::MAX as f64 {
        Duration::from_nanos(nanos as u64)
    } else {
        Duration::from_secs((nanos / 1e9) as u64)
    };
    // Float rounding of very long durations may land a hair below `base`;
    // the factor is at least 1, so `base` is a floor.
    scaled.max(base).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_count_yields_attempts_minus_one() {
        let mut c = DelayCount::new(Some(3));
        assert_eq!((c.next(), c.next(), c.next()), (Some(1), Some(2), None));
        let mut c = DelayCount::new(Some(1));
        assert_eq!(c.next(), None);
        let mut c = DelayCount::new(None);
        assert_eq!(c.size_hint(), (usize::MAX, None));
        assert_eq!(c.next(), Some(1));
    }

    #[test]
    fn scale_capped_is_exact_for_small_values_and_caps_large() {
        let ms = Duration::from_millis;
        assert_eq!(scale_capped(ms(100), 2.0, ms(5000)), ms(200));
        assert_eq!(scale_capped(ms(100), f64::INFINITY, ms(5000)), ms(5000));
        assert_eq!(scale_capped(ms(100), 1e300, Duration::MAX), Duration::MAX);
        assert_eq!(
            scale_capped(Duration::ZERO, f64::INFINITY, ms(1)),
            Duration::ZERO
        );
        let big = Duration::from_secs(u64::MAX / 4);
        assert!(scale_capped(big, 2.0, Duration::MAX) <= Duration::MAX);
    }
}
