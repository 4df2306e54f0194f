//! What an answer must hold, shared by the waits that look at text:
//! a regular expression ([`Pattern`]), a header ([`HeaderMatch`]) and a
//! JSON value at a JSONPath ([`JsonMatch`]). Each is checked while the spec
//! is read, so a regular expression that does not compile or a JSONPath
//! that does not parse is refused at its file:line:column.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validate;

/// A regular expression (the `regex` crate's syntax), compiled when read.
///
/// ```
/// use rebound_init::actions::matchers::Pattern;
/// let p: Pattern = serde_json::from_str(r#""ready: (yes|true)""#).unwrap();
/// assert!(p.is_match("status\nready: yes\n"));
/// let err = serde_json::from_str::<Pattern>(r#""(unclosed""#).unwrap_err();
/// assert!(err.to_string().contains("invalid regular expression"), "{err}");
/// ```
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `text`; the error says where it is wrong.
    ///
    /// ```
    /// use rebound_init::actions::matchers::Pattern;
    /// assert!(Pattern::new("^ok$").unwrap().is_match("ok"));
    /// assert!(Pattern::new("a{2").is_err());
    /// ```
    pub fn new(text: &str) -> Result<Self, String> {
        regex::Regex::new(text)
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression {text:?}: {}", one_line(&e)))
    }

    /// Whether the expression matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The regex crate's error, which draws a caret under the offending part
/// over several lines, on one line: `error: unclosed group (at 0..9)`.
fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.as_str())
        .to_owned();
    // The line with the carets says where: its first `^` is the column.
    match text.lines().find(|l| l.trim_start().starts_with('^')) {
        Some(carets) => {
            let at = carets.find('^').unwrap_or(0).saturating_sub(4) + 1;
            format!("{reason} (at character {at})")
        }
        None => reason,
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        validate::checked_str(d, "a regular expression", Pattern::new)
    }
}

impl schemars::JsonSchema for Pattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Pattern".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "regex",
            "description": "A regular expression (Rust regex syntax); it matches anywhere unless anchored with ^ and $."
        })
    }
}

/// A header the answer must have: `name`, and optionally a value it must
/// equal or a regular expression its value must match.
///
/// ```
/// use rebound_init::actions::matchers::HeaderMatch;
/// let h: HeaderMatch =
///     serde_json::from_str(r#"{"name": "Content-Type", "matches": "^application/json"}"#).unwrap();
/// assert!(h.value_matches("application/json; charset=utf-8"));
/// let err = serde_json::from_str::<HeaderMatch>(r#"{"name": "Bad Name"}"#).unwrap_err();
/// assert!(err.to_string().contains("not a header name"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// The header's name (case does not matter).
    #[serde(deserialize_with = "header_name")]
    #[schemars(length(min = 1))]
    pub name: String,
    /// The value the header must have, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// A regular expression the header's value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Pattern>,
}

impl HeaderMatch {
    /// Whether `value` is as expected (any value is, when neither
    /// `equals` nor `matches` is set).
    pub fn value_matches(&self, value: &str) -> bool {
        self.equals.as_deref().is_none_or(|e| e == value)
            && self.matches.as_ref().is_none_or(|p| p.is_match(value))
    }
}

impl fmt::Display for HeaderMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "header {}", self.name)?;
        if let Some(v) = &self.equals {
            write!(f, " = {v:?}")?;
        }
        if let Some(p) = &self.matches {
            write!(f, " ~ /{p}/")?;
        }
        Ok(())
    }
}

/// A header name: one or more token characters (RFC 9110).
fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    validate::checked_str(d, "a header name", |s| {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if !s.is_empty() && s.bytes().all(token) {
            Ok(s.to_owned())
        } else {
            Err(format!("{s:?} is not a header name"))
        }
    })
}

/// A value the JSON body must hold: `path`, a JSONPath (RFC 9535; a path
/// that does not start with `$` is read after `$.`, so `status` and
/// `checks[0].state` work as written), and optionally the value a node
/// there must equal (without it, the path must select something).
///
/// ```
/// use rebound_init::actions::matchers::JsonMatch;
/// let m: JsonMatch = serde_json::from_str(r#"{"path": "status", "equals": "ok"}"#).unwrap();
/// assert_eq!(m.path, "status");
/// let err = serde_json::from_str::<JsonMatch>(r#"{"path": "$.[oops"}"#).unwrap_err();
/// assert!(err.to_string().contains("invalid JSONPath"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonMatch {
    /// A JSONPath (`$.checks[0].state`), or a member path written without
    /// its `$.` (`status`).
    #[serde(deserialize_with = "json_path")]
    #[schemars(length(min = 1))]
    pub path: String,
    /// The value (any JSON) a node at `path` must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
}

impl fmt::Display for JsonMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.equals {
            Some(v) => write!(f, "JSON {} = {v}", self.path),
            None => write!(f, "JSON {}", self.path),
        }
    }
}

/// The full JSONPath text of `path` (with `$.` put in front where it has
/// no `$`).
#[cfg(feature = "http")]
pub(crate) fn full_json_path(path: &str) -> String {
    if path.starts_with('$') {
        path.to_owned()
    } else {
        format!("$.{path}")
    }
}

fn json_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    validate::checked_str(d, "a JSONPath", |s| {
        if s.trim().is_empty() {
            return Err("`path` must not be empty".to_owned());
        }
        #[cfg(feature = "http")]
        serde_json_path::JsonPath::parse(&full_json_path(s))
            .map_err(|e| format!("invalid JSONPath {s:?}: {e}"))?;
        Ok(s.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_regex_says_where() {
        let err = Pattern::new("ok(").unwrap_err();
        assert_eq!(
            err,
            "invalid regular expression \"ok(\": unclosed group (at character 3)"
        );
    }

    #[test]
    fn header_values() {
        let h: HeaderMatch =
            serde_json::from_str(r#"{"name": "X-Ready", "equals": "yes"}"#).unwrap();
        assert!(h.value_matches("yes"));
        assert!(!h.value_matches("no"));
        assert_eq!(h.to_string(), "header X-Ready = \"yes\"");
    }

    #[cfg(feature = "http")]
    #[test]
    fn json_paths_parse_with_or_without_the_root() {
        for ok in ["status", "$.status", "checks[0].state", "$['a b']"] {
            serde_json::from_value::<JsonMatch>(serde_json::json!({ "path": ok }))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = serde_json::from_value::<JsonMatch>(serde_json::json!({ "path": "a..[" }))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid JSONPath \"a..[\""), "{err}");
    }
}
