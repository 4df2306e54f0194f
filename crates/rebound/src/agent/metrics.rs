//! `GET /metrics`: Prometheus text exposition, written by hand.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use rebound_ensure::{EnsureMap, StateKind, Status};

/// The endpoints requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1`.
    Handshake,
    /// `POST /v1/runtimes/{name}/ensure`.
    Ensure,
    /// `GET /v1/runtimes/{name}/watch`.
    Watch,
    /// `GET /v1/runtimes`.
    Runtimes,
    /// `GET /v1/events`.
    Events,
    /// `GET /metrics`.
    Metrics,
    /// Any other path.
    Other,
}

impl Endpoint {
    /// Every endpoint, in label order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Handshake,
        Endpoint::Ensure,
        Endpoint::Watch,
        Endpoint::Runtimes,
        Endpoint::Events,
        Endpoint::Metrics,
        Endpoint::Other,
    ];

    /// The `endpoint` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Handshake => "handshake",
            Endpoint::Ensure => "ensure",
            Endpoint::Watch => "watch",
            Endpoint::Runtimes => "runtimes",
            Endpoint::Events => "events",
            Endpoint::Metrics => "metrics",
            Endpoint::Other => "other",
        }
    }
}

/// Counters the server keeps itself (the rest comes from each runtime's
/// [`rebound_ensure::Stats`]).
#[derive(Debug)]
pub struct Metrics {
    /// Ensure answers by runtime, then by status (index into `Status::ALL`).
    calls: BTreeMap<String, [AtomicU64; 5]>,
    /// Requests refused with 401.
    unauthorized: AtomicU64,
    /// Requests by endpoint (index into `Endpoint::ALL`), 401s included.
    requests: [AtomicU64; 7],
}

impl Metrics {
    /// Zeroed counters for these runtime names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            calls: names
                .into_iter()
                .map(|n| (n.clone(), Default::default()))
                .collect(),
            unauthorized: AtomicU64::new(0),
            requests: Default::default(),
        }
    }

    /// Counts one authorized request to `endpoint`.
    pub fn count_request(&self, endpoint: Endpoint) {
        if let Some(i) = Endpoint::ALL.iter().position(|e| *e == endpoint) {
            self.requests[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the request counters and the gauge of open watch streams
    /// (`open`) to `out`.
    pub fn render_streams(&self, out: &mut String, open: u64) {
        header(
            out,
            "rebound_agent_requests_total",
            "counter",
            "Authorized requests, by endpoint.",
        );
        for (endpoint, count) in Endpoint::ALL.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "rebound_agent_requests_total{{endpoint=\"{}\"}} {}",
                endpoint.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "rebound_agent_watch_streams",
            "gauge",
            "Watch and event streams open now.",
        );
        let _ = writeln!(out, "rebound_agent_watch_streams {open}");
    }

    /// Counts one ensure answer.
    pub fn count_call(&self, runtime: &str, status: Status) {
        if let (Some(row), Some(i)) = (
            self.calls.get(runtime),
            Status::ALL.iter().position(|s| *s == status),
        ) {
            row[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one 401.
    pub fn count_unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, runtimes: &EnsureMap<String>) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "rebound_ensure_calls_total",
            "counter",
            "Ensure calls answered, by runtime and status.",
        );
        for (name, row) in &self.calls {
            for (status, count) in Status::ALL.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "rebound_ensure_calls_total{{runtime=\"{name}\",status=\"{status}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
        let stats: Vec<_> = runtimes
            .iter()
            .map(|(n, e)| (n, e.stats(), e.state()))
            .collect();
        let mut counter =
            |name: &str, help: &str, value: &dyn Fn(&rebound_ensure::Stats) -> u64| {
                header(&mut out, name, "counter", help);
                for (runtime, s, _) in &stats {
                    let _ = writeln!(out, "{name}{{runtime=\"{runtime}\"}} {}", value(s));
                }
            };
        counter("rebound_runtime_starts_total", "Starts begun.", &|s| {
            s.starts
        });
        counter(
            "rebound_runtime_start_failures_total",
            "Starts that failed (errors, panics and timeouts).",
            &|s| s.failures,
        );
        counter(
            "rebound_runtime_start_timeouts_total",
            "Starts cancelled at start_timeout.",
            &|s| s.timeouts,
        );
        counter(
            "rebound_runtime_start_panics_total",
            "Starts that panicked.",
            &|s| s.panics,
        );
        counter(
            "rebound_runtime_lost_total",
            "Ready runtimes found dead by the TTL probe.",
            &|s| s.lost,
        );
        header(
            &mut out,
            "rebound_runtime_start_duration_seconds",
            "summary",
            "Time of finished starts.",
        );
        for (runtime, s, _) in &stats {
            let _ = writeln!(
                out,
                "rebound_runtime_start_duration_seconds_sum{{runtime=\"{runtime}\"}} {}",
                s.start_time_total.as_secs_f64()
            );
            let _ = writeln!(
                out,
                "rebound_runtime_start_duration_seconds_count{{runtime=\"{runtime}\"}} {}",
                s.finished
            );
        }
        header(
            &mut out,
            "rebound_runtime_state",
            "gauge",
            "1 for the state each runtime is in.",
        );
        for (runtime, _, view) in &stats {
            for kind in [
                StateKind::NotStarted,
                StateKind::Starting,
                StateKind::Ready,
                StateKind::Failed,
            ] {
                let _ = writeln!(
                    out,
                    "rebound_runtime_state{{runtime=\"{runtime}\",state=\"{kind}\"}} {}",
                    u8::from(view.kind() == kind)
                );
            }
        }
        header(
            &mut out,
            "rebound_agent_unauthorized_total",
            "counter",
            "Requests refused for a missing or wrong token.",
        );
        let _ = writeln!(
            out,
            "rebound_agent_unauthorized_total {}",
            self.unauthorized.load(Ordering::Relaxed)
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};

    #[tokio::test]
    async fn exposition_has_help_type_and_a_sample_per_label_set() {
        let mut map = EnsureMap::new();
        map.insert(
            "db".to_owned(),
            Ensure::new(
                EnsureConfig::default(),
                || async { Ok::<_, StartError>(ReadyInfo::new("e", "")) },
                || async { ProbeOutcome::Down("down".into()) },
            ),
        );
        let metrics = Metrics::new(map.keys());
        metrics.count_call("db", Status::Starting);
        metrics.count_call("db", Status::Starting);
        metrics.count_call("unknown", Status::Reused);
        metrics.count_unauthorized();
        metrics.count_request(Endpoint::Ensure);
        metrics.count_request(Endpoint::Ensure);
        metrics.count_request(Endpoint::Handshake);
        let mut text = metrics.render(&map);
        metrics.render_streams(&mut text, 3);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("# TYPE rebound_ensure_calls_total counter"), "{text}");
        assert!(
            has("rebound_ensure_calls_total{runtime=\"db\",status=\"starting\"} 2"),
            "{text}"
        );
        assert!(
            has("rebound_ensure_calls_total{runtime=\"db\",status=\"reused\"} 0"),
            "{text}"
        );
        assert!(
            has("rebound_runtime_starts_total{runtime=\"db\"} 0"),
            "{text}"
        );
        assert!(
            has("rebound_runtime_start_duration_seconds_count{runtime=\"db\"} 0"),
            "{text}"
        );
        assert!(
            has("rebound_runtime_state{runtime=\"db\",state=\"not_started\"} 1"),
            "{text}"
        );
        assert!(has("rebound_agent_unauthorized_total 1"), "{text}");
        assert!(
            has("rebound_agent_requests_total{endpoint=\"ensure\"} 2"),
            "{text}"
        );
        assert!(
            has("rebound_agent_requests_total{endpoint=\"handshake\"} 1"),
            "{text}"
        );
        assert!(
            has("rebound_agent_requests_total{endpoint=\"watch\"} 0"),
            "{text}"
        );
        assert!(has("rebound_agent_watch_streams 3"), "{text}");
        // Every sample line belongs to a declared metric.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                declared.iter().any(|d| name.starts_with(d)),
                "undeclared sample {sample}"
            );
        }
    }
}
