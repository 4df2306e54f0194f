//! Why a spec was rejected, with the file, line and column.

use std::fmt;

/// What kind of problem made a spec unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecErrorKind {
    /// The file could not be read.
    Io,
    /// The YAML is malformed, or a field, action or value is not allowed.
    Invalid,
    /// The service to run could not be chosen in a deployment file
    /// (unknown name, none or several with `init`, `--service` on a file
    /// that has no `services`).
    Service,
}

/// A spec that was rejected before anything ran.
///
/// Displays as `ORIGIN:LINE:COLUMN: MESSAGE` (or `ORIGIN: MESSAGE` when the
/// problem has no position), where ORIGIN is the file name given to the
/// loader.
///
/// ```
/// use rebound_init::spec::{Spec, SpecErrorKind};
///
/// let err = Spec::from_yaml("init:\n  stepz: []\n", "spec.yaml", None).unwrap_err();
/// assert_eq!(err.kind(), SpecErrorKind::Invalid);
/// assert_eq!(err.line(), Some(2));
/// assert!(err.to_string().starts_with("spec.yaml:2:3: "), "{err}");
/// ```
#[derive(Debug)]
pub struct SpecError {
    kind: SpecErrorKind,
    origin: String,
    position: Option<(usize, usize)>,
    message: String,
    source: Option<std::io::Error>,
}

impl SpecError {
    pub(crate) fn new(
        kind: SpecErrorKind,
        origin: &str,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            origin: origin.to_owned(),
            position,
            message: shortened_quotes(&message.into()),
            source: None,
        }
    }

    pub(crate) fn io(origin: &str, err: std::io::Error) -> Self {
        Self {
            kind: SpecErrorKind::Io,
            origin: origin.to_owned(),
            position: None,
            message: format!("cannot read the spec: {err}"),
            source: Some(err),
        }
    }

    /// Converts a YAML error into a spec error: its position becomes
    /// `ORIGIN:LINE:COLUMN`.
    pub(crate) fn from_yaml(origin: &str, err: &super::yaml::Error) -> Self {
        let position = err.mark().map(|m| (m.line(), m.column()));
        Self::new(
            SpecErrorKind::Invalid,
            origin,
            position,
            plain_out_of_range(&err.message()),
        )
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> SpecErrorKind {
        self.kind
    }

    /// The file (or name) the spec was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line of the problem, when it has one.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// The 1-based column of the problem, when it has one.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|(_, column)| column)
    }

    /// The problem without the origin and position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => {
                write!(f, "{}:{line}:{column}: {}", self.origin, self.message)
            }
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// How many characters of a quoted value a message keeps.
const QUOTED_CHARS: usize = 60;

/// `text` with every `"..."` longer than [`QUOTED_CHARS`] cut to that many
/// characters and `…`: a message quotes the offending value, which may be a
/// whole multi-megabyte scalar.
fn shortened_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1024));
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        // Inside a quoted value: copy up to QUOTED_CHARS, skip the rest.
        let mut kept = 0;
        let mut cut = false;
        while let Some(c) = chars.next() {
            let escaped = if c == '\\' { chars.next() } else { None };
            if c == '"' {
                if cut {
                    out.push('…');
                }
                out.push('"');
                break;
            }
            if kept < QUOTED_CHARS {
                out.push(c);
                out.extend(escaped);
                kept += 1;
            } else {
                cut = true;
            }
        }
    }
    out
}

/// serde reports an integer beyond 64 bits as "invalid type:
/// integer `N` as u128, expected X" (X may be "any YAML value" when the
/// number went through a generic value), which reads as a type error; this
/// says that the number is out of range, and what was expected if known.
fn plain_out_of_range(text: &str) -> String {
    const START: &str = "invalid type: integer `";
    let Some(start) = text.find(START) else {
        return text.to_owned();
    };
    let after = &text[start + START.len()..];
    for wide in ["` as u128, expected ", "` as i128, expected "] {
        if let Some(len) = after.find(wide) {
            let number = &after[..len];
            let expected = &after[len + wide.len()..];
            let hint = if expected == "any YAML value" {
                String::new()
            } else {
                format!(" (expected {expected})")
            };
            return format!("{}integer `{number}` is out of range{hint}", &text[..start]);
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_position() {
        let with = SpecError::new(SpecErrorKind::Invalid, "a.yaml", Some((3, 7)), "bad");
        assert_eq!(with.to_string(), "a.yaml:3:7: bad");
        let without = SpecError::new(SpecErrorKind::Service, "a.yaml", None, "no service");
        assert_eq!(without.to_string(), "a.yaml: no service");
        assert_eq!(without.line(), None);
    }

    #[test]
    fn long_quoted_values_are_cut() {
        let long = "a".repeat(5000);
        let err = SpecError::new(
            SpecErrorKind::Invalid,
            "x.yaml",
            Some((1, 1)),
            format!("invalid type: string \"{long}\", expected struct"),
        );
        assert_eq!(
            err.message(),
            format!(
                "invalid type: string \"{}…\", expected struct",
                "a".repeat(60)
            )
        );
        // Short values, escapes and several quotes are kept as they are.
        let text = r#"unknown action "init.nope" (a \"b\"), see "x""#;
        assert_eq!(shortened_quotes(text), text);
        // An unclosed quote loses nothing but the excess.
        assert_eq!(shortened_quotes("\"abc"), "\"abc");
    }

    #[test]
    fn an_integer_beyond_64_bits_is_called_out_of_range() {
        for (yaml, number) in [
            ("99999999999999999999", "99999999999999999999"),
            ("-99999999999999999999", "-99999999999999999999"),
        ] {
            let err = crate::spec::yaml::from_str::<u32>(yaml).unwrap_err();
            let spec = SpecError::from_yaml("x.yaml", &err);
            assert_eq!(
                spec.message(),
                format!("integer `{number}` is out of range (expected u32)"),
                "{yaml}"
            );
        }
        assert_eq!(
            plain_out_of_range(
                "init.steps[0].retry: invalid type: integer `1` as u128, expected any YAML value"
            ),
            "init.steps[0].retry: integer `1` is out of range"
        );
        assert_eq!(plain_out_of_range("other text"), "other text");
    }

    #[test]
    fn yaml_position_becomes_the_spec_position() {
        let err = crate::spec::yaml::from_str::<u16>("70000").unwrap_err();
        let spec = SpecError::from_yaml("x.yaml", &err);
        assert_eq!((spec.line(), spec.column()), (Some(1), Some(1)));
        assert_eq!(
            spec.to_string(),
            "x.yaml:1:1: invalid value: integer `70000`, expected u16"
        );
    }
}
