//! The one formatter of an error's source chain in rebound: every crate
//! that puts a cause into a message (init actions, recovery attempts and
//! journal errors) uses it, so chains read the same everywhere.

/// `e` and its sources on one line, joined by `: `, for messages. A source
/// whose text its error already quotes is not repeated (many errors
/// include their cause's text in their own).
///
/// ```
/// use std::io;
/// use rebound_retry::error_chain;
///
/// let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
/// assert_eq!(error_chain(&ConnectFailed(refused)), "connect failed: connection refused");
///
/// #[derive(Debug)]
/// struct ConnectFailed(io::Error);
/// impl std::fmt::Display for ConnectFailed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("connect failed")
///     }
/// }
/// impl std::error::Error for ConnectFailed {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// ```
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: String,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &str, source: Option<Layer>) -> Layer {
        Layer {
            text: text.into(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn joins_every_source_once() {
        let e = layer(
            "GET http://db/",
            Some(layer(
                "connect failed",
                Some(layer("connection refused", None)),
            )),
        );
        assert_eq!(
            error_chain(&e),
            "GET http://db/: connect failed: connection refused"
        );
        // A cause the error already quotes is not repeated.
        let e = layer(
            "connect failed: connection refused",
            Some(layer("connection refused", None)),
        );
        assert_eq!(error_chain(&e), "connect failed: connection refused");
        assert_eq!(error_chain(&layer("alone", None)), "alone");
    }
}
