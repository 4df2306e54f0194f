//! Jitter modes and the random draws they need.

use std::time::Duration;

/// How a nominal delay is randomised before it is slept.
///
/// Jitter spreads the retries of many callers that failed at the same moment,
/// so that they do not hit a recovering dependency in lock step.
///
/// ```
/// use rebound_retry::{ExponentialBuilder, Jitter};
/// # use std::time::Duration;
/// let backoff = ExponentialBuilder::new()
///     .with_jitter(Jitter::Equal)
///     .build()
///     .unwrap();
/// // Equal jitter keeps at least half of the nominal delay.
/// let d = backoff.sample(1);
/// assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The nominal delay, unchanged.
    None,
    /// Uniform in `[0, nominal]` (AWS "full jitter").
    Full,
    /// `nominal / 2` plus uniform in `[0, nominal / 2]` (AWS "equal jitter").
    /// The presets use this one.
    #[default]
    Equal,
    /// AWS "decorrelated jitter": each delay is uniform in
    /// `[initial, 3 × previous delay]`, capped. It needs the previous delay,
    /// so it only applies to iteration; stateless sampling falls back to
    /// [`Jitter::Full`].
    Decorrelated,
}

impl Jitter {
    /// Every jitter mode with its name, as [`FromStr`](std::str::FromStr)
    /// reads it and [`Display`](std::fmt::Display) writes it.
    ///
    /// ```
    /// use rebound_retry::Jitter;
    /// let names: Vec<&str> = Jitter::ALL.iter().map(|j| j.name()).collect();
    /// assert_eq!(names, ["none", "full", "equal", "decorrelated"]);
    /// ```
    pub const ALL: [Jitter; 4] = [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ];

    /// The name of this mode: `none`, `full`, `equal` or `decorrelated`.
    ///
    /// ```
    /// assert_eq!(rebound_retry::Jitter::Full.name(), "full");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
        }
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A jitter name that is not `none`, `full`, `equal` or `decorrelated`.
///
/// ```
/// use rebound_retry::Jitter;
/// let err = "fuzzy".parse::<Jitter>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown jitter \"fuzzy\" (expected none, full, equal or decorrelated)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown jitter {text:?} (expected none, full, equal or decorrelated)")]
#[non_exhaustive]
pub struct ParseJitterError {
    /// The text as given.
    pub text: String,
}

/// The one jitter parser of rebound: `none`, `full`, `equal` or
/// `decorrelated`, ASCII case-insensitive, surrounding whitespace ignored.
///
/// ```
/// use rebound_retry::Jitter;
/// assert_eq!("equal".parse::<Jitter>()?, Jitter::Equal);
/// assert_eq!(" Full ".parse::<Jitter>()?, Jitter::Full);
/// for j in Jitter::ALL {
///     assert_eq!(j.to_string().parse::<Jitter>()?, j);
/// }
/// # Ok::<(), rebound_retry::ParseJitterError>(())
/// ```
impl std::str::FromStr for Jitter {
    type Err = ParseJitterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        Jitter::ALL
            .into_iter()
            .find(|j| j.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseJitterError {
                text: text.to_owned(),
            })
    }
}

/// Reads a jitter name with [`FromStr`](std::str::FromStr) (feature `serde`).
///
/// ```
/// use rebound_retry::Jitter;
/// assert_eq!(serde_json::from_str::<Jitter>("\"full\"").unwrap(), Jitter::Full);
/// let err = serde_json::from_str::<Jitter>("\"half\"").unwrap_err();
/// assert!(err.to_string().starts_with("unknown jitter \"half\""), "{err}");
/// ```
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Jitter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Jitter;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a jitter: none, full, equal or decorrelated")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Jitter, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Jitter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Jitter {
    /// Applies this jitter to `nominal` without any state (decorrelated
    /// jitter falls back to full jitter). The result is never above `nominal`.
    #[inline]
    pub(crate) fn apply(self, nominal: Duration, rng: &mut fastrand::Rng) -> Duration {
        if self == Jitter::None {
            return nominal;
        }
        self.apply_random(nominal, rng)
    }

    /// The modes that draw a random number.
    fn apply_random(self, nominal: Duration, rng: &mut fastrand::Rng) -> Duration {
        match self {
            Jitter::None => nominal,
            Jitter::Full | Jitter::Decorrelated => between(rng, Duration::ZERO, nominal),
            Jitter::Equal => {
                let half = nominal / 2;
                half + between(rng, Duration::ZERO, nominal - half)
            }
        }
    }
}

/// The AWS decorrelated-jitter step: uniform in `[base, 3 × previous]`,
/// capped at `cap`; it becomes the new `previous`. Requires `base <= cap`;
/// the result is in `[base, cap]`.
pub(crate) fn decorrelated_step(
    rng: &mut fastrand::Rng,
    base: Duration,
    previous: &mut Duration,
    cap: Duration,
) -> Duration {
    let upper = previous.saturating_mul(3).max(base);
    *previous = between(rng, base, upper).min(cap);
    *previous
}

/// A uniform draw in `[lo, hi]` (`lo <= hi`). Never panics, never above `hi`.
pub(crate) fn between(rng: &mut fastrand::Rng, lo: Duration, hi: Duration) -> Duration {
    let Some(span) = hi.checked_sub(lo) else {
        return lo;
    };
    let span_nanos = span.as_nanos();
    let pick = match u64::try_from(span_nanos) {
        Ok(n) => Duration::from_nanos(rng.u64(0..=n)),
        // Spans above ~584 years: draw a fraction instead of a nanosecond.
        Err(_) => {
            let secs = span.as_secs_f64() * rng.f64();
            Duration::try_from_secs_f64(secs).map_or(span, |d| d.min(span))
        }
    };
    lo.checked_add(pick).map_or(hi, |d| d.min(hi))
}

/// A random generator: seeded when asked, else from the thread's generator.
/// Without jitter nothing is drawn, so the thread's generator is not touched
/// (a fixed seed costs nothing).
#[inline]
pub(crate) fn rng(seed: Option<u64>, jitter: Jitter) -> fastrand::Rng {
    match (seed, jitter) {
        (Some(seed), _) => fastrand::Rng::with_seed(seed),
        (None, Jitter::None) => fastrand::Rng::with_seed(0),
        (None, _) => fastrand::Rng::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_stays_in_bounds_even_for_huge_spans() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let d = between(&mut rng, Duration::from_millis(5), Duration::from_millis(9));
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(9));
            let d = between(&mut rng, Duration::ZERO, Duration::MAX);
            assert!(d <= Duration::MAX);
        }
        assert_eq!(
            between(&mut rng, Duration::from_secs(3), Duration::from_secs(1)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn equal_jitter_keeps_at_least_half() {
        let mut rng = fastrand::Rng::with_seed(1);
        let nominal = Duration::from_millis(101);
        for _ in 0..1000 {
            let d = Jitter::Equal.apply(nominal, &mut rng);
            assert!(d >= nominal / 2 && d <= nominal, "{d:?}");
        }
    }

    #[test]
    fn none_is_identity_and_full_never_exceeds_nominal() {
        let mut rng = fastrand::Rng::with_seed(2);
        let nominal = Duration::from_millis(40);
        assert_eq!(Jitter::None.apply(nominal, &mut rng), nominal);
        for _ in 0..1000 {
            assert!(Jitter::Full.apply(nominal, &mut rng) <= nominal);
            assert!(Jitter::Decorrelated.apply(nominal, &mut rng) <= nominal);
        }
    }

    #[test]
    fn decorrelated_step_is_between_base_and_cap() {
        let mut rng = fastrand::Rng::with_seed(3);
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(100);
        let mut prev = base;
        for _ in 0..1000 {
            decorrelated_step(&mut rng, base, &mut prev, cap);
            assert!(prev >= base && prev <= cap, "{prev:?}");
        }
    }
}
