//! The JSON bodies of the agent protocol (DESIGN.md, "Agent and ensure
//! protocol"), shared by the server and the client.

use serde::{Deserialize, Serialize};

/// `POST /v1/runtimes/{name}/ensure` body; an empty body means the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsureRequest {
    /// Start the runtime when it is not running (default true); false only
    /// probes and changes nothing.
    #[serde(default = "yes")]
    pub start_if_needed: bool,
}

fn yes() -> bool {
    true
}

/// The answer to an ensure call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsureReply {
    /// Whether the runtime is ready (then `endpoint` is set).
    pub ready: bool,
    /// Where to reach it, when ready; else empty.
    pub endpoint: String,
    /// Human-readable detail.
    pub message: String,
    /// `started`, `starting`, `reused`, `failed` or `not_started`.
    pub status: String,
    /// With `failed`: milliseconds until the next start may begin.
    pub retry_after_ms: Option<u64>,
}

impl EnsureReply {
    /// The protocol form of a library answer.
    pub fn from_response(r: &rebound_ensure::Response) -> Self {
        Self {
            ready: r.is_ready(),
            endpoint: r.endpoint().to_owned(),
            message: r.message().to_owned(),
            status: r.status().as_str().to_owned(),
            retry_after_ms: r.retry_after().map(millis),
        }
    }
}

/// One runtime in `GET /v1/runtimes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEntry {
    /// The runtime's name in the config.
    pub name: String,
    /// `not_started`, `starting`, `ready` or `failed`.
    pub state: String,
    /// The endpoint, when ready.
    pub endpoint: Option<String>,
    /// The last message.
    pub message: Option<String>,
    /// Milliseconds in this state.
    pub for_ms: u64,
    /// Failed starts in a row.
    pub failures: u32,
    /// When failed: milliseconds until the next start may begin.
    pub retry_after_ms: Option<u64>,
    /// When ready: whether the TTL probe is checking it now.
    pub verifying: bool,
}

/// `GET /v1/runtimes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimesReply {
    /// Every runtime, by name.
    pub runtimes: Vec<RuntimeEntry>,
}

/// Any error answer (4xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What was wrong.
    pub error: String,
    /// With an unknown runtime: the names there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtimes: Option<Vec<String>>,
}

/// Milliseconds, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
