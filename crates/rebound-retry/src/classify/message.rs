//! Error-text heuristics: the last resort when nothing typed is available.

use super::Decision;

/// Phrases that mark a failure as permanent; they win over transient ones.
const PERMANENT: &[&str] = &[
    // authentication / authorisation
    "401 unauthorized",
    "403 forbidden",
    "authentication required",
    "access denied",
    // not found
    "404 not found",
    "manifest unknown",
    "name unknown",
    "repository does not exist",
    // invalid input
    "invalid reference",
    "invalid image",
    "malformed",
];

/// Phrases that mark a failure as passing.
const TRANSIENT: &[&str] = &[
    // connections
    "connection refused",
    "connection reset",
    "connection timed out",
    "network is unreachable",
    "no route to host",
    "temporary failure",
    "try again",
    "resource temporarily unavailable",
    // name resolution
    "name resolution",
    "dns",
    "could not resolve",
    "no such host",
    // HTTP
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
    "429 too many requests",
    // registries and rate limits
    "toomanyrequests",
    "rate limit",
    "quota exceeded",
    // I/O
    "broken pipe",
    "interrupted",
    "eagain",
    "ewouldblock",
];

/// Classifies an error by its text, case-insensitively: `Some(Stop)` when it
/// names a permanent failure (bad credentials, not found, malformed input;
/// these win), `Some(Retry)` when it names a passing one (refused or reset
/// connections, DNS, 502/503/504/429, rate limits, EAGAIN), `None` when it
/// names neither.
///
/// Substring matching is a last resort: prefer [`io_error`](super::io_error),
/// [`http_status`](super::http_status) or your own typed [`Classify`](super::Classify).
///
/// ```
/// use rebound_retry::{classify, Decision};
/// assert_eq!(classify::message("Connection refused (os error 111)"), Some(Decision::Retry));
/// assert_eq!(classify::message("401 Unauthorized: try again later"), Some(Decision::Stop));
/// assert_eq!(classify::message("disk full"), None);
/// ```
pub fn message(text: &str) -> Option<Decision> {
    let lower = text.to_lowercase();
    if PERMANENT.iter().any(|p| lower.contains(p)) {
        Some(Decision::Stop)
    } else if TRANSIENT.iter().any(|p| lower.contains(p)) {
        Some(Decision::Retry)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transient_phrase_retries_in_any_case() {
        for p in TRANSIENT {
            assert_eq!(message(&p.to_uppercase()), Some(Decision::Retry), "{p}");
        }
    }

    #[test]
    fn every_permanent_phrase_stops_and_wins_over_transient() {
        for p in PERMANENT {
            assert_eq!(message(p), Some(Decision::Stop), "{p}");
            let mixed = format!("connection reset, then {p}");
            assert_eq!(message(&mixed), Some(Decision::Stop), "{mixed}");
        }
    }

    #[test]
    fn unknown_text_is_none() {
        assert_eq!(message("some random error"), None);
        assert_eq!(message(""), None);
    }
}
