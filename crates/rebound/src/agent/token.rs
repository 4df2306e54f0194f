//! The bearer token of the agent: read from a file or the environment,
//! checked to fit a header, never printed.
//!
//! Both sources go through the same check, so the same token gets the same
//! answer (exit 2) whichever way it comes.

use std::path::Path;

use crate::exit::CliError;

/// The environment variable `rebound ensure` reads the token from when no
/// `--token-file` is given.
pub const ENV: &str = "REBOUND_AGENT_TOKEN";

/// Reads the token (surrounding whitespace trimmed); its content is never
/// printed.
pub fn read(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?;
    let source = format!("the token file {}", path.display());
    if text.trim().is_empty() {
        return Err(CliError::usage(format!("{source} is empty")));
    }
    check(&text, &source)
}

/// The token of `rebound ensure`: from `file` when given, else from
/// [`ENV`] (unset or blank: no token), checked alike.
pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<String>, CliError> {
    if let Some(path) = file {
        return read(path).map(Some);
    }
    match std::env::var_os(ENV) {
        None => Ok(None),
        Some(value) => {
            let Some(text) = value.to_str() else {
                return Err(not_a_header_value(&format!("${ENV}")));
            };
            if text.trim().is_empty() {
                return Ok(None);
            }
            check(text, &format!("${ENV}")).map(Some)
        }
    }
}

/// Trims `text` and checks that it can travel in a header; `source` names
/// where it came from in the error (the token itself never appears).
fn check(text: &str, source: &str) -> Result<String, CliError> {
    let token = text.trim();
    // A bearer token travels in a header, which carries printable ASCII
    // only: a token outside it could never be sent by `rebound ensure`.
    if !token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(not_a_header_value(source));
    }
    Ok(token.to_owned())
}

fn not_a_header_value(source: &str) -> CliError {
    CliError::usage(format!(
        "{source} holds characters an HTTP header cannot carry \
         (control characters or non-ASCII): use printable ASCII"
    ))
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
        // A newline inside (not only at the end) cannot travel either.
        let err = token_from(b"first\nsecond\n").unwrap_err();
        assert!(err.contains("cannot carry"), "{err}");
    }

    #[test]
    fn the_environment_gets_the_same_check_as_a_file() {
        assert_eq!(check(" s3cret\n", "$X").unwrap(), "s3cret");
        let err = check("first\nsecond", "$X").unwrap_err();
        assert_eq!(err.code, crate::exit::USAGE);
        assert!(err.to_string().starts_with("$X holds characters"), "{err}");
        assert!(!err.to_string().contains("first"), "the token was printed");
    }
}
