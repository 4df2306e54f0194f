//! Why a YAML text was refused, with its position.

use std::fmt;

use super::{MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH, Mark};

/// What kind of problem a YAML [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not YAML (the parser's own message).
    Syntax,
    /// The text is larger than [`MAX_BYTES`](super::MAX_BYTES).
    TooLarge,
    /// Collections nest deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// A mapping has the same key twice.
    DuplicateKey,
    /// Alias expansion would add more than
    /// [`MAX_ALIAS_NODES`](super::MAX_ALIAS_NODES) nodes.
    TooManyAliasNodes,
    /// The text holds more than one document.
    MoreThanOneDocument,
    /// The bytes are not UTF-8.
    NotUtf8,
    /// A tag this reader does not interpret (`!custom`).
    UnsupportedTag,
    /// The YAML is fine but a value is not what the reader expects
    /// (unknown field, wrong type, out of range ...).
    Invalid,
}

/// A YAML text or value that was refused.
///
/// Displays as `LINE:COLUMN: MESSAGE` when the problem has a place (every
/// problem found in a non-empty text does), where MESSAGE starts with the
/// dotted path of the value (`init.steps[0].with.port: ...`) for an error
/// found while deserializing.
///
/// ```
/// use rebound_init::spec::yaml::{Document, ErrorKind, from_node};
/// let doc = Document::parse("limits:\n  cpu: many\n")?;
/// #[derive(Debug, serde::Deserialize)]
/// struct Limits { cpu: u32 }
/// #[derive(Debug, serde::Deserialize)]
/// struct File { limits: Limits }
/// let err = from_node::<File>(doc.root().unwrap()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Invalid);
/// assert_eq!(err.to_string(), "2:8: limits.cpu: invalid type: string \"many\", expected u32");
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    mark: Option<Mark>,
    /// Set together with `mark` while deserializing: where in the tree.
    path: Option<String>,
    message: String,
}

impl Error {
    pub(super) fn new(kind: ErrorKind, mark: Option<Mark>, message: impl Into<String>) -> Error {
        Error {
            kind,
            mark,
            path: None,
            message: message.into(),
        }
    }

    pub(super) fn too_large() -> Error {
        Error::new(
            ErrorKind::TooLarge,
            None,
            format!(
                "the file is larger than {MAX_BYTES} bytes (1 MiB), the most a spec or config file may have"
            ),
        )
    }

    pub(super) fn too_deep(mark: Mark) -> Error {
        Error::new(
            ErrorKind::TooDeep,
            Some(mark),
            format!("collections nest deeper than {MAX_DEPTH} levels"),
        )
    }

    pub(super) fn alias_budget(mark: Mark) -> Error {
        Error::new(
            ErrorKind::TooManyAliasNodes,
            Some(mark),
            format!(
                "repetition limit exceeded: aliases expand to more than {MAX_ALIAS_NODES} nodes"
            ),
        )
    }

    pub(super) fn utf8(bytes: &[u8], err: &std::str::Utf8Error) -> Error {
        let good = &bytes[..err.valid_up_to()];
        // Both are valid UTF-8 up to here, so counting is exact.
        let text = String::from_utf8_lossy(good);
        let line = 1 + text.bytes().filter(|b| *b == b'\n').count();
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        let column = 1 + text[line_start..].chars().count();
        let byte = bytes.get(err.valid_up_to()).copied().unwrap_or(0);
        Error::new(
            ErrorKind::NotUtf8,
            Some(Mark::new(line, column)),
            format!("the file is not valid UTF-8 (byte {byte:#04x})"),
        )
    }

    /// Sets the mark and path of an error that has none yet: the innermost
    /// node that failed wins, as errors travel out through its parents.
    pub(super) fn fix(mut self, mark: Mark, path: &dyn fmt::Display) -> Error {
        if self.mark.is_none() {
            self.mark = Some(mark);
            let path = path.to_string();
            if path != "." {
                self.path = Some(path);
            }
        }
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where the problem is, when it has a place.
    pub fn mark(&self) -> Option<Mark> {
        self.mark
    }

    /// The problem without the position: `PATH: MESSAGE` when it was found
    /// while deserializing a value below the root, else `MESSAGE`.
    pub fn message(&self) -> String {
        match &self.path {
            Some(path) => format!("{path}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(mark) = self.mark {
            write!(f, "{mark}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(ErrorKind::Invalid, None, msg.to_string())
    }
}
