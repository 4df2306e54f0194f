//! The step `timeout:` value: humantime text (`250ms`, `1m30s`) or a bare
//! number meaning seconds (ZLayer's unit), parsed by
//! [`crate::actions::duration`], and greater than zero.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

use crate::actions::duration::DurationVisitor;

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

/// [`DurationVisitor`], then a check that the duration is not zero.
struct TimeoutVisitor;

fn positive<E: de::Error>(d: Duration) -> Result<StepTimeout, E> {
    if d.is_zero() {
        Err(E::custom("timeout must be greater than 0"))
    } else {
        Ok(StepTimeout(d))
    }
}

impl<'de> Visitor<'de> for TimeoutVisitor {
    type Value = StepTimeout;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DurationVisitor.expecting(f)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StepTimeout, E> {
        DurationVisitor.visit_u64(v).and_then(positive)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StepTimeout, E> {
        DurationVisitor.visit_i64(v).and_then(positive)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StepTimeout, E> {
        DurationVisitor.visit_f64(v).and_then(positive)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StepTimeout, E> {
        DurationVisitor.visit_str(v).and_then(positive)
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
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_negative_zero_and_garbage() {
        assert!(parse("-5").unwrap_err().contains("negative duration"));
        assert!(parse("-5s").unwrap_err().contains("negative duration"));
        assert!(parse("0").unwrap_err().contains("greater than 0"));
        assert!(parse("0s").unwrap_err().contains("greater than 0"));
        assert!(parse("0.0").unwrap_err().contains("greater than 0"));
        assert!(parse(".nan").unwrap_err().contains("not a finite number"));
        assert!(
            parse("soon")
                .unwrap_err()
                .contains("invalid duration \"soon\"")
        );
    }
}
