//! Durations in specs: humantime text (`"250ms"`, `"1m30s"`) or a bare
//! number meaning seconds (ZLayer's unit for `with.timeout: 30`; `1.5` is
//! 1.5 s). This is rebound's one duration grammar,
//! [`rebound_retry::duration`]: the helpers here are thin wrappers over it,
//! with the JSON Schema and the humantime serializer specs need.
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
use std::time::Duration;

use serde::Deserializer;
use serde::Serializer;

/// Why a duration text was rejected: the error of rebound's one duration
/// grammar ([`rebound_retry::duration`]).
pub use rebound_retry::duration::DurationError;

/// Parses a duration with rebound's one grammar
/// ([`rebound_retry::duration::parse`]): humantime text (`"250ms"`,
/// `"1m30s"`) or a bare number of seconds (`"30"`, `"1.5"`); zero is
/// allowed, negative values and durations above
/// [`rebound_retry::duration::MAX`] are not.
///
/// ```
/// use std::time::Duration;
/// use rebound_init::actions::duration::parse;
///
/// assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse("30").unwrap(), parse("30s").unwrap());
/// assert!(parse("-5s").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    rebound_retry::duration::parse(text)
}

/// Deserializes a [`Duration`] from humantime text or a number of seconds
/// (integer or decimal), with [`parse`]'s grammar and limits.
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
/// let t: T = serde_json::from_str(r#"{"d": 2}"#).unwrap();
/// assert_eq!(t.d, Duration::from_secs(2));
/// ```
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    rebound_retry::duration::serde::deserialize(d)
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
        rebound_retry::duration::serde::option(d)
    }
}

/// The JSON Schema of a duration: a humantime string or a non-negative
/// number of seconds. Use as `#[schemars(with = "DurationSchema")]`.
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
/// assert_eq!(forms[1], serde_json::json!({ "type": "number", "minimum": 0 }));
/// ```
#[derive(Debug)]
pub struct DurationSchema;

impl schemars::JsonSchema for DurationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: humantime text (\"250ms\", \"5s\", \"1m30s\") or a number of seconds (\"30\", 30, 1.5).",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9.]" },
                { "type": "number", "minimum": 0 }
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
        assert!(matches!(parse("-1"), Err(DurationError::Negative { .. })));
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
            // The largest duration the grammar reads (about 136 years).
            rebound_retry::duration::MAX,
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
