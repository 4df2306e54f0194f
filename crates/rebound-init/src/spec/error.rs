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
            message: message.into(),
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

    /// Converts a YAML error into a spec error, moving its position out of
    /// the message into `ORIGIN:LINE:COLUMN`.
    pub(crate) fn from_yaml(origin: &str, err: &serde_norway::Error) -> Self {
        let text = err.to_string();
        match err.location() {
            Some(loc) => {
                let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
                Self::new(
                    SpecErrorKind::Invalid,
                    origin,
                    Some((loc.line(), loc.column())),
                    message,
                )
            }
            None => Self::new(SpecErrorKind::Invalid, origin, None, text),
        }
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
    fn yaml_position_moves_out_of_the_message() {
        let err = serde_norway::from_str::<u16>("70000").unwrap_err();
        let spec = SpecError::from_yaml("x.yaml", &err);
        assert_eq!(spec.line(), Some(1));
        assert!(!spec.message().contains(" at line "), "{}", spec.message());
    }
}
