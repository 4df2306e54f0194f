//! The JSON bodies of the agent protocol (docs/agent.md, "The protocol"),
//! shared by the server and the client.

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

impl RuntimeEntry {
    /// The protocol form of a runtime's state.
    pub fn from_view(name: &str, v: &rebound_ensure::StateView) -> Self {
        Self {
            name: name.to_owned(),
            state: v.kind().as_str().to_owned(),
            endpoint: v.endpoint().map(str::to_owned),
            message: v.message().map(str::to_owned),
            for_ms: millis(v.for_time()),
            failures: v.failures(),
            retry_after_ms: v.retry_after().map(millis),
            verifying: v.verifying(),
        }
    }
}

/// The protocol version this build speaks (`GET /v1`, `protocol`). A client
/// refuses an agent whose major version it does not know; minor versions
/// only add fields and endpoints.
pub const PROTOCOL_VERSION: &str = "1.0";

/// The major version of [`PROTOCOL_VERSION`].
pub const PROTOCOL_MAJOR: u64 = 1;

/// Capabilities an agent may announce in its handshake.
pub mod capability {
    /// `POST /v1/runtimes/{name}/ensure`.
    pub const ENSURE: &str = "ensure";
    /// `GET /v1/runtimes/{name}/watch` (Server-Sent Events).
    pub const WATCH: &str = "watch";
    /// `GET /v1/events` (Server-Sent Events, every runtime).
    pub const EVENTS: &str = "events";
    /// `GET /metrics`.
    pub const METRICS: &str = "metrics";
}

/// `GET /v1`: what the agent is and can do.
///
/// ```
/// use rebound::agent::protocol::Handshake;
/// let h: Handshake = serde_json::from_str(
///     r#"{"protocol":"1.0","agent_version":"0.1.0","capabilities":["ensure","watch"],
///         "runtimes":[{"name":"db","start_budget_ms":95000,"start_timeout_ms":90000,"probe_timeout_ms":5000}]}"#,
/// ).unwrap();
/// assert_eq!(h.major(), Ok(1));
/// assert!(h.can("watch"));
/// assert_eq!(h.runtime("db").map(|r| r.start_budget_ms), Some(95000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// `MAJOR.MINOR` ([`PROTOCOL_VERSION`] for this build).
    pub protocol: String,
    /// The agent's own version (its crate version).
    pub agent_version: String,
    /// What it serves (see [`capability`]); unknown names are ignored.
    pub capabilities: Vec<String>,
    /// Each runtime with its start budget.
    pub runtimes: Vec<RuntimeBudget>,
}

impl Handshake {
    /// The major version of `protocol`, or why it is not `MAJOR.MINOR`.
    pub fn major(&self) -> Result<u64, String> {
        let (major, minor) = self
            .protocol
            .split_once('.')
            .ok_or_else(|| format!("protocol `{}` is not MAJOR.MINOR", self.protocol))?;
        minor
            .parse::<u64>()
            .map_err(|_| format!("protocol `{}` is not MAJOR.MINOR", self.protocol))?;
        major
            .parse::<u64>()
            .map_err(|_| format!("protocol `{}` is not MAJOR.MINOR", self.protocol))
    }

    /// Whether the agent announces `capability`.
    pub fn can(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The budget of the runtime `name`, when the agent has it.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeBudget> {
        self.runtimes.iter().find(|r| r.name == name)
    }
}

/// One runtime in the handshake: how long a start may take in the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeBudget {
    /// The runtime's name in the config.
    pub name: String,
    /// `start_timeout_ms + probe_timeout_ms`: a host that waits less than
    /// this for a cold start may give up on a start that would succeed.
    pub start_budget_ms: u64,
    /// The config's `start_timeout`.
    pub start_timeout_ms: u64,
    /// The probe step's timeout.
    pub probe_timeout_ms: u64,
}

/// Event names on the watch streams (`event:` of Server-Sent Events).
pub mod event {
    /// The runtime is not running (the first event, or a ready runtime
    /// found dead by its TTL probe).
    pub const NOT_STARTED: &str = "not_started";
    /// A start is running.
    pub const STARTING: &str = "starting";
    /// Ready; `endpoint` is set.
    pub const READY: &str = "ready";
    /// The last start failed; `retry_after_ms` says when the next may begin.
    pub const FAILED: &str = "failed";
    /// The reader fell behind and changes were dropped: this is the
    /// runtime's current state.
    pub const RESYNC: &str = "resync";
    /// The agent is listening (`GET /v1/events` only, always first).
    pub const AGENT_READY: &str = "agent_ready";
}

/// The data of `agent_ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReady {
    /// [`PROTOCOL_VERSION`].
    pub protocol: String,
    /// The agent's own version.
    pub agent_version: String,
    /// The runtimes, by name.
    pub runtimes: Vec<String>,
    /// Milliseconds since the agent began listening.
    pub for_ms: u64,
}

/// Milliseconds, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
