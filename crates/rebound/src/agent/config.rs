//! The agent config file (DESIGN.md, "Agent and ensure protocol"):
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
//! Strict: unknown fields and bad values are rejected with `FILE:LINE:COLUMN`.
//! `start` and `probe` are handed to rebound-init's own loader (so they are
//! checked exactly like an init spec) on a copy of the file in which every
//! other line is blanked, so its positions are the file's own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use rebound_ensure::EnsureConfig;
use rebound_init::spec::Spec;
use rebound_retry::{ExponentialBuilder, Jitter};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::addr::Addr;

mod section;

use section::{probe_section, section};

/// A loaded, checked agent config.
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

/// A config that was rejected: `FILE:LINE:COLUMN: MESSAGE`.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl AgentConfig {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{origin}: cannot read the agent config: {e}")))?;
        Self::parse(&text, &origin)
    }

    /// Checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = serde_norway::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let mut runtimes = Vec::new();
        for (RuntimeName(name), raw) in raw.runtimes {
            let start = section(text, origin, &name, "start")?;
            if start.init.steps.is_empty() {
                return Err(ConfigError(format!(
                    "{origin}: runtime `{name}`: `start` has no steps"
                )));
            }
            let probe_has_id = raw.probe.get("id").is_some();
            let probe = probe_section(text, origin, &name, !probe_has_id)?;
            let probe_timeout = probe
                .init
                .steps
                .first()
                .and_then(|s| s.timeout)
                .unwrap_or(DEFAULT_PROBE_TIMEOUT);
            let mut builder = EnsureConfig::builder().probe_timeout(probe_timeout);
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
                .map_err(|e| ConfigError(format!("{origin}: runtime `{name}`: {e}")))?;
            runtimes.push(RuntimeConfig {
                name,
                start,
                probe,
                endpoint: raw.endpoint,
                ensure,
            });
        }
        if runtimes.is_empty() {
            return Err(ConfigError(format!(
                "{origin}: `runtimes` is empty: declare at least one runtime"
            )));
        }
        Ok(Self {
            listen: raw.listen.map(|l| l.0),
            runtimes,
        })
    }
}

fn yaml_error(origin: &str, err: &serde_norway::Error) -> ConfigError {
    let text = err.to_string();
    match err.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            ConfigError(format!(
                "{origin}:{}:{}: {message}",
                loc.line(),
                loc.column()
            ))
        }
        None => ConfigError(format!("{origin}: {text}")),
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
    /// Checked by rebound-init in a second pass (see [`mod@section`]).
    #[allow(dead_code)]
    start: IgnoredAny,
    probe: serde_norway::Value,
    endpoint: String,
    #[serde(default, deserialize_with = "positive_duration")]
    start_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "positive_duration")]
    ready_ttl: Option<Duration>,
    #[serde(default)]
    backoff: Option<Backoff>,
}

/// `listen:` checked where it is written.
struct ListenAddr(Addr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(ListenAddr).map_err(de::Error::custom)
    }
}

/// A runtime name: used in URLs and metric labels, so kept plain.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RuntimeName(String);

impl<'de> Deserialize<'de> for RuntimeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Err(de::Error::custom(format!(
                "runtime name `{name}` may only use letters, digits, `-`, `_` and `.`"
            )));
        }
        Ok(RuntimeName(name))
    }
}

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(PositiveDuration).map(Some)
}

/// Humantime text or a number of seconds, above zero. The checks run inside
/// the visitor so that the YAML parser stamps errors with the value's
/// position.
struct PositiveDuration;

impl PositiveDuration {
    fn check<E: de::Error>(d: Duration) -> Result<Duration, E> {
        if d.is_zero() {
            return Err(E::custom("the duration must be above zero"));
        }
        Ok(d)
    }
}

impl Visitor<'_> for PositiveDuration {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `90s`, `1m30s`, `250ms`, or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        Self::check(rebound_init::actions::duration::parse(v).map_err(E::custom)?)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Self::check(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "the duration must be above zero, got {v}"
            ))),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "the duration {v} s is too large (at most {} s)",
                u64::MAX
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        if v.is_nan() || v <= 0.0 {
            return Err(E::custom(format!(
                "the duration must be above zero, got {v}"
            )));
        }
        let d = Duration::try_from_secs_f64(v).map_err(|_| {
            E::custom(format!(
                "the duration {v} s is too large (at most {} s)",
                u64::MAX
            ))
        })?;
        Self::check(d)
    }
}

/// `backoff: { initial, max, multiplier, jitter }` after a failed start.
struct Backoff(rebound_retry::Exponential);

const BACKOFF_FIELDS: &[&str] = &["initial", "max", "multiplier", "jitter"];

impl<'de> Deserialize<'de> for Backoff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BackoffVisitor)
    }
}

struct BackoffVisitor;

#[derive(Deserialize)]
struct Seconds(#[serde(deserialize_with = "positive_duration")] Option<Duration>);

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum JitterName {
    None,
    Full,
    Equal,
}

impl<'de> Visitor<'de> for BackoffVisitor {
    type Value = Backoff;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with `initial`, `max`, `multiplier` and `jitter`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Backoff, A::Error> {
        let defaults = rebound_ensure::default_backoff();
        let mut initial = defaults.nominal(1);
        let mut max = defaults.nominal(u32::MAX);
        let mut multiplier = 2.0;
        let mut jitter = Jitter::Equal;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "initial" => initial = map.next_value::<Seconds>()?.0.unwrap_or(initial),
                "max" => max = map.next_value::<Seconds>()?.0.unwrap_or(max),
                "multiplier" => {
                    multiplier = map.next_value::<f64>()?;
                    if !multiplier.is_finite() || multiplier < 1.0 {
                        return Err(de::Error::custom(format!(
                            "multiplier must be a number of at least 1, got {multiplier}"
                        )));
                    }
                }
                "jitter" => {
                    jitter = match map.next_value::<JitterName>()? {
                        JitterName::None => Jitter::None,
                        JitterName::Full => Jitter::Full,
                        JitterName::Equal => Jitter::Equal,
                    }
                }
                other => return Err(de::Error::unknown_field(other, BACKOFF_FIELDS)),
            }
        }
        ExponentialBuilder::new()
            .with_initial_delay(initial)
            .with_max_delay(max)
            .with_multiplier(multiplier)
            .with_jitter(jitter)
            .forever()
            .build()
            .map(Backoff)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::section::locate;
    use super::*;

    const GOOD: &str = "\
listen: unix:/tmp/agent.sock
runtimes:
  web:
    start:
      steps:
        - id: serve
          uses: init.run
          with: { command: \"true\" }
    probe:
      uses: init.wait_tcp
      with: { host: 127.0.0.1, port: 8080 }
      timeout: 1s
    endpoint: tcp://127.0.0.1:8080
    start_timeout: 30s
    ready_ttl: 5s
    backoff: { initial: 500ms, max: 10s, multiplier: 3, jitter: none }
  db:
    start: { steps: [ { id: pg, uses: init.run, with: { command: [\"true\"] } } ] }
    probe: { id: pg-up, uses: init.wait_tcp, with: { host: 127.0.0.1, port: 5432 } }
    endpoint: tcp://127.0.0.1:5432
";

    #[test]
    fn locate_finds_block_and_flow_nodes() {
        assert_eq!(locate(GOOD, "web", "start"), Some((5, 7)));
        assert_eq!(locate(GOOD, "web", "probe"), Some((10, 7)));
        let flow_col = GOOD.lines().nth(17).unwrap().find('{').unwrap() + 1;
        assert_eq!(locate(GOOD, "db", "start"), Some((18, flow_col)));
        assert_eq!(locate(GOOD, "nope", "start"), None);
    }

    #[test]
    fn reads_block_and_flow_runtimes() {
        let c = AgentConfig::parse(GOOD, "agent.yaml").unwrap();
        assert_eq!(c.listen, Some(Addr::Unix("/tmp/agent.sock".into())));
        let names: Vec<_> = c.runtimes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        let web = &c.runtimes[1];
        assert_eq!(web.start.init.steps[0].id, "serve");
        assert_eq!(web.probe.init.steps[0].id, "probe");
        assert_eq!(web.probe.init.steps[0].action.name(), "init.wait_tcp");
        assert_eq!(web.ensure.start_timeout(), Duration::from_secs(30));
        assert_eq!(web.ensure.ready_ttl(), Some(Duration::from_secs(5)));
        assert_eq!(web.ensure.probe_timeout(), Duration::from_secs(1));
        assert_eq!(web.ensure.backoff().nominal(2), Duration::from_millis(1500));
        let db = &c.runtimes[0];
        assert_eq!(db.probe.init.steps[0].id, "pg-up");
        assert_eq!(db.ensure.start_timeout(), Duration::from_secs(90));
    }

    #[test]
    fn flow_probe_without_id_gets_one() {
        let text = GOOD.replace("{ id: pg-up, uses", "{ uses");
        let c = AgentConfig::parse(&text, "agent.yaml").unwrap();
        assert_eq!(c.runtimes[0].probe.init.steps[0].id, "probe");
    }

    fn error(text: &str) -> String {
        AgentConfig::parse(text, "agent.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_runtime_field_has_its_position() {
        let e = error(&GOOD.replace("    ready_ttl: 5s", "    ready_tll: 5s"));
        assert!(e.starts_with("agent.yaml:15:5: "), "{e}");
        assert!(e.contains("unknown field `ready_tll`"), "{e}");
    }

    #[test]
    fn bad_values_have_their_positions() {
        let e = error(&GOOD.replace("start_timeout: 30s", "start_timeout: 0s"));
        assert!(e.starts_with("agent.yaml:14:"), "{e}");
        assert!(e.contains("above zero"), "{e}");
        let e = error(&GOOD.replace("multiplier: 3", "multiplier: 0.5"));
        assert!(e.starts_with("agent.yaml:16:"), "{e}");
        let e = error(&GOOD.replace("unix:/tmp/agent.sock", "http://x"));
        assert!(e.starts_with("agent.yaml:1:"), "{e}");
        for huge in ["1e30", ".inf", "99999999999999999999"] {
            let e = error(&GOOD.replace("ready_ttl: 5s", &format!("ready_ttl: {huge}")));
            assert!(e.starts_with("agent.yaml:15:"), "{e}");
            assert!(e.contains("is too large"), "{huge}: {e}");
        }
        let e = error(&GOOD.replace("ready_ttl: 5s", "ready_ttl: -0.5"));
        assert!(e.contains("above zero, got -0.5"), "{e}");
        let e = error(&GOOD.replace("  web:", "  we b:"));
        assert!(e.contains("runtime name `we b`"), "{e}");
    }

    #[test]
    fn errors_inside_start_and_probe_keep_file_positions() {
        // A port out of range inside the block probe: line 11.
        let e = error(&GOOD.replace("port: 8080", "port: 70000"));
        assert!(e.starts_with("agent.yaml:11:"), "{e}");
        assert!(e.contains(": runtimes.web.probe.with.port: "), "{e}");
        // An unknown step field inside start: line 8.
        let e = error(&GOOD.replace(
            "          with: { command: \"true\" }",
            "          wth: { command: \"true\" }",
        ));
        assert!(e.starts_with("agent.yaml:8:11: "), "{e}");
        assert!(e.contains("runtimes.web.start.steps[0]"), "{e}");
        // An unknown action in the flow-style start on line 18.
        let e = error(&GOOD.replace(
            "uses: init.run, with: { command: [",
            "uses: init.rn, with: { command: [",
        ));
        assert!(e.starts_with("agent.yaml:18:"), "{e}");
        assert!(e.contains("init.rn"), "{e}");
        // Port 0 in the flow probe with no id: the column is the file's.
        let text = GOOD
            .replace("{ id: pg-up, uses", "{ uses")
            .replace("port: 5432", "port: 0");
        let e = error(&text);
        let col = text.lines().nth(18).unwrap().find("0 }").unwrap() + 1;
        assert!(e.starts_with(&format!("agent.yaml:19:{col}: ")), "{e}");
    }

    #[test]
    fn multi_line_flow_values_end_at_their_bracket() {
        let text = "runtimes:\n  x:\n    start: {\n      steps: [ { id: a, uses: init.run, with: { command: \"echo '}' # x\" } } ]\n    }\n    probe: {\n      uses: init.wait_file,\n      with: { path: /tmp }\n    }\n    endpoint: e\n";
        let c = AgentConfig::parse(text, "agent.yaml").unwrap();
        assert_eq!(c.runtimes[0].start.init.steps[0].id, "a");
        assert_eq!(c.runtimes[0].probe.init.steps[0].id, "probe");
        let e = error(&text.replace("path: /tmp", "path: /tmp, bad: 1"));
        assert!(e.starts_with("agent.yaml:8:"), "{e}");
    }

    const TWO: &str = "\
runtimes:
  a:
    start:
      steps:
        - { id: x, uses: init.run, with: { command: \"true\" } }
    probe: { uses: init.wait_file, with: { path: /x } }
    endpoint: e
  b:
    start:
      steps:
        - { id: y, uses: init.run, with: { command: \"true\" } }
    probe: { uses: init.wait_file, with: { path: /y } }
    endpoint: f
";

    #[test]
    fn anchors_on_start_and_probe_are_refused_with_their_place() {
        assert_eq!(
            AgentConfig::parse(TWO, "agent.yaml")
                .unwrap()
                .runtimes
                .len(),
            2
        );
        // `start: &s` in `a`, reused as `start: *s` in `b`.
        let text = TWO.replacen("    start:\n", "    start: &s\n", 1).replacen(
            "    start:\n      steps:\n        - { id: y, uses: init.run, with: { command: \"true\" } }\n",
            "    start: *s\n",
            1,
        );
        assert_eq!(
            error(&text),
            "agent.yaml:3:12: runtimes.a.start: a YAML anchor (`&s`) is not supported on \
             `start` or `probe`: write the value out for each runtime"
        );
        let text = TWO.replacen("    probe: {", "    probe: &p {", 1).replace(
            "    probe: { uses: init.wait_file, with: { path: /y } }",
            "    probe: *p",
        );
        assert_eq!(
            error(&text),
            "agent.yaml:6:12: runtimes.a.probe: a YAML anchor (`&p`) is not supported on \
             `start` or `probe`: write the value out for each runtime"
        );
        // An alias to nothing is YAML's own error, at the alias.
        let e = error(&TWO.replace(
            "    probe: { uses: init.wait_file, with: { path: /y } }",
            "    probe: *p",
        ));
        assert_eq!(e, "agent.yaml:12:12: unknown anchor");
    }

    #[test]
    fn an_alias_inside_start_to_an_outside_anchor_is_explained() {
        let anchored = TWO.replacen("with: { command:", "with: &w { command:", 1);
        let text = anchored.replacen("with: { command: \"true\" }", "with: *w", 1);
        assert_eq!(
            error(&text),
            "agent.yaml:11:42: runtimes.b.start: the YAML alias `*w` refers to an anchor \
             outside it; `start` and `probe` are read on their own, so aliases there may \
             only refer to anchors inside the same `start` or `probe`: write the value out"
        );
        // An alias to an anchor inside the same start is plain YAML and works.
        let inside = anchored.replacen(
            "with: &w { command: \"true\" } }\n",
            "with: &w { command: \"true\" } }\n        - { id: x2, uses: init.run, with: *w }\n",
            1,
        );
        let c = AgentConfig::parse(&inside, "agent.yaml").unwrap();
        assert_eq!(c.runtimes[0].start.init.steps.len(), 2);
    }

    #[test]
    fn missing_pieces_are_named() {
        let e = error("runtimes: {}\n");
        assert!(e.contains("`runtimes` is empty"), "{e}");
        let e = error(&GOOD.replace("    endpoint: tcp://127.0.0.1:8080\n", ""));
        assert!(e.contains("missing field `endpoint`"), "{e}");
        let e = error(
            "runtimes:\n  a:\n    start: { steps: [] }\n    probe: { uses: init.wait_file, with: { path: /x } }\n    endpoint: e\n",
        );
        assert!(e.contains("`start` has no steps"), "{e}");
    }
}
