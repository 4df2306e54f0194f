//! `expect_status` of `init.wait_http`: a code, a list, or a range.

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeInclusive;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Which HTTP status codes count as ready: `200`, `[200, 204]`,
/// `"200-299"`, `"2xx"` (default: 2xx).
///
/// ```
/// use rebound_init::actions::wait_http::StatusMatch;
/// let m: StatusMatch = serde_json::from_str(r#"["200-204", 301]"#).unwrap();
/// assert!(m.matches(204) && m.matches(301) && !m.matches(205));
/// assert!(StatusMatch::default().matches(299));
/// assert_eq!(StatusMatch::default().to_string(), "2xx");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMatch {
    ranges: Vec<RangeInclusive<u16>>,
}

impl Default for StatusMatch {
    fn default() -> Self {
        Self {
            ranges: vec![200..=299],
        }
    }
}

impl StatusMatch {
    /// Whether `status` is one of the expected codes.
    ///
    /// ```
    /// # use rebound_init::actions::wait_http::StatusMatch;
    /// let expect = StatusMatch::parse("200,204")?;
    /// assert!(expect.matches(204));
    /// assert!(!expect.matches(201));
    /// # Ok::<(), rebound_init::actions::wait_http::StatusMatchError>(())
    /// ```
    pub fn matches(&self, status: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(&status))
    }

    /// Parses one item: `"404"`, `"200-299"` or `"2xx"`.
    ///
    /// ```
    /// # use rebound_init::actions::wait_http::StatusMatch;
    /// assert!(StatusMatch::parse("3xx").unwrap().matches(302));
    /// assert!(StatusMatch::parse("299-200").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, StatusMatchError> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            ranges.push(parse_item(part.trim(), text)?);
        }
        Ok(Self { ranges })
    }
}

/// Why an `expect_status` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid expect_status {text:?}: {reason} (expected a code 100-599, a list, or a range like \"200-299\" or \"2xx\")"
)]
pub struct StatusMatchError {
    text: String,
    reason: String,
}

fn bad(text: &str, reason: impl Into<String>) -> StatusMatchError {
    StatusMatchError {
        text: text.to_owned(),
        reason: reason.into(),
    }
}

fn code(part: &str, whole: &str) -> Result<u16, StatusMatchError> {
    let n: u16 = part
        .trim()
        .parse()
        .map_err(|_| bad(whole, format!("{part:?} is not a status code")))?;
    if !(100..=599).contains(&n) {
        return Err(bad(whole, format!("{n} is outside 100-599")));
    }
    Ok(n)
}

fn parse_item(part: &str, whole: &str) -> Result<RangeInclusive<u16>, StatusMatchError> {
    if part.len() == 3 && part[1..].eq_ignore_ascii_case("xx") {
        let hundreds = code(&format!("{}00", &part[..1]), whole)?;
        return Ok(hundreds..=hundreds + 99);
    }
    if let Some((lo, hi)) = part.split_once('-') {
        let (lo, hi) = (code(lo, whole)?, code(hi, whole)?);
        if lo > hi {
            return Err(bad(whole, format!("range {lo}-{hi} is empty")));
        }
        return Ok(lo..=hi);
    }
    let n = code(part, whole)?;
    Ok(n..=n)
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let (lo, hi) = (*r.start(), *r.end());
            if lo == hi {
                write!(f, "{lo}")?;
            } else if lo % 100 == 0 && hi == lo + 99 {
                write!(f, "{}xx", lo / 100)?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for StatusMatch {
    /// As the text [`StatusMatch::parse`] reads back: `"2xx"`,
    /// `"200,204-206"`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusMatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code, a list of codes, or a range like \"200-299\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusMatch, E> {
                StatusMatch::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusMatch, E> {
                StatusMatch::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusMatch, E> {
                StatusMatch::parse(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusMatch, A::Error> {
                let mut ranges = Vec::new();
                while let Some(item) = seq.next_element::<StatusMatch>()? {
                    ranges.extend(item.ranges);
                }
                if ranges.is_empty() {
                    return Err(de::Error::custom("expect_status list must not be empty"));
                }
                Ok(StatusMatch { ranges })
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for StatusMatch {
    fn schema_name() -> Cow<'static, str> {
        "StatusMatch".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = serde_json::json!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^\\s*([1-5]([0-9]{2}|xx|XX))(\\s*-\\s*[1-5][0-9]{2})?(\\s*,\\s*([1-5]([0-9]{2}|xx|XX))(\\s*-\\s*[1-5][0-9]{2})?)*\\s*$" }
            ]
        });
        schemars::json_schema!({
            "description": "Expected HTTP status: a code (200), a list ([200, 204]) or a range (\"200-299\", \"2xx\"). Default 2xx.",
            "anyOf": [
                item.clone(),
                { "type": "array", "items": item, "minItems": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_display() {
        let m: StatusMatch = serde_json::from_str("204").unwrap();
        assert_eq!(m.to_string(), "204");
        let m: StatusMatch = serde_json::from_str(r#""200-204""#).unwrap();
        assert_eq!(m.to_string(), "200-204");
        let m: StatusMatch = serde_json::from_str(r#"[200, "3xx"]"#).unwrap();
        assert_eq!(m.to_string(), "200,3xx");
        assert!(m.matches(399) && !m.matches(400));
    }

    #[test]
    fn serializes_to_text_that_reads_back_equal() {
        for text in [
            r#""2xx""#,
            "204",
            r#"[200, "301-308", "5xx"]"#,
            r#""100-599""#,
        ] {
            let m: StatusMatch = serde_json::from_str(text).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            let back: StatusMatch = serde_json::from_str(&json).unwrap();
            assert_eq!(back, m, "{text} -> {json}");
        }
        assert_eq!(
            serde_json::to_string(&StatusMatch::parse("200,3xx").unwrap()).unwrap(),
            r#""200,3xx""#
        );
    }

    #[test]
    fn rejects_out_of_range_and_empty() {
        for bad in ["99", "600", r#""abc""#, "[]", r#""300-200""#] {
            let err = serde_json::from_str::<StatusMatch>(bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("expect_status") || err.contains("outside"),
                "{bad}: {err}"
            );
        }
    }
}
