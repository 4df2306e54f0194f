//! The step `timeout:` value: rebound's one duration grammar
//! ([`rebound_retry::duration`]: humantime text such as `250ms` or `1m30s`,
//! or a bare number meaning seconds, ZLayer's unit), and greater than zero.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};

/// A positive duration read from humantime text or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepTimeout(pub(crate) Duration);

impl<'de> serde::Deserialize<'de> for StepTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Validation happens inside the visitor so that the YAML
        // deserializer attaches the position of the scalar to the error.
        d.deserialize_any(TimeoutVisitor)
    }
}

/// The grammar on the value already read, then a check that the duration
/// is not zero.
struct TimeoutVisitor;

fn positive<E: de::Error>(d: Result<Duration, E>) -> Result<StepTimeout, E> {
    match d? {
        d if d.is_zero() => Err(E::custom("timeout must be greater than 0")),
        d => Ok(StepTimeout(d)),
    }
}

/// The one grammar, on a scalar the visitor was given.
fn grammar<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    rebound_retry::duration::serde::deserialize(d)
}

impl Visitor<'_> for TimeoutVisitor {
    type Value = StepTimeout;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\", \"5s\", \"1m30s\" or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StepTimeout, E> {
        positive(grammar(v.into_deserializer()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        crate::spec::yaml::from_str::<StepTimeout>(text)
            .map(|t| t.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn humantime_and_bare_seconds() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("'30'"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        // One grammar: a bare number is seconds, as text or as a number.
        assert_eq!(parse("30"), parse("30s"));
        assert_eq!(parse("'1.5'"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_negative_zero_and_garbage() {
        assert!(parse("-5").unwrap_err().contains("negative duration"));
        assert!(parse("-5s").unwrap_err().contains("negative duration"));
        assert!(parse("0").unwrap_err().contains("greater than 0"));
        assert!(parse("0s").unwrap_err().contains("greater than 0"));
        assert!(parse("0.0").unwrap_err().contains("greater than 0"));
        assert!(parse(".nan").unwrap_err().contains("is not a number"));
        assert!(
            parse("soon")
                .unwrap_err()
                .contains("invalid duration \"soon\"")
        );
    }
}
