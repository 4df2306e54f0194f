//! Durations in specs: humantime text (`"250ms"`, `"1m30s"`) or a bare
//! integer meaning seconds (ZLayer's unit for `with.timeout: 30`).
//!
//! Use with serde's `deserialize_with` and schemars' `with`:
//!
//! ```
//! use std::time::Duration;
//! use rebound_init::actions::duration;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Step {
//!     #[serde(deserialize_with = "duration::deserialize")]
//!     #[schemars(with = "duration::DurationSchema")]
//!     timeout: Duration,
//!     #[serde(default, deserialize_with = "duration::option::deserialize")]
//!     #[schemars(with = "Option<duration::DurationSchema>")]
//!     grace: Option<Duration>,
//! }
//!
//! let step: Step = serde_json::from_str(r#"{"timeout": "1m30s", "grace": 5}"#).unwrap();
//! assert_eq!(step.timeout, Duration::from_secs(90));
//! assert_eq!(step.grace, Some(Duration::from_secs(5)));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// Why a duration text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration (expected e.g. \"250ms\", \"5s\", \"1m30s\" or a number of seconds)")]
    Empty,
    /// The value is negative.
    #[error("negative duration {0:?} (durations must be zero or more)")]
    Negative(String),
    /// The text is not humantime and not a number of seconds.
    #[error(
        "invalid duration {text:?}: {reason} (expected e.g. \"250ms\", \"5s\", \"1m30s\" or a number of seconds)"
    )]
    Invalid {
        /// The text as given.
        text: String,
        /// What the parser disliked.
        reason: String,
    },
}

/// Parses humantime text (`"250ms"`, `"1m30s"`) or a bare number of seconds
/// (`"30"`).
///
/// ```
/// use std::time::Duration;
/// use rebound_init::actions::duration::parse;
///
/// assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
/// assert!(parse("-5s").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative(text.to_owned()));
    }
    if let Ok(secs) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(trimmed).map_err(|e| DurationError::Invalid {
        text: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads a duration from humantime text or a number of seconds (also
/// behind the step `timeout:`, which adds its own check).
pub(crate) struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\", \"5s\", \"1m30s\" or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(DurationError::Negative(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        if v.is_nan() || v.is_infinite() {
            return Err(E::custom(DurationError::Invalid {
                text: v.to_string(),
                reason: "not a finite number".into(),
            }));
        }
        if v < 0.0 {
            return Err(E::custom(DurationError::Negative(v.to_string())));
        }
        Duration::try_from_secs_f64(v).map_err(|e| {
            E::custom(DurationError::Invalid {
                text: v.to_string(),
                reason: e.to_string(),
            })
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

/// Deserializes a [`Duration`] from humantime text or a number of seconds.
///
/// ```
/// # use std::time::Duration;
/// #[derive(serde::Deserialize)]
/// struct T {
///     #[serde(deserialize_with = "rebound_init::actions::duration::deserialize")]
///     d: Duration,
/// }
/// let t: T = serde_json::from_str(r#"{"d": "2s"}"#).unwrap();
/// assert_eq!(t.d, Duration::from_secs(2));
/// ```
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Serializes a [`Duration`] as humantime text (`"1m 30s"`, `"250ms"`),
/// which [`deserialize`] reads back to the same duration, to the
/// nanosecond.
///
/// ```
/// # use std::time::Duration;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct T {
///     #[serde(
///         serialize_with = "rebound_init::actions::duration::serialize",
///         deserialize_with = "rebound_init::actions::duration::deserialize"
///     )]
///     d: Duration,
/// }
/// let text = serde_json::to_string(&T { d: Duration::from_millis(90_250) }).unwrap();
/// assert_eq!(text, r#"{"d":"1m 30s 250ms"}"#);
/// let back: T = serde_json::from_str(&text).unwrap();
/// assert_eq!(back.d, Duration::from_millis(90_250));
/// ```
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// The same for an optional field (use with `#[serde(default)]`).
pub mod option {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Serializes `Option<Duration>`: `None` as null, a duration as
    /// humantime text (pair with `skip_serializing_if = "Option::is_none"`
    /// to leave the field out instead).
    ///
    /// ```
    /// # use std::time::Duration;
    /// #[derive(serde::Serialize)]
    /// struct T {
    ///     #[serde(serialize_with = "rebound_init::actions::duration::option::serialize")]
    ///     d: Option<Duration>,
    /// }
    /// let text = serde_json::to_string(&T { d: Some(Duration::from_secs(5)) }).unwrap();
    /// assert_eq!(text, r#"{"d":"5s"}"#);
    /// assert_eq!(serde_json::to_string(&T { d: None }).unwrap(), r#"{"d":null}"#);
    /// ```
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes `Option<Duration>`: null/absent is `None`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// #[derive(serde::Deserialize)]
    /// struct T {
    ///     #[serde(default, deserialize_with = "rebound_init::actions::duration::option::deserialize")]
    ///     d: Option<Duration>,
    /// }
    /// let t: T = serde_json::from_str(r#"{"d": "250ms"}"#).unwrap();
    /// assert_eq!(t.d, Some(Duration::from_millis(250)));
    /// let t: T = serde_json::from_str("{}").unwrap();
    /// assert_eq!(t.d, None);
    /// ```
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrap(#[serde(deserialize_with = "super::deserialize")] Duration);
        let v: Option<Wrap> = serde::Deserialize::deserialize(d)?;
        Ok(v.map(|Wrap(d)| d))
    }
}

/// The JSON Schema of a duration: a humantime string or a non-negative
/// integer of seconds. Use as `#[schemars(with = "DurationSchema")]`.
///
/// ```
/// use std::time::Duration;
/// use rebound_init::actions::duration::{self, DurationSchema};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Probe {
///     #[serde(deserialize_with = "duration::deserialize")]
///     #[schemars(with = "DurationSchema")]
///     every: Duration,
/// }
/// let schema = serde_json::to_value(schemars::schema_for!(Probe)).unwrap();
/// assert_eq!(schema["properties"]["every"]["$ref"], "#/$defs/Duration");
/// let forms = &schema["$defs"]["Duration"]["anyOf"];
/// assert_eq!(forms[1], serde_json::json!({ "type": "integer", "minimum": 0 }));
/// ```
#[derive(Debug)]
pub struct DurationSchema;

impl schemars::JsonSchema for DurationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: humantime text (\"250ms\", \"5s\", \"1m30s\") or a whole number of seconds.",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_seconds() {
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse(" 7 ").unwrap(), Duration::from_secs(7));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("-1"), Err(DurationError::Negative(_))));
        let err = parse("soon").unwrap_err().to_string();
        assert!(err.contains("\"soon\""), "{err}");
    }

    #[test]
    fn serialized_text_reads_back_to_the_same_duration() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct T {
            #[serde(serialize_with = "serialize", deserialize_with = "deserialize")]
            d: Duration,
        }
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::new(90_061, 123_456_789),
            Duration::from_secs(400 * 24 * 3600),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            let text = serde_json::to_string(&T { d }).unwrap();
            let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back.d, d, "{text}");
        }
    }

    #[test]
    fn deserializes_numbers_and_rejects_negative() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            #[serde(deserialize_with = "deserialize")]
            d: Duration,
        }
        let t: T = serde_json::from_str(r#"{"d": 30}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(30));
        let t: T = serde_json::from_str(r#"{"d": 0.5}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(500));
        let err = serde_json::from_str::<T>(r#"{"d": -3}"#).unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }
}
