//! `init.wait_http`: wait until a URL answers with an expected status.
//!
//! This module holds the parameters and their validation; the polling
//! (reqwest with rustls/ring) is its child `io`, compiled with the `http`
//! feature. Without that feature a spec naming `init.wait_http` is refused
//! at load (see [`ActionSpec::missing_feature`](super::ActionSpec::missing_feature)).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::matchers::{HeaderMatch, JsonMatch, Pattern};
pub use super::status::{StatusMatch, StatusMatchError};
#[cfg(feature = "http")]
use super::{ActionContext, ActionError};
use super::{duration, validate};

#[cfg(feature = "http")]
mod io;

/// The `with:` block of `init.wait_http`.
///
/// `timeout` is the timeout of each request (a bare integer is seconds;
/// default 5 s); the action keeps polling until the answer is as expected
/// (status, and each of `body_contains`, `body_regex`, `header` and `json`
/// that is set),
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
///
/// // Docker's API over its socket, answering JSON with a header.
/// let w: WaitHttp = serde_json::from_value(serde_json::json!({
///     "url": "http://localhost/v1.41/info",
///     "socket": "/var/run/docker.sock",
///     "header": { "name": "Api-Version", "matches": "^1\\.4" },
///     "json": { "path": "Swarm.LocalNodeState", "equals": "inactive" },
/// })).unwrap();
/// assert_eq!(
///     w.describe(),
///     "http://localhost/v1.41/info via /var/run/docker.sock (expect 2xx, header Api-Version ~ /^1\\.4/, JSON Swarm.LocalNodeState = \"inactive\")"
/// );
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
    /// A regular expression the response body must match, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<Pattern>,
    /// A header the answer must have (with a value, if given), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatch>,
    /// A value the JSON body must hold at a JSONPath, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonMatch>,
    /// Connect through this Unix stream socket instead of TCP (the URL's
    /// host is then only the `Host` header): Docker's
    /// `/var/run/docker.sock`, say.
    #[serde(
        default,
        deserialize_with = "validate::opt_socket",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub socket: Option<PathBuf>,
    /// `up` (default): wait until the answer is as expected; `down`: until
    /// there is no HTTP answer at all (connection refused or reset, or the
    /// request timed out), for drain and shutdown orderings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HttpState>,
    /// Timeout of each request (humantime or seconds; default 5 s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// What `init.wait_http` waits for.
///
/// ```
/// use rebound_init::actions::wait_http::{HttpState, WaitHttp};
/// let w: WaitHttp =
///     serde_json::from_str(r#"{"url": "http://old:8080/", "state": "down"}"#).unwrap();
/// assert_eq!(w.state, Some(HttpState::Down));
/// assert_eq!(w.describe(), "http://old:8080/ (until down)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpState {
    /// The endpoint answers as expected (the default).
    Up,
    /// The endpoint gives no HTTP answer any more (any answer, even a 500,
    /// is "still answering").
    Down,
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

/// Splits an `http+unix://` (or `https+unix://`) URL, whose host is the
/// percent-encoded path of a Unix socket, into the `http://localhost/...`
/// URL to request and the socket's path (the `url` and `socket` of
/// [`WaitHttp`]). Messages show the URL without its password.
///
/// ```
/// use rebound_init::actions::wait_http::split_unix_url;
/// let (url, socket) = split_unix_url("http+unix://%2Fvar%2Frun%2Fdocker.sock/_ping?x=1")?;
/// assert_eq!(url, "http://localhost/_ping?x=1");
/// assert_eq!(socket, std::path::Path::new("/var/run/docker.sock"));
/// let err = split_unix_url("http+unix://docker.sock/_ping").unwrap_err();
/// assert!(err.contains("absolute"), "{err}");
/// # Ok::<(), String>(())
/// ```
pub fn split_unix_url(text: &str) -> Result<(String, PathBuf), String> {
    let shown = validate::redacted_text(text);
    validate::no_nul(&format!("URL {shown:?}"), text)?;
    let parsed = url::Url::parse(text).map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    let scheme = match parsed.scheme() {
        "http+unix" => "http",
        "https+unix" => "https",
        other => {
            return Err(format!(
                "URL {shown:?} must start with http+unix:// or https+unix://, not {other}://"
            ));
        }
    };
    let host = parsed.host_str().unwrap_or_default();
    let socket = percent_encoding::percent_decode_str(host)
        .decode_utf8()
        .map_err(|_| format!("URL {shown:?}: the socket path is not UTF-8 once decoded"))?;
    if !socket.starts_with('/') {
        return Err(format!(
            "URL {shown:?}: the host must be the socket's absolute path, percent-encoded (http+unix://%2Fvar%2Frun%2Fdocker.sock/_ping)"
        ));
    }
    let mut url = url::Url::parse(&format!("{scheme}://localhost/"))
        .map_err(|e| format!("URL {shown:?}: {e}"))?;
    url.set_path(parsed.path());
    url.set_query(parsed.query());
    url.set_fragment(parsed.fragment());
    if !parsed.username().is_empty() {
        let _ = url.set_username(parsed.username());
        let _ = url.set_password(parsed.password());
    }
    Ok((url.into(), PathBuf::from(socket.into_owned())))
}

/// Per-request timeout when `with.timeout` is not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl WaitHttp {
    /// `URL (expect 2xx)`, `URL via SOCKET (expect 2xx, JSON status =
    /// "ok")`, for messages.
    pub fn describe(&self) -> String {
        if self.state == Some(HttpState::Down) {
            let via = self
                .socket
                .as_ref()
                .map(|s| format!(" via {}", s.display()))
                .unwrap_or_default();
            return format!("{}{via} (until down)", validate::redacted_text(&self.url));
        }
        let via = self
            .socket
            .as_ref()
            .map(|s| format!(" via {}", s.display()))
            .unwrap_or_default();
        let mut expect = vec![self.expect_status.to_string()];
        if let Some(text) = &self.body_contains {
            expect.push(format!("body contains {text:?}"));
        }
        if let Some(p) = &self.body_regex {
            expect.push(format!("body ~ /{p}/"));
        }
        if let Some(h) = &self.header {
            expect.push(h.to_string());
        }
        if let Some(j) = &self.json {
            expect.push(j.to_string());
        }
        format!(
            "{}{via} (expect {})",
            validate::redacted_text(&self.url),
            expect.join(", ")
        )
    }

    /// Polls the URL until it answers as expected (without the `http`
    /// feature, [`ActionSpec::attempt`](super::ActionSpec::attempt) fails
    /// instead).
    #[cfg(feature = "http")]
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        io::attempt(self, ctx).await
    }
}
