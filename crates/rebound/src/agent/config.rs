//! The agent config file (see `docs/agent.md`):
//!
//! ```yaml
//! listen: unix:/run/rebound/agent.sock   # or tcp:127.0.0.1:7070
//! runtimes:
//!   docker:
//!     start: { steps: [...] }     # an init section, rebound-init's format
//!     probe: { uses: init.wait_tcp, with: { host: 127.0.0.1, port: 2375 }, timeout: 1s }
//!     endpoint: "tcp://127.0.0.1:2375"
//!     start_timeout: 90s
//!     ready_ttl: 10s
//!     backoff: { initial: 1s, max: 60s, multiplier: 2 }
//! ```
//!
//! The file is read once by rebound-init's YAML reader
//! ([`rebound_init::spec::yaml`]) into positioned nodes, with its limits (at
//! most 1 MiB, 64 levels of nesting, no duplicate key anywhere, one
//! document). The agent's own fields are deserialized from those nodes,
//! strictly (unknown fields and bad values are refused with
//! `FILE:LINE:COLUMN`); the `start` and `probe` nodes are handed as they
//! are to rebound-init's loader ([`InitSpec::from_node`],
//! [`Step::from_node`]), so they are checked exactly like an init spec and
//! their errors carry the agent file's own positions and paths
//! (`runtimes.web.probe.with.port`). Nothing is cut out of the text by
//! hand: a comment holding a lone CR, NEL or LS, JSON, flow style or CR
//! line endings read the same as they do for `rebound init`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rebound_ensure::EnsureConfig;
use rebound_init::spec::yaml::{self, Document, Mark, Node};
use rebound_init::spec::{InitSpec, Spec, SpecError, Step};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::addr::Addr;

mod fields;
#[cfg(test)]
mod tests;

use fields::{Backoff, ListenAddr, RuntimeName, positive_duration};

/// A loaded, checked agent config.
///
/// ```
/// use rebound::agent::config::AgentConfig;
/// let config = AgentConfig::parse(
///     r#"{"runtimes": {"web": {
///         "start": {"steps": [{"id": "up", "uses": "init.run", "with": {"command": "true"}}]},
///         "probe": {"uses": "init.wait_tcp", "with": {"host": "127.0.0.1", "port": 8080}},
///         "endpoint": "tcp://127.0.0.1:8080"}}}"#,
///     "agent.json",
/// )?;
/// assert_eq!(config.runtimes[0].name, "web");
/// assert_eq!(config.runtimes[0].probe.init.steps[0].id, "probe");
/// # Ok::<(), rebound::agent::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `listen:`, when given.
    pub listen: Option<Addr>,
    /// The runtimes, in name order.
    pub runtimes: Vec<RuntimeConfig>,
}

/// One runtime of the config.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The init steps that start it.
    pub start: Spec,
    /// A spec with the one probe step.
    pub probe: Spec,
    /// The endpoint handed back when ready.
    pub endpoint: String,
    /// Timeouts, TTL and backoff for the state machine.
    pub ensure: EnsureConfig,
}

/// A config that was rejected; displays as `FILE:LINE:COLUMN: MESSAGE`
/// (`FILE: MESSAGE` when the problem has no place, such as an unreadable
/// file).
///
/// ```
/// use rebound::agent::config::{AgentConfig, ConfigError};
/// let err = AgentConfig::parse("runtimes:\n  web:\n    strat: {}\n", "agent.yaml").unwrap_err();
/// assert!(matches!(err, ConfigError::Yaml { .. }));
/// assert!(err.to_string().starts_with("agent.yaml:3:5: runtimes.web: unknown field `strat`"), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the agent config: {source}")]
    Read {
        /// The file as named.
        origin: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML, or one of the agent's own fields, is not valid.
    #[error("{}", placed(origin, source.mark(), &source.message()))]
    Yaml {
        /// The file as named.
        origin: String,
        /// What is wrong, and where.
        #[source]
        source: yaml::Error,
    },
    /// A runtime's `start` or `probe` is not a valid init section or step.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The config is valid YAML of the right shape but unusable.
    #[error("{}", placed(origin, *mark, message))]
    Invalid {
        /// The file as named.
        origin: String,
        /// Where the problem is, when it has a place.
        mark: Option<Mark>,
        /// What is wrong.
        message: String,
    },
}

fn placed(origin: &str, mark: Option<Mark>, message: &str) -> String {
    match mark {
        Some(mark) => format!("{origin}:{mark}: {message}"),
        None => format!("{origin}: {message}"),
    }
}

const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The id a probe written without one gets.
const PROBE_ID: &str = "probe";

impl AgentConfig {
    /// Reads and checks the config at `path` (at most 1 MiB).
    ///
    /// ```
    /// # use rebound::agent::config::AgentConfig;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("agent.yaml");
    /// std::fs::write(&path, "runtimes:\n  db:\n    start: { steps: [ { id: pg, uses: init.run, with: { command: 'true' } } ] }\n    probe: { uses: init.wait_tcp, with: { host: 127.0.0.1, port: 5432 } }\n    endpoint: tcp://127.0.0.1:5432\n")?;
    /// let config = AgentConfig::load(&path)?;
    /// assert_eq!(config.runtimes[0].start.init.steps[0].id, "pg");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let yaml_error = |source| ConfigError::Yaml {
            origin: origin.clone(),
            source,
        };
        let bytes = yaml::read_file(path)
            .map_err(|source| ConfigError::Read {
                origin: origin.clone(),
                source,
            })?
            .map_err(yaml_error)?;
        let doc = Document::parse_bytes(&bytes).map_err(yaml_error)?;
        Self::from_document(&doc, &origin)
    }

    /// Checks config text; `origin` names it in errors.
    ///
    /// ```
    /// # use rebound::agent::config::AgentConfig;
    /// let text = "runtimes:\n  web:\n    start: { steps: [] }\n    probe: { uses: init.wait_file, with: { path: /x } }\n    endpoint: e\n";
    /// let err = AgentConfig::parse(text, "agent.yaml").unwrap_err();
    /// assert_eq!(err.to_string(), "agent.yaml:3:12: runtime `web`: `start` has no steps");
    /// ```
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let doc = Document::parse(text).map_err(|source| ConfigError::Yaml {
            origin: origin.to_owned(),
            source,
        })?;
        Self::from_document(&doc, origin)
    }

    /// Checks a parsed config document.
    fn from_document(doc: &Document, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |mark: Option<Mark>, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            mark,
            message,
        };
        let Some(root) = doc.root().filter(|r| !r.is_null()) else {
            return Err(invalid(
                None,
                "the agent config is empty: expected `runtimes`".to_owned(),
            ));
        };
        let raw: RawFile = yaml::from_node(root).map_err(|source| ConfigError::Yaml {
            origin: origin.to_owned(),
            source,
        })?;
        // The deserialization above checked that these nodes exist.
        let runtimes_node = root.get("runtimes").unwrap_or(root);
        let mut runtimes = Vec::new();
        for (RuntimeName(name), raw) in raw.runtimes {
            let node = runtimes_node.get(&name).unwrap_or(runtimes_node);
            let mark_of = |key: &str| node.get(key).map_or(node.mark(), Node::mark);
            let start_node = node.get("start").unwrap_or(node);
            let init = InitSpec::from_node(start_node, origin, &format!("runtimes.{name}.start"))?;
            if init.steps.is_empty() {
                return Err(invalid(
                    Some(mark_of("start")),
                    format!("runtime `{name}`: `start` has no steps"),
                ));
            }
            let probe_node = node.get("probe").unwrap_or(node);
            let probe = Step::from_node(
                probe_node,
                origin,
                &format!("runtimes.{name}.probe"),
                Some(PROBE_ID),
            )?;
            let mut builder = EnsureConfig::builder()
                .probe_timeout(probe.timeout.unwrap_or(DEFAULT_PROBE_TIMEOUT));
            if let Some(t) = raw.start_timeout {
                builder = builder.start_timeout(t);
            }
            if let Some(t) = raw.ready_ttl {
                builder = builder.ready_ttl(t);
            }
            if let Some(b) = raw.backoff {
                builder = builder.backoff(b.0);
            }
            let ensure = builder
                .build()
                .map_err(|e| invalid(Some(node.mark()), format!("runtime `{name}`: {e}")))?;
            runtimes.push(RuntimeConfig {
                name,
                start: Spec {
                    init,
                    ..Spec::default()
                },
                probe: Spec {
                    init: InitSpec { steps: vec![probe] },
                    ..Spec::default()
                },
                endpoint: raw.endpoint,
                ensure,
            });
        }
        if runtimes.is_empty() {
            return Err(invalid(
                Some(runtimes_node.mark()),
                "`runtimes` is empty: declare at least one runtime".to_owned(),
            ));
        }
        Ok(Self {
            listen: raw.listen.map(|l| l.0),
            runtimes,
        })
    }
}

// ---- the typed part of the file ------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    listen: Option<ListenAddr>,
    runtimes: BTreeMap<RuntimeName, RawRuntime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    /// Read by rebound-init from its node (see the module docs).
    #[allow(dead_code)]
    start: IgnoredAny,
    /// Read by rebound-init from its node.
    #[allow(dead_code)]
    probe: IgnoredAny,
    endpoint: String,
    #[serde(default, deserialize_with = "positive_duration")]
    start_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "positive_duration")]
    ready_ttl: Option<Duration>,
    #[serde(default)]
    backoff: Option<Backoff>,
}
