//! Turning a migrator's error into a [`FailureKind`].

use std::error::Error;
use std::io::ErrorKind;

use rebound_retry::Decision;
use rebound_retry::classify;

use crate::error::error_chain;
use crate::model::FailureKind;

/// Maps a migrator's error to a failure kind; implement it for your error
/// type, or use [`DefaultClassifier`].
///
/// ```
/// use rebound_recovery::{FailureClassifier, FailureKind};
/// struct ByCode;
/// impl FailureClassifier<std::io::Error> for ByCode {
///     fn classify(&self, _: &std::io::Error) -> FailureKind { FailureKind::Unknown }
/// }
/// # let _ = ByCode;
/// ```
pub trait FailureClassifier<E: ?Sized>: Send + Sync {
    /// The kind of `error`.
    fn classify(&self, error: &E) -> FailureKind;
}

impl<E: ?Sized, F> FailureClassifier<E> for F
where
    F: Fn(&E) -> FailureKind + Send + Sync,
{
    fn classify(&self, error: &E) -> FailureKind {
        self(error)
    }
}

/// The default classifier, built on rebound-retry's.
///
/// It looks for a `std::io::Error` in the error's source chain first
/// (timed out -> `timeout`; refused / host or network unreachable ->
/// `target_unreachable`; storage full / out of memory / quota ->
/// `insufficient_resources`; invalid data -> `state_corruption`;
/// unsupported -> `incompatible_target`; other kinds rebound-retry retries
/// -> `network_transient`; the rest -> `unknown`), then at the text of the
/// whole chain (keywords for each kind, then rebound-retry's message
/// heuristics: transient -> `network_transient`, permanent ->
/// `network_permanent`), else `unknown`.
///
/// ```
/// use rebound_recovery::{DefaultClassifier, FailureClassifier, FailureKind};
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(DefaultClassifier.classify(&refused), FailureKind::TargetUnreachable);
/// let full = std::io::Error::other("no space left on device");
/// assert_eq!(DefaultClassifier.classify(&full), FailureKind::InsufficientResources);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<E: Error + 'static> FailureClassifier<E> for DefaultClassifier {
    fn classify(&self, error: &E) -> FailureKind {
        let mut current: Option<&(dyn Error + 'static)> = Some(error);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() != ErrorKind::Other {
                    return io_kind(io.kind());
                }
            }
            current = e.source();
        }
        message_kind(&error_chain(error))
    }
}

/// The kind for an I/O error kind.
///
/// ```
/// use std::io::ErrorKind;
/// use rebound_recovery::{FailureKind, worker::classify::io_kind};
/// assert_eq!(io_kind(ErrorKind::TimedOut), FailureKind::Timeout);
/// assert_eq!(io_kind(ErrorKind::ConnectionReset), FailureKind::NetworkTransient);
/// ```
pub fn io_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::TimedOut => FailureKind::Timeout,
        ErrorKind::ConnectionRefused
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::AddrNotAvailable => FailureKind::TargetUnreachable,
        ErrorKind::StorageFull | ErrorKind::OutOfMemory | ErrorKind::QuotaExceeded => {
            FailureKind::InsufficientResources
        }
        ErrorKind::InvalidData => FailureKind::StateCorruption,
        ErrorKind::Unsupported => FailureKind::IncompatibleTarget,
        other => match classify::io_kind(other) {
            Decision::Retry | Decision::RetryAfter(_) => FailureKind::NetworkTransient,
            _ => FailureKind::Unknown,
        },
    }
}

/// The kind for an error's text.
///
/// ```
/// use rebound_recovery::{FailureKind, worker::classify::message_kind};
/// assert_eq!(message_kind("target node unreachable"), FailureKind::TargetUnreachable);
/// assert_eq!(message_kind("state checksum mismatch"), FailureKind::StateCorruption);
/// assert_eq!(message_kind("something odd"), FailureKind::Unknown);
/// ```
pub fn message_kind(text: &str) -> FailureKind {
    const KEYWORDS: &[(&str, FailureKind)] = &[
        ("corrupt", FailureKind::StateCorruption),
        ("checksum", FailureKind::StateCorruption),
        ("incompatible", FailureKind::IncompatibleTarget),
        ("unsupported", FailureKind::IncompatibleTarget),
        ("no space", FailureKind::InsufficientResources),
        ("out of memory", FailureKind::InsufficientResources),
        ("insufficient", FailureKind::InsufficientResources),
        ("quota", FailureKind::InsufficientResources),
        ("unreachable", FailureKind::TargetUnreachable),
        ("no route to host", FailureKind::TargetUnreachable),
        ("connection refused", FailureKind::TargetUnreachable),
        ("timed out", FailureKind::Timeout),
        ("timeout", FailureKind::Timeout),
        ("deadline", FailureKind::Timeout),
    ];
    let lower = text.to_lowercase();
    if let Some((_, kind)) = KEYWORDS.iter().find(|(k, _)| lower.contains(k)) {
        return *kind;
    }
    match classify::message(text) {
        Some(Decision::Stop) => FailureKind::NetworkPermanent,
        Some(_) => FailureKind::NetworkTransient,
        None => FailureKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("migrate web to node-b")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn io_error_in_the_source_chain_wins() {
        let e = Wrapped(std::io::Error::from(ErrorKind::TimedOut));
        assert_eq!(DefaultClassifier.classify(&e), FailureKind::Timeout);
        let e = Wrapped(std::io::Error::from(ErrorKind::StorageFull));
        assert_eq!(
            DefaultClassifier.classify(&e),
            FailureKind::InsufficientResources
        );
    }

    #[test]
    fn text_of_the_chain_is_used_when_no_io_kind_says_more() {
        let e = Wrapped(std::io::Error::other("target runtime incompatible: arm64"));
        assert_eq!(
            DefaultClassifier.classify(&e),
            FailureKind::IncompatibleTarget
        );
        let e = Wrapped(std::io::Error::other("zzz"));
        assert_eq!(DefaultClassifier.classify(&e), FailureKind::Unknown);
    }

    #[test]
    fn a_closure_is_a_classifier() {
        let c = |_: &std::io::Error| FailureKind::Timeout;
        assert_eq!(
            c.classify(&std::io::Error::other("x")),
            FailureKind::Timeout
        );
    }
}
