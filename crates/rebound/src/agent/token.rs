//! The bearer token of the agent: read from a file, checked to fit a header,
//! never printed.

use std::path::Path;

use crate::exit::CliError;

/// Reads the token (surrounding whitespace trimmed); its content is never
/// printed.
pub fn read(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::usage(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    // A bearer token travels in a header, which carries printable ASCII
    // only: a token outside it could never be sent by `rebound ensure`.
    if !token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(CliError::usage(format!(
            "the token file {} holds characters an HTTP header cannot carry \
             (control characters or non-ASCII): use printable ASCII",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_from(bytes: &[u8]) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, bytes).unwrap();
        read(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn token_is_trimmed_and_must_fit_a_header() {
        assert_eq!(token_from(b"  s3cret \n").unwrap(), "s3cret");
        let err = token_from("s\u{e9}cret".as_bytes()).unwrap_err();
        assert!(err.contains("cannot carry"), "{err}");
        assert!(!err.contains("cret"), "the token was printed: {err}");
        let err = token_from(b"a\x01b").unwrap_err();
        assert!(err.contains("cannot carry"), "{err}");
        let err = token_from(b" \n\t").unwrap_err();
        assert!(err.contains("is empty"), "{err}");
    }
}
