//! A retry policy as data: what a spec file, a flag or an environment
//! variable says, checked, then built into a backoff.
//!
//! With the `serde` feature, [`PolicySpec`] reads a mapping (strict: an
//! unknown key is an error) whose durations follow the [duration
//! grammar](crate::duration):
//!
//! ```yaml
//! attempts: 5            # or "forever"; the first attempt included
//! backoff: exponential   # constant | exponential | fibonacci | decorrelated
//! initial: 200ms         # the first delay (constant: every delay)
//! max: 10s               # the cap (not for constant)
//! multiplier: 3          # exponential only
//! jitter: full           # none | full | equal | decorrelated (not for decorrelated backoff)
//! deadline: 1m           # whole call
//! attempt_timeout: 5s    # per attempt (async runner)
//! ```
//!
//! Every key is optional; the defaults are [`presets::default()`](crate::presets::default)'s
//! (3 attempts, exponential from 100 ms ×2 capped at 5 s, equal jitter, no
//! deadline, no attempt timeout).
//!
//! ```
//! use rebound_retry::{BlockingRetryable, PolicySpec};
//! # #[cfg(feature = "serde")] {
//! let spec: PolicySpec = serde_json::from_str(
//!     r#"{"attempts": 4, "backoff": "fibonacci", "initial": "1ms", "jitter": "none"}"#,
//! ).unwrap();
//! let mut slept = Vec::new();
//! let err = (|| Err::<(), _>("down"))
//!     .retry(spec.build().unwrap())
//!     .sleep(|d| slept.push(d.as_millis()))
//!     .call()
//!     .unwrap_err();
//! assert_eq!((err.attempts(), slept), (4, vec![1, 1, 2]));
//! # }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::backoff::{
    Constant, ConstantBuilder, DecorrelatedJitter, DecorrelatedJitterBuilder, Exponential,
    ExponentialBuilder, Fibonacci, FibonacciBuilder, Jitter, PolicyError,
};

/// The shape of the delays: `constant`, `exponential`, `fibonacci` or
/// `decorrelated` (AWS decorrelated jitter).
///
/// ```
/// use rebound_retry::BackoffKind;
/// assert_eq!("fibonacci".parse::<BackoffKind>()?, BackoffKind::Fibonacci);
/// assert_eq!(BackoffKind::Decorrelated.to_string(), "decorrelated");
/// # Ok::<(), rebound_retry::ParseBackoffKindError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackoffKind {
    /// The same delay every time ([`Constant`]).
    Constant,
    /// `initial × multiplier^(n-1)`, capped ([`Exponential`]).
    #[default]
    Exponential,
    /// Fibonacci growth, capped ([`Fibonacci`]).
    Fibonacci,
    /// AWS decorrelated jitter ([`DecorrelatedJitter`]).
    Decorrelated,
}

impl BackoffKind {
    /// Every kind, in the order of the names in error messages.
    ///
    /// ```
    /// assert_eq!(rebound_retry::BackoffKind::ALL.len(), 4);
    /// ```
    pub const ALL: [BackoffKind; 4] = [
        BackoffKind::Constant,
        BackoffKind::Exponential,
        BackoffKind::Fibonacci,
        BackoffKind::Decorrelated,
    ];

    /// The name of this kind, as [`FromStr`] reads it.
    ///
    /// ```
    /// assert_eq!(rebound_retry::BackoffKind::Constant.name(), "constant");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BackoffKind::Constant => "constant",
            BackoffKind::Exponential => "exponential",
            BackoffKind::Fibonacci => "fibonacci",
            BackoffKind::Decorrelated => "decorrelated",
        }
    }
}

impl fmt::Display for BackoffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backoff name that is none of `constant`, `exponential`, `fibonacci`,
/// `decorrelated`.
///
/// ```
/// let err = "linear".parse::<rebound_retry::BackoffKind>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown backoff \"linear\" (expected constant, exponential, fibonacci or decorrelated)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backoff {text:?} (expected constant, exponential, fibonacci or decorrelated)")]
#[non_exhaustive]
pub struct ParseBackoffKindError {
    /// The text as given.
    pub text: String,
}

/// ASCII case-insensitive, surrounding whitespace ignored.
///
/// ```
/// use rebound_retry::BackoffKind;
/// assert_eq!(" Constant".parse::<BackoffKind>()?, BackoffKind::Constant);
/// # Ok::<(), rebound_retry::ParseBackoffKindError>(())
/// ```
impl FromStr for BackoffKind {
    type Err = ParseBackoffKindError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        BackoffKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseBackoffKindError {
                text: text.to_owned(),
            })
    }
}

/// A retry policy as data; [`build`](Self::build) turns it into a backoff,
/// [`deadline`](Self::deadline) and [`attempt_timeout`](Self::attempt_timeout)
/// go to the runner. See the [module documentation](self) for the keys.
///
/// ```
/// use rebound_retry::{BackoffKind, Jitter, PolicySpec};
/// use std::time::Duration;
///
/// let mut spec = PolicySpec::default();
/// spec.backoff = BackoffKind::Constant;
/// spec.initial = Duration::from_millis(10);
/// spec.max = None;
/// spec.jitter = Some(Jitter::None);
/// let delays: Vec<Duration> = spec.build()?.collect();
/// assert_eq!(delays, [Duration::from_millis(10); 2]);
///
/// spec.multiplier = Some(3.0);
/// assert_eq!(spec.build().unwrap_err().to_string(),
///     "multiplier does not apply to constant backoff");
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PolicySpec {
    /// Total attempts, the first included; `None` for no limit (bound the
    /// call with a deadline). `Some(0)` is refused.
    pub attempts: Option<u32>,
    /// The shape of the delays.
    pub backoff: BackoffKind,
    /// The first delay (constant backoff: every delay; decorrelated: the
    /// base).
    pub initial: Duration,
    /// The cap on delays; `None` for the default (5 s). Not for constant
    /// backoff.
    pub max: Option<Duration>,
    /// The growth factor, finite and at least 1; `None` for 2. Exponential
    /// backoff only.
    pub multiplier: Option<f64>,
    /// The jitter; `None` for [`Jitter::Equal`] (decorrelated backoff is
    /// random by itself and takes none).
    pub jitter: Option<Jitter>,
    /// A deadline for the whole call.
    pub deadline: Option<Duration>,
    /// A timeout for each attempt (async runner).
    pub attempt_timeout: Option<Duration>,
}

/// The default cap on delays.
const DEFAULT_MAX: Duration = Duration::from_secs(5);
/// The default multiplier.
const DEFAULT_MULTIPLIER: f64 = 2.0;

impl Default for PolicySpec {
    /// [`presets::default()`](crate::presets::default)'s numbers.
    fn default() -> Self {
        Self {
            attempts: Some(3),
            backoff: BackoffKind::Exponential,
            initial: Duration::from_millis(100),
            max: None,
            multiplier: None,
            jitter: None,
            deadline: None,
            attempt_timeout: None,
        }
    }
}

impl PolicySpec {
    /// Checks every setting, and the settings against each other.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the setting: zero attempts, a multiplier
    /// below 1 or not finite, a cap below the first delay, a setting that
    /// does not apply to the backoff, a duration above
    /// [`duration::MAX`](crate::duration::MAX), a zero deadline or attempt
    /// timeout.
    ///
    /// ```
    /// use rebound_retry::PolicySpec;
    /// use std::time::Duration;
    /// let mut spec = PolicySpec::default();
    /// spec.attempt_timeout = Some(Duration::ZERO);
    /// assert_eq!(spec.validate().unwrap_err().setting(), "attempt_timeout");
    /// ```
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (setting, value) in [
            ("initial", Some(self.initial)),
            ("max", self.max),
            ("deadline", self.deadline),
            ("attempt_timeout", self.attempt_timeout),
        ] {
            match value {
                Some(v) if v > crate::duration::MAX => {
                    return Err(PolicyError::TooLarge { setting, value: v });
                }
                Some(v) if v.is_zero() && matches!(setting, "deadline" | "attempt_timeout") => {
                    return Err(PolicyError::Zero { setting });
                }
                _ => {}
            }
        }
        // The builders check the rest (multiplier, max below initial).
        self.build().map(drop)
    }

    /// Builds the backoff this spec describes.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    ///
    /// ```
    /// use rebound_retry::{BackoffKind, PolicySpec};
    /// let mut spec = PolicySpec::default();
    /// spec.backoff = BackoffKind::Decorrelated;
    /// assert_eq!(spec.build()?.count(), 2);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn build(&self) -> Result<AnyBackoff, PolicyError> {
        if self.attempts == Some(0) {
            return Err(PolicyError::ZeroAttempts);
        }
        let attempts = self.attempts.unwrap_or(1);
        let max = self.max.unwrap_or(DEFAULT_MAX.max(self.initial));
        let jitter = self.jitter.unwrap_or(Jitter::Equal);
        let forever = self.attempts.is_none();
        Ok(match self.backoff {
            BackoffKind::Constant => {
                if self.max.is_some() || self.multiplier.is_some() {
                    return Err(PolicyError::NotApplicable {
                        setting: if self.max.is_some() {
                            "max"
                        } else {
                            "multiplier"
                        },
                        backoff: self.backoff,
                    });
                }
                let b = ConstantBuilder::new()
                    .with_delay(self.initial)
                    .with_max_attempts(attempts)
                    .with_jitter(jitter);
                AnyBackoff::Constant(if forever { b.forever() } else { b }.build()?)
            }
            BackoffKind::Exponential => {
                let b = ExponentialBuilder::new()
                    .with_initial_delay(self.initial)
                    .with_max_delay(max)
                    .with_multiplier(self.multiplier.unwrap_or(DEFAULT_MULTIPLIER))
                    .with_max_attempts(attempts)
                    .with_jitter(jitter);
                AnyBackoff::Exponential(if forever { b.forever() } else { b }.build()?)
            }
            BackoffKind::Fibonacci => {
                self.refuse_multiplier()?;
                let b = FibonacciBuilder::new()
                    .with_initial_delay(self.initial)
                    .with_max_delay(max)
                    .with_max_attempts(attempts)
                    .with_jitter(jitter);
                AnyBackoff::Fibonacci(if forever { b.forever() } else { b }.build()?)
            }
            BackoffKind::Decorrelated => {
                self.refuse_multiplier()?;
                if self.jitter.is_some() {
                    return Err(PolicyError::NotApplicable {
                        setting: "jitter",
                        backoff: self.backoff,
                    });
                }
                let b = DecorrelatedJitterBuilder::new()
                    .with_base_delay(self.initial)
                    .with_max_delay(max)
                    .with_max_attempts(attempts);
                AnyBackoff::Decorrelated(if forever { b.forever() } else { b }.build()?)
            }
        })
    }

    fn refuse_multiplier(&self) -> Result<(), PolicyError> {
        match self.multiplier {
            Some(_) => Err(PolicyError::NotApplicable {
                setting: "multiplier",
                backoff: self.backoff,
            }),
            None => Ok(()),
        }
    }

    /// The whole-call deadline, for the runner's `.deadline(..)`.
    ///
    /// ```
    /// assert_eq!(rebound_retry::PolicySpec::default().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The per-attempt timeout, for the async runner's
    /// `.attempt_timeout(..)`.
    ///
    /// ```
    /// assert_eq!(rebound_retry::PolicySpec::default().attempt_timeout(), None);
    /// ```
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }
}

/// The backoff a [`PolicySpec`] builds: one of the four policies, as one
/// iterator type.
///
/// ```
/// use rebound_retry::{AnyBackoff, PolicySpec};
/// let b = PolicySpec::default().build()?;
/// assert!(matches!(b, AnyBackoff::Exponential(_)));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyBackoff {
    /// Constant delays.
    Constant(Constant),
    /// Exponential delays.
    Exponential(Exponential),
    /// Fibonacci delays.
    Fibonacci(Fibonacci),
    /// Decorrelated-jitter delays.
    Decorrelated(DecorrelatedJitter),
}

impl Iterator for AnyBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match self {
            AnyBackoff::Constant(b) => b.next(),
            AnyBackoff::Exponential(b) => b.next(),
            AnyBackoff::Fibonacci(b) => b.next(),
            AnyBackoff::Decorrelated(b) => b.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            AnyBackoff::Constant(b) => b.size_hint(),
            AnyBackoff::Exponential(b) => b.size_hint(),
            AnyBackoff::Fibonacci(b) => b.size_hint(),
            AnyBackoff::Decorrelated(b) => b.size_hint(),
        }
    }
}

#[cfg(feature = "serde")]
mod de {
    //! The raw mapping, checked into a [`PolicySpec`](super::PolicySpec).

    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, IntoDeserializer, Visitor};

    use super::{BackoffKind, PolicySpec};
    use crate::backoff::{Jitter, PolicyError};

    /// The keys as written; unknown keys are refused.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawSpec {
        #[serde(default)]
        attempts: Option<Attempts>,
        #[serde(default)]
        backoff: Option<BackoffKind>,
        #[serde(default, deserialize_with = "crate::duration::serde::option")]
        initial: Option<Duration>,
        #[serde(default, deserialize_with = "crate::duration::serde::option")]
        max: Option<Duration>,
        #[serde(default, deserialize_with = "multiplier")]
        multiplier: Option<f64>,
        #[serde(default)]
        jitter: Option<Jitter>,
        #[serde(default, deserialize_with = "deadline")]
        deadline: Option<Duration>,
        #[serde(default, deserialize_with = "attempt_timeout")]
        attempt_timeout: Option<Duration>,
    }

    // The settings that can be checked on their own are checked as they
    // are read, so that a format that tracks positions points at the value
    // (the checks against other settings run on the whole mapping).

    /// `multiplier`: finite and at least 1.
    fn multiplier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<f64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a multiplier: a finite number of at least 1")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
                if value.is_finite() && value >= 1.0 {
                    Ok(Some(value))
                } else {
                    Err(E::custom(PolicyError::InvalidMultiplier { value }))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_option(V)
    }

    /// `deadline`: a duration above zero.
    fn deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        positive(d, "deadline")
    }

    /// `attempt_timeout`: a duration above zero.
    fn attempt_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        positive(d, "attempt_timeout")
    }

    /// A duration in the grammar, above zero; the check runs inside the
    /// visitor, so the error is the value's.
    fn positive<'de, D: Deserializer<'de>>(
        d: D,
        setting: &'static str,
    ) -> Result<Option<Duration>, D::Error> {
        struct V(&'static str);
        impl V {
            fn check<E: de::Error>(&self, d: Result<Duration, E>) -> Result<Option<Duration>, E> {
                match d? {
                    d if d.is_zero() => Err(E::custom(PolicyError::Zero { setting: self.0 })),
                    d => Ok(Some(d)),
                }
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}: a duration above zero", self.0)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                self.check(grammar(v.into_deserializer()))
            }
        }
        d.deserialize_option(V(setting))
    }

    /// The duration grammar, on a value already read.
    fn grammar<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        crate::duration::serde::deserialize(d)
    }

    impl TryFrom<RawSpec> for PolicySpec {
        type Error = PolicyError;

        fn try_from(raw: RawSpec) -> Result<Self, PolicyError> {
            let defaults = PolicySpec::default();
            let spec = PolicySpec {
                attempts: raw.attempts.map_or(defaults.attempts, |a| a.0),
                backoff: raw.backoff.unwrap_or(defaults.backoff),
                initial: raw.initial.unwrap_or(defaults.initial),
                max: raw.max,
                multiplier: raw.multiplier,
                jitter: raw.jitter,
                deadline: raw.deadline,
                attempt_timeout: raw.attempt_timeout,
            };
            spec.validate()?;
            Ok(spec)
        }
    }

    /// Reads the mapping and checks it inside the visitor, so that a
    /// format that tracks positions reports the mapping's line and column
    /// for a setting that conflicts with another.
    impl<'de> serde::Deserialize<'de> for PolicySpec {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(SpecVisitor)
        }
    }

    struct SpecVisitor;

    impl<'de> Visitor<'de> for SpecVisitor {
        type Value = PolicySpec;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a retry policy (attempts, backoff, initial, max, multiplier, jitter, deadline, attempt_timeout)")
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<PolicySpec, A::Error> {
            let raw: RawSpec =
                serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
            PolicySpec::try_from(raw).map_err(de::Error::custom)
        }
    }

    /// `attempts`: a positive integer or `"forever"`.
    struct Attempts(Option<u32>);

    impl<'de> serde::Deserialize<'de> for Attempts {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(AttemptsVisitor)
        }
    }

    struct AttemptsVisitor;

    impl Visitor<'_> for AttemptsVisitor {
        type Value = Attempts;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of attempts of at least 1, or \"forever\"")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Attempts, E> {
            if v == 0 {
                return Err(E::custom(PolicyError::ZeroAttempts));
            }
            u32::try_from(v)
                .map(|n| Attempts(Some(n)))
                .map_err(|_| E::custom(format!("attempts {v} is too large (at most {})", u32::MAX)))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Attempts, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "attempts must be at least 1 (the count includes the first attempt), got {v}"
                ))),
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Attempts, E> {
            if v.trim().eq_ignore_ascii_case("forever") {
                Ok(Attempts(None))
            } else {
                Err(E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
    }

    impl<'de> serde::Deserialize<'de> for BackoffKind {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = BackoffKind;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a backoff: constant, exponential, fibonacci or decorrelated")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<BackoffKind, E> {
                    v.parse().map_err(E::custom)
                }
            }
            d.deserialize_str(V)
        }
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<PolicySpec, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_reads() {
        let spec = read(
            r#"{"attempts": 5, "backoff": "exponential", "initial": "200ms", "max": 10,
                "multiplier": 3, "jitter": "full", "deadline": "1m", "attempt_timeout": 2.5}"#,
        )
        .unwrap();
        assert_eq!(spec.attempts, Some(5));
        assert_eq!(spec.initial, Duration::from_millis(200));
        assert_eq!(spec.max, Some(Duration::from_secs(10)));
        assert_eq!(spec.multiplier, Some(3.0));
        assert_eq!(spec.jitter, Some(Jitter::Full));
        assert_eq!(spec.deadline(), Some(Duration::from_secs(60)));
        assert_eq!(spec.attempt_timeout(), Some(Duration::from_millis(2500)));
        assert_eq!(read("{}").unwrap(), PolicySpec::default());
        assert_eq!(read(r#"{"attempts": "forever"}"#).unwrap().attempts, None);
    }

    #[test]
    fn defaults_match_the_default_preset() {
        let from_spec: Vec<_> = read(r#"{"jitter": "none"}"#)
            .unwrap()
            .build()
            .unwrap()
            .collect();
        let preset: Vec<_> = crate::presets::default()
            .without_jitter()
            .build()
            .unwrap()
            .collect();
        assert_eq!(from_spec, preset);
    }

    #[test]
    fn bad_settings_are_errors_with_positions() {
        for (json, want) in [
            (r#"{"retries": 3}"#, "unknown field `retries`"),
            (r#"{"attempts": 0}"#, "max attempts must be at least 1"),
            (r#"{"attempts": -2}"#, "attempts must be at least 1"),
            (r#"{"attempts": "lots"}"#, "invalid value: string \"lots\""),
            (r#"{"backoff": "linear"}"#, "unknown backoff \"linear\""),
            (r#"{"jitter": "half"}"#, "unknown jitter \"half\""),
            (r#"{"initial": "-1s"}"#, "negative duration \"-1s\""),
            (r#"{"max": 1e300}"#, "is too large"),
            (
                r#"{"multiplier": 0.5}"#,
                "multiplier must be a finite number",
            ),
            (
                r#"{"backoff": "constant", "multiplier": 2}"#,
                "multiplier does not apply to constant backoff",
            ),
            (
                r#"{"backoff": "constant", "max": "1s"}"#,
                "max does not apply to constant backoff",
            ),
            (
                r#"{"backoff": "decorrelated", "jitter": "full"}"#,
                "jitter does not apply to decorrelated backoff",
            ),
            (
                r#"{"initial": "10s", "max": "1s"}"#,
                "max delay (1s) is below the initial delay (10s)",
            ),
            (r#"{"deadline": 0}"#, "deadline must be above zero"),
        ] {
            let err = read(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
            assert!(err.contains("line 1 column"), "{json}: {err}");
        }
    }

    #[test]
    fn a_setting_bad_on_its_own_is_reported_at_its_value() {
        // serde_json reports the position it reached: right after the bad
        // value, not at the end of the mapping.
        for (json, at) in [
            (r#"{"multiplier": 0.5, "initial": "1s", "max": "9s"}"#, 18),
            (r#"{"deadline": 0, "attempts": 4, "initial": "1s"}"#, 14),
            (r#"{"attempt_timeout": "0s", "attempts": 4}"#, 24),
        ] {
            let err = read(json).unwrap_err();
            assert!(
                err.ends_with(&format!("line 1 column {at}")),
                "{json}: {err}"
            );
        }
        // null still means "not set".
        let spec = read(r#"{"multiplier": null, "deadline": null}"#).unwrap();
        assert_eq!((spec.multiplier, spec.deadline), (None, None));
    }

    #[test]
    fn every_kind_builds() {
        for kind in BackoffKind::ALL {
            let json = format!(r#"{{"backoff": "{kind}", "attempts": 4}}"#);
            assert_eq!(read(&json).unwrap().build().unwrap().count(), 3, "{kind}");
        }
    }
}
