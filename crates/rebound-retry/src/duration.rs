//! The one duration grammar of rebound: every flag, spec field and
//! environment variable that takes a duration reads it with [`parse`].
//!
//! # Grammar
//!
//! - humantime text: `250ms`, `1.5s`, `1m30s`, `2h 15m`, `1day`; the units are
//!   humantime's (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`, `w`, `M`, `y` and their
//!   long names);
//! - a bare non-negative decimal number means **seconds**: `30` is 30 s,
//!   `1.5` is 1.5 s (at most nine decimal places: a nanosecond);
//! - surrounding whitespace is ignored;
//! - zero (`0`, `0s`) is allowed by [`parse`]; [`parse_positive`] refuses it,
//!   for settings where zero makes no sense (a timeout, a cool-down);
//! - refused, with a [`DurationError`] saying why: empty text, a negative
//!   value (`-5s`), `NaN`, infinity, and anything above [`MAX`] (about 136
//!   years), which could overflow a platform's clock when added to "now".
//!
//! ```
//! use rebound_retry::duration::{self, DurationError};
//! use std::time::Duration;
//!
//! assert_eq!(duration::parse("1m30s")?, Duration::from_secs(90));
//! assert_eq!(duration::parse("30")?, Duration::from_secs(30));
//! assert_eq!(duration::parse("0.25")?, Duration::from_millis(250));
//! assert!(matches!(duration::parse("-5s"), Err(DurationError::Negative { .. })));
//! assert!(matches!(duration::parse_positive("0s"), Err(DurationError::Zero { .. })));
//! # Ok::<(), DurationError>(())
//! ```

use std::time::Duration;

/// The largest duration accepted: 2³² − 1 seconds (about 136 years).
///
/// Adding it to any `Instant` of a running system fits every platform's
/// clock (Linux and macOS count ~292 and ~584 years, Windows ~29 000), so a
/// parsed duration can always be used as a deadline or a sleep.
///
/// ```
/// use rebound_retry::duration::{self, DurationError, MAX};
/// assert!(duration::parse("136years").is_ok());
/// assert!(matches!(duration::parse("137years"), Err(DurationError::TooLarge { .. })));
/// assert_eq!(MAX.as_secs(), u64::from(u32::MAX));
/// ```
pub const MAX: Duration = Duration::from_secs(u32::MAX as u64);

/// The grammar, for error messages.
const EXPECTED: &str = "expected e.g. 250ms, 5s, 1m30s or a number of seconds";

/// Why a duration text was refused. Every variant keeps the text as given.
///
/// ```
/// use rebound_retry::duration::{self, DurationError};
/// let err = duration::parse("5 parsecs").unwrap_err();
/// assert!(matches!(err, DurationError::Invalid { .. }));
/// assert!(err.to_string().contains("expected e.g. 250ms"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty (or only whitespace).
    #[error("empty duration ({EXPECTED})")]
    Empty,
    /// The value is negative.
    #[error("negative duration {text:?} (durations must be zero or more)")]
    Negative {
        /// The text as given.
        text: String,
    },
    /// The value is not a number (`NaN`).
    #[error("{text:?} is not a number ({EXPECTED})")]
    NotANumber {
        /// The text as given.
        text: String,
    },
    /// The value is above [`MAX`] (infinity included).
    #[error("duration {text:?} is too large (at most {} s, about 136 years)", MAX.as_secs())]
    TooLarge {
        /// The text as given.
        text: String,
    },
    /// Zero where a positive duration is needed ([`parse_positive`]).
    #[error("duration {text:?} must be above zero")]
    Zero {
        /// The text as given.
        text: String,
    },
    /// A bare number with more than nine decimal places (finer than a
    /// nanosecond).
    #[error("duration {text:?} is finer than a nanosecond (at most 9 decimal places)")]
    TooPrecise {
        /// The text as given.
        text: String,
    },
    /// Neither humantime text nor a number of seconds.
    #[error("invalid duration {text:?}: {reason} ({EXPECTED})")]
    Invalid {
        /// The text as given.
        text: String,
        /// What the parser disliked.
        reason: String,
    },
}

/// Parses a duration: humantime text or a bare number of seconds; zero is
/// allowed. See the [module documentation](self) for the grammar.
///
/// # Errors
///
/// A [`DurationError`] for empty, negative, `NaN`, too large (above
/// [`MAX`]) or malformed text.
///
/// ```
/// use rebound_retry::duration;
/// use std::time::Duration;
/// assert_eq!(duration::parse(" 250ms ")?, Duration::from_millis(250));
/// assert_eq!(duration::parse("2h 15m")?, Duration::from_secs(8100));
/// assert_eq!(duration::parse("0")?, Duration::ZERO);
/// assert!(duration::parse("NaN").is_err());
/// assert!(duration::parse("99999999999999999999").is_err());
/// # Ok::<(), duration::DurationError>(())
/// ```
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let owned = || text.to_owned();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Some(unsigned) = trimmed.strip_prefix('-') {
        // `-NaN` is still not a number.
        if is_nan_text(unsigned) {
            return Err(DurationError::NotANumber { text: owned() });
        }
        return Err(DurationError::Negative { text: owned() });
    }
    let parsed = match bare_seconds(trimmed) {
        Some(result) => result.map_err(|e| e.with_text(text))?,
        None => {
            if is_nan_text(trimmed) {
                return Err(DurationError::NotANumber { text: owned() });
            }
            let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
            if is_inf_text(unsigned) {
                return Err(DurationError::TooLarge { text: owned() });
            }
            humantime::parse_duration(trimmed).map_err(|e| match e {
                humantime::DurationError::NumberOverflow => {
                    DurationError::TooLarge { text: owned() }
                }
                other => DurationError::Invalid {
                    text: owned(),
                    reason: other.to_string(),
                },
            })?
        }
    };
    if parsed > MAX {
        return Err(DurationError::TooLarge { text: owned() });
    }
    Ok(parsed)
}

/// [`parse`], refusing zero: for timeouts, cool-downs and intervals, where
/// zero would mean "never wait" or "spin".
///
/// # Errors
///
/// Those of [`parse`], and [`DurationError::Zero`].
///
/// ```
/// use rebound_retry::duration;
/// use std::time::Duration;
/// assert_eq!(duration::parse_positive("1ns")?, Duration::from_nanos(1));
/// assert_eq!(
///     duration::parse_positive("0ms").unwrap_err().to_string(),
///     "duration \"0ms\" must be above zero"
/// );
/// # Ok::<(), duration::DurationError>(())
/// ```
pub fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(DurationError::Zero {
            text: text.to_owned(),
        });
    }
    Ok(d)
}

/// Checks a duration computed or deserialized from a number of seconds
/// against the grammar's limits (not above [`MAX`]).
///
/// # Errors
///
/// [`DurationError::TooLarge`] above [`MAX`], [`DurationError::Negative`],
/// [`DurationError::NotANumber`] for a negative or NaN `secs`.
///
/// ```
/// use rebound_retry::duration;
/// use std::time::Duration;
/// assert_eq!(duration::from_secs_f64(1.5)?, Duration::from_millis(1500));
/// assert!(duration::from_secs_f64(-1.0).is_err());
/// assert!(duration::from_secs_f64(f64::INFINITY).is_err());
/// # Ok::<(), duration::DurationError>(())
/// ```
pub fn from_secs_f64(secs: f64) -> Result<Duration, DurationError> {
    let text = || secs.to_string();
    if secs.is_nan() {
        return Err(DurationError::NotANumber { text: text() });
    }
    if secs < 0.0 {
        return Err(DurationError::Negative { text: text() });
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX => Ok(d),
        _ => Err(DurationError::TooLarge { text: text() }),
    }
}

impl DurationError {
    /// The same error about `text` (the inner helpers see trimmed text).
    fn with_text(self, text: &str) -> Self {
        let text = text.to_owned();
        match self {
            DurationError::Negative { .. } => DurationError::Negative { text },
            DurationError::NotANumber { .. } => DurationError::NotANumber { text },
            DurationError::TooLarge { .. } => DurationError::TooLarge { text },
            DurationError::Zero { .. } => DurationError::Zero { text },
            DurationError::TooPrecise { .. } => DurationError::TooPrecise { text },
            DurationError::Invalid { reason, .. } => DurationError::Invalid { text, reason },
            DurationError::Empty => DurationError::Empty,
        }
    }
}

fn is_nan_text(text: &str) -> bool {
    text.eq_ignore_ascii_case("nan")
}

fn is_inf_text(text: &str) -> bool {
    text.eq_ignore_ascii_case("inf") || text.eq_ignore_ascii_case("infinity")
}

/// A bare decimal number of seconds (`30`, `1.5`, `.5`, `2.`), exactly:
/// `None` when `text` is not of that form (humantime gets it), else the
/// duration or why it is refused.
fn bare_seconds(text: &str) -> Option<Result<Duration, DurationError>> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    let too_large = || DurationError::TooLarge {
        text: String::new(),
    };
    let secs = if int.is_empty() {
        0
    } else {
        match int.parse::<u64>() {
            Ok(s) => s,
            Err(_) => return Some(Err(too_large())),
        }
    };
    let frac = frac.unwrap_or("");
    if frac.len() > 9 {
        return Some(Err(DurationError::TooPrecise {
            text: String::new(),
        }));
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        // At most nine digits: fits u32, scaled to nanoseconds.
        let value: u32 = frac.parse().unwrap_or(0);
        value * 10u32.pow(9 - frac.len() as u32)
    };
    Some(Ok(Duration::new(secs, nanos)))
}

/// serde helpers (feature `serde`): read a field with the duration grammar
/// from text, or from a number of seconds (integer or float).
///
/// ```
/// use rebound_retry::duration;
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Probe {
///     #[serde(deserialize_with = "duration::serde::deserialize")]
///     interval: Duration,
///     #[serde(default, deserialize_with = "duration::serde::option")]
///     timeout: Option<Duration>,
/// }
/// let p: Probe = serde_json::from_str(r#"{"interval": "1m30s", "timeout": 2.5}"#).unwrap();
/// assert_eq!((p.interval, p.timeout), (Duration::from_secs(90), Some(Duration::from_millis(2500))));
/// let err = serde_json::from_str::<Probe>(r#"{"interval": "-5s"}"#).err().unwrap();
/// assert_eq!(err.to_string(), "negative duration \"-5s\" (durations must be zero or more) at line 1 column 18");
/// ```
#[cfg(feature = "serde")]
pub mod serde {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};

    use super::DurationError;

    /// Reads a duration: text in the grammar of [`parse`](super::parse), or
    /// a non-negative number of seconds.
    ///
    /// # Errors
    ///
    /// The deserializer's error, with the [`DurationError`] as its message.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut de = serde_json::Deserializer::from_str("\"250ms\"");
    /// let d = rebound_retry::duration::serde::deserialize(&mut de).unwrap();
    /// assert_eq!(d, Duration::from_millis(250));
    /// ```
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    /// Reads an optional duration (`null` or absent is `None`; pair it with
    /// `#[serde(default)]`).
    ///
    /// # Errors
    ///
    /// As [`deserialize`].
    ///
    /// ```
    /// let mut de = serde_json::Deserializer::from_str("null");
    /// assert_eq!(rebound_retry::duration::serde::option(&mut de).unwrap(), None);
    /// ```
    pub fn option<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    /// A [`Duration`] read with [`deserialize`], for use in generic code
    /// (`Vec<Text>`, map values).
    ///
    /// ```
    /// use rebound_retry::duration::serde::Text;
    /// let v: Vec<Text> = serde_json::from_str(r#"["1s", 2]"#).unwrap();
    /// assert_eq!(v[1].0.as_secs(), 2);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Text(pub Duration);

    impl<'de> serde::Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize(deserializer).map(Text)
        }
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"250ms\", \"5s\", \"1m30s\" or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            let d = Duration::from_secs(v);
            if d > super::MAX {
                return Err(E::custom(DurationError::TooLarge {
                    text: v.to_string(),
                }));
            }
            Ok(d)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(DurationError::Negative {
                    text: v.to_string(),
                })),
            }
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Duration, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(DurationError::TooLarge {
                    text: v.to_string(),
                })),
            }
        }

        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Duration, E> {
            match u128::try_from(v) {
                Ok(v) => self.visit_u128(v),
                Err(_) => Err(E::custom(DurationError::Negative {
                    text: v.to_string(),
                })),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            super::from_secs_f64(v).map_err(E::custom)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse(v).map_err(E::custom)
        }
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            DurationVisitor.expecting(f)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_and_bare_seconds() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("250ms", ms(250)),
            ("1.5s", ms(1500)),
            ("5 sec", ms(5000)),
            ("5s", ms(5000)),
            ("1m30s", ms(90_000)),
            ("30", ms(30_000)),
            ("1.5", ms(1500)),
            (".5", ms(500)),
            ("2.", ms(2000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("0.000000001", Duration::from_nanos(1)),
            (" 7s\n", ms(7000)),
            ("4294967295", MAX),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn refusals_say_why() {
        type Check = fn(&DurationError) -> bool;
        let cases: [(&str, Check); 13] = [
            ("", |e| matches!(e, DurationError::Empty)),
            ("   ", |e| matches!(e, DurationError::Empty)),
            ("-5s", |e| matches!(e, DurationError::Negative { .. })),
            ("-1", |e| matches!(e, DurationError::Negative { .. })),
            ("-0.5", |e| matches!(e, DurationError::Negative { .. })),
            ("NaN", |e| matches!(e, DurationError::NotANumber { .. })),
            ("-nan", |e| matches!(e, DurationError::NotANumber { .. })),
            ("inf", |e| matches!(e, DurationError::TooLarge { .. })),
            ("4294967296", |e| {
                matches!(e, DurationError::TooLarge { .. })
            }),
            ("99999999999999999999", |e| {
                matches!(e, DurationError::TooLarge { .. })
            }),
            ("999999999999999999999999h", |e| {
                matches!(e, DurationError::TooLarge { .. })
            }),
            ("0.0000000001", |e| {
                matches!(e, DurationError::TooPrecise { .. })
            }),
            ("5 parsecs", |e| matches!(e, DurationError::Invalid { .. })),
        ];
        for (text, is) in cases {
            let err = parse(text).unwrap_err();
            assert!(is(&err), "{text:?}: {err:?}");
            if !text.trim().is_empty() {
                assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
            }
        }
        assert_eq!(
            parse("-5s").unwrap_err().to_string(),
            "negative duration \"-5s\" (durations must be zero or more)"
        );
        assert_eq!(
            parse("1e9999").unwrap_err().to_string(),
            "invalid duration \"1e9999\": unknown time unit \"e\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (expected e.g. 250ms, 5s, 1m30s or a number of seconds)"
        );
    }

    #[test]
    fn positive_refuses_zero_only() {
        assert!(matches!(
            parse_positive("0"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_positive("-1s"),
            Err(DurationError::Negative { .. })
        ));
        assert_eq!(parse_positive("1ms"), Ok(Duration::from_millis(1)));
    }
}
