//! The typed fields of the agent config (everything but `start` and
//! `probe`, which rebound-init reads): each checks its value inside its
//! visitor, so the node deserializer stamps an error with the value's
//! position.

use std::fmt;
use std::time::Duration;

use rebound_retry::duration::{self, DurationError};
use rebound_retry::{ExponentialBuilder, Jitter};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::super::addr::Addr;

/// `listen:` checked where it is written.
pub(super) struct ListenAddr(pub(super) Addr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(ListenAddr).map_err(de::Error::custom)
    }
}

/// A runtime name: used in URLs and metric labels, so kept plain.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RuntimeName(pub(super) String);

impl<'de> Deserialize<'de> for RuntimeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Err(de::Error::custom(format!(
                "runtime name `{name}` may only use letters, digits, `-`, `_` and `.`"
            )));
        }
        Ok(RuntimeName(name))
    }
}

pub(super) fn positive_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(PositiveDuration).map(Some)
}

/// A duration in rebound's one grammar ([`rebound_retry::duration`]:
/// humantime text or a number of seconds), above zero. The checks run
/// inside the visitor so that the YAML parser stamps errors with the
/// value's position.
struct PositiveDuration;

impl PositiveDuration {
    /// The grammar's verdict, then the zero check; a negative value is
    /// named as not above zero.
    fn check<E: de::Error>(d: Result<Duration, DurationError>) -> Result<Duration, E> {
        match d {
            Ok(d) if d.is_zero() => Err(E::custom("the duration must be above zero")),
            Ok(d) => Ok(d),
            Err(DurationError::Negative { text }) => Err(E::custom(format!(
                "the duration must be above zero, got {text}"
            ))),
            Err(e) => Err(E::custom(e)),
        }
    }
}

impl Visitor<'_> for PositiveDuration {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `90s`, `1m30s`, `250ms`, or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        Self::check(duration::parse(v))
    }

    // Integers are read as the bare numbers of seconds they are written as.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Self::check(duration::parse(&v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Self::check(duration::parse(&v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Duration, E> {
        Self::check(duration::parse(&v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Duration, E> {
        Self::check(duration::parse(&v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Self::check(duration::from_secs_f64(v))
    }
}

/// `backoff: { initial, max, multiplier, jitter }` after a failed start.
pub(super) struct Backoff(pub(super) rebound_retry::Exponential);

const BACKOFF_FIELDS: &[&str] = &["initial", "max", "multiplier", "jitter"];

impl<'de> Deserialize<'de> for Backoff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BackoffVisitor)
    }
}

struct BackoffVisitor;

#[derive(Deserialize)]
struct Seconds(#[serde(deserialize_with = "positive_duration")] Option<Duration>);

/// `multiplier:` checked where it is written: a finite number of at least
/// 1.
struct Multiplier(f64);

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Multiplier;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a multiplier: a number of at least 1")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Multiplier, E> {
                if !v.is_finite() || v < 1.0 {
                    return Err(E::custom(format!(
                        "multiplier must be a number of at least 1, got {v}"
                    )));
                }
                Ok(Multiplier(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Multiplier, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Multiplier, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Visitor<'de> for BackoffVisitor {
    type Value = Backoff;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with `initial`, `max`, `multiplier` and `jitter`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Backoff, A::Error> {
        let defaults = rebound_ensure::default_backoff();
        let mut initial = defaults.nominal(1);
        let mut max = defaults.nominal(u32::MAX);
        let mut multiplier = 2.0;
        let mut jitter = Jitter::Equal;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "initial" => initial = map.next_value::<Seconds>()?.0.unwrap_or(initial),
                "max" => max = map.next_value::<Seconds>()?.0.unwrap_or(max),
                "multiplier" => multiplier = map.next_value::<Multiplier>()?.0,
                // rebound's one jitter parser (`Jitter: FromStr`), whose
                // error lists the valid names.
                "jitter" => jitter = map.next_value::<Jitter>()?,
                other => return Err(de::Error::unknown_field(other, BACKOFF_FIELDS)),
            }
        }
        ExponentialBuilder::new()
            .with_initial_delay(initial)
            .with_max_delay(max)
            .with_multiplier(multiplier)
            .with_jitter(jitter)
            .forever()
            .build()
            .map(Backoff)
            .map_err(de::Error::custom)
    }
}
