//! `init.wait_http`: wait until a URL answers with an expected status.
//!
//! This module holds the parameters and their validation; the polling
//! (reqwest with rustls/ring) is its child `io`, compiled with the `http`
//! feature. Without that feature a spec naming `init.wait_http` is refused
//! at load (see [`ActionSpec::missing_feature`](super::ActionSpec::missing_feature)).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::status::{StatusMatch, StatusMatchError};
use super::{ActionContext, ActionError, duration, validate};

#[cfg(feature = "http")]
mod io;

/// The `with:` block of `init.wait_http`.
///
/// `timeout` is the timeout of each request (a bare integer is seconds;
/// default 5 s); the action keeps polling until the answer is as expected,
/// the answer is a permanent failure (a 4xx other than 408/429, a redirect
/// to another host), the step's own timeout, or cancellation.
///
/// ```
/// use rebound_init::actions::wait_http::WaitHttp;
/// let w: WaitHttp = serde_json::from_str(
///     r#"{"url": "http://127.0.0.1:8080/health", "expect_status": "200-204"}"#,
/// ).unwrap();
/// assert!(w.expect_status.matches(204));
/// assert!(serde_json::from_str::<WaitHttp>(r#"{"url": "ftp://x"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitHttp {
    /// The `http://` or `https://` URL to GET.
    #[serde(deserialize_with = "validate::http_url")]
    #[schemars(url)]
    pub url: String,
    /// Status codes that count as ready (default 2xx).
    #[serde(default)]
    pub expect_status: StatusMatch,
    /// Text the response body must contain, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Timeout of each request (humantime or seconds; default 5 s).
    #[serde(
        default,
        deserialize_with = "duration::option::deserialize",
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// `text` with the password of a URL, and the values of secret-looking query
/// parameters (`token`, `key`, `signature`, `password`, ... in their names),
/// replaced by `***`, for messages and logs (text that is not a URL, or has
/// nothing secret, comes back as is).
///
/// ```
/// use rebound_init::actions::wait_http::redact_url;
/// assert_eq!(redact_url("http://admin:hunter22@db/health"), "http://admin:***@db/health");
/// assert_eq!(redact_url("http://db/health?token=t0k&deep=1"), "http://db/health?token=***&deep=1");
/// assert_eq!(redact_url("http://db/health"), "http://db/health");
/// ```
pub fn redact_url(text: &str) -> String {
    validate::redacted_text(text)
}

/// Per-request timeout when `with.timeout` is not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl WaitHttp {
    /// `URL (expect 2xx)`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} (expect {})",
            validate::redacted_text(&self.url),
            self.expect_status
        )
    }

    /// Polls the URL until it answers as expected.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        #[cfg(feature = "http")]
        {
            io::attempt(self, ctx).await
        }
        // The spec loader refuses this action in such a build; a library
        // user (or `rebound wait`) may still build one by hand.
        #[cfg(not(feature = "http"))]
        {
            let _ = ctx;
            Err(ActionError::permanent(
                "init.wait_http needs rebound-init's `http` feature, which this build lacks",
            ))
        }
    }
}
