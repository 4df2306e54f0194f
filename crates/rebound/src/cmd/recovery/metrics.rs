//! `rebound recovery run --metrics-listen ADDR`: `GET /metrics` in the
//! Prometheus text format, with the conventions of the agent's `/metrics`
//! (families prefixed `rebound_`, `# HELP` and `# TYPE` before each, every
//! label set written even at zero, `_total` counters, seconds).
//!
//! The agent's writer is private to its module (behind the `agent`
//! feature), so this is a small one of its own rather than a shared one.
//!
//! Families:
//! - `rebound_recovery_recoveries{state}`: recoveries in the journal by
//!   state, read at each scrape;
//! - `rebound_recovery_rescues`: the rescues (attempts retaken after their
//!   worker was lost) counted on the journal's recoveries;
//! - `rebound_recovery_journal_up`: 1 when the scrape could read the
//!   journal;
//! - `rebound_recovery_attempts_total{strategy,outcome}`: attempts this
//!   process carried out;
//! - `rebound_recovery_attempt_duration_seconds`: histogram of their time;
//! - `rebound_recovery_claim_duration_seconds`: histogram of the journal's
//!   answer time to a claim (claim latency);
//! - `rebound_recovery_claims_total{result}`: claims that took a recovery
//!   or found none.
//!
//! - `rebound_recovery_target_breaker_state{node, state}` (1 on the
//!   node's current state: closed, open, half_open),
//!   `rebound_recovery_target_breaker_failures{node}` (target-side
//!   failures in the node's window) and
//!   `rebound_recovery_target_breaker_openings{node}` (times it opened
//!   since it last closed), from the journal's per-target breakers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rebound_recovery::{
    AnyJournal, Claim, Clock, Journal, Recovery, RecoveryState, Strategy, SystemClock,
    TargetBreakerConfig,
};
use rebound_retry::BreakerState;

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAddr {
    /// `tcp:IP:PORT`.
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Parses `tcp:IP:PORT` (IPv6 in brackets) or `unix:PATH`.
pub fn parse_addr(text: &str) -> Result<MetricsAddr, String> {
    if let Some(rest) = text.strip_prefix("tcp:") {
        return rest
            .parse::<SocketAddr>()
            .map(MetricsAddr::Tcp)
            .map_err(|e| format!("`{text}`: {e}; expected tcp:IP:PORT, e.g. tcp:127.0.0.1:9464"));
    }
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("`{text}`: the socket path is empty"));
        }
        return Ok(MetricsAddr::Unix(PathBuf::from(path)));
    }
    Err(format!(
        "`{text}`: expected tcp:IP:PORT or unix:PATH, e.g. tcp:127.0.0.1:9464"
    ))
}

/// The outcomes an attempt is counted under.
const OUTCOMES: [&str; 5] = [
    "succeeded",
    "rolled_back",
    "retrying",
    "given_up",
    "cancelled",
];

/// Histogram bucket bounds, seconds.
const ATTEMPT_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
const CLAIM_BUCKETS: [f64; 10] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (bound, n) in self.bounds.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug)]
struct Counters {
    /// (strategy, outcome) -> attempts.
    attempts: BTreeMap<(&'static str, &'static str), u64>,
    attempt_time: Histogram,
    claim_time: Histogram,
    claims_taken: u64,
    claims_empty: u64,
}

/// What `run` counts for `/metrics`; shared by its workers.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    counters: Arc<Mutex<Counters>>,
    /// The breaker settings the node families are read with (the
    /// failure window).
    breaker: TargetBreakerConfig,
}

impl RunMetrics {
    /// Counters at zero; the node families are read with `breaker`'s
    /// window.
    pub fn new(breaker: TargetBreakerConfig) -> Self {
        let mut attempts = BTreeMap::new();
        for s in Strategy::ALL {
            for o in OUTCOMES {
                attempts.insert((s.as_str(), o), 0);
            }
        }
        Self {
            counters: Arc::new(Mutex::new(Counters {
                attempts,
                attempt_time: Histogram::new(&ATTEMPT_BUCKETS),
                claim_time: Histogram::new(&CLAIM_BUCKETS),
                claims_taken: 0,
                claims_empty: 0,
            })),
            breaker,
        }
    }
}

impl RunMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one attempt: `claim` as claimed, `done` as recorded.
    pub fn attempt(&self, claim: &Claim, done: &Recovery) {
        let outcome = match done.state {
            RecoveryState::Succeeded => "succeeded",
            RecoveryState::RolledBack => "rolled_back",
            RecoveryState::Pending => "retrying",
            RecoveryState::GivenUp => "given_up",
            RecoveryState::Cancelled => "cancelled",
            // An attempt never ends running.
            RecoveryState::Running => return,
        };
        let took = done.updated_ms.saturating_sub(claim.recovery.updated_ms);
        let mut c = self.lock();
        *c.attempts
            .entry((claim.recovery.strategy.as_str(), outcome))
            .or_default() += 1;
        c.attempt_time.observe(took as f64 / 1000.0);
    }

    /// Counts one claim that took `took` and claimed `claims`.
    pub fn claim(&self, took: Duration, claims: &[Claim]) {
        let mut c = self.lock();
        c.claim_time.observe(took.as_secs_f64());
        if claims.is_empty() {
            c.claims_empty += 1;
        } else {
            c.claims_taken += 1;
        }
    }

    /// The exposition: the journal's state (read now) and the counters.
    pub async fn render(&self, journal: &AnyJournal) -> String {
        let mut out = String::new();
        let listed = journal.list(None).await;
        header(
            &mut out,
            "rebound_recovery_journal_up",
            "gauge",
            "1 when this scrape could read the journal.",
        );
        let _ = writeln!(
            out,
            "rebound_recovery_journal_up {}",
            u8::from(listed.is_ok())
        );
        if let Ok(recs) = &listed {
            header(
                &mut out,
                "rebound_recovery_recoveries",
                "gauge",
                "Recoveries in the journal, by state.",
            );
            for state in RecoveryState::ALL {
                let n = recs.iter().filter(|r| r.state == state).count();
                let _ = writeln!(
                    out,
                    "rebound_recovery_recoveries{{state=\"{}\"}} {n}",
                    state.as_str()
                );
            }
            header(
                &mut out,
                "rebound_recovery_rescues",
                "gauge",
                "Rescues (attempts retaken after their worker was lost) counted on the journal's recoveries.",
            );
            let rescues: u64 = recs.iter().map(|r| u64::from(r.rescues)).sum();
            let _ = writeln!(out, "rebound_recovery_rescues {rescues}");
        }
        {
            let c = self.lock();
            header(
                &mut out,
                "rebound_recovery_attempts_total",
                "counter",
                "Attempts this process carried out, by strategy and outcome.",
            );
            for ((strategy, outcome), n) in &c.attempts {
                let _ = writeln!(
                    out,
                    "rebound_recovery_attempts_total{{strategy=\"{strategy}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            c.attempt_time.render(
                &mut out,
                "rebound_recovery_attempt_duration_seconds",
                "Time from claim to recorded outcome of each attempt.",
            );
            c.claim_time.render(
                &mut out,
                "rebound_recovery_claim_duration_seconds",
                "Time the journal took to answer each claim.",
            );
            header(
                &mut out,
                "rebound_recovery_claims_total",
                "counter",
                "Claims, by whether they took a recovery.",
            );
            let _ = writeln!(
                out,
                "rebound_recovery_claims_total{{result=\"claimed\"}} {}",
                c.claims_taken
            );
            let _ = writeln!(
                out,
                "rebound_recovery_claims_total{{result=\"empty\"}} {}",
                c.claims_empty
            );
        }
        extra_families(journal, &self.breaker, &mut out).await;
        out
    }
}

/// The per-target breaker families, read from the journal now (nothing
/// when it cannot be read: `rebound_recovery_journal_up` says so).
async fn extra_families(journal: &AnyJournal, breaker: &TargetBreakerConfig, out: &mut String) {
    let Ok(nodes) = journal.targets().await else {
        return;
    };
    let now = SystemClock.now_ms();
    header(
        out,
        "rebound_recovery_target_breaker_state",
        "gauge",
        "Each target node's breaker: 1 on its current state (closed, open, half_open).",
    );
    for n in &nodes {
        let state = n.state(now);
        for (name, s) in [
            ("closed", BreakerState::Closed),
            ("open", BreakerState::Open),
            ("half_open", BreakerState::HalfOpen),
        ] {
            let _ = writeln!(
                out,
                "rebound_recovery_target_breaker_state{{node=\"{}\",state=\"{name}\"}} {}",
                label(&n.node),
                u8::from(state == s)
            );
        }
    }
    header(
        out,
        "rebound_recovery_target_breaker_failures",
        "gauge",
        "Target-side failures counted in each node's breaker window.",
    );
    for n in &nodes {
        let _ = writeln!(
            out,
            "rebound_recovery_target_breaker_failures{{node=\"{}\"}} {}",
            label(&n.node),
            n.failures_in_window(now, breaker)
        );
    }
    header(
        out,
        "rebound_recovery_target_breaker_openings",
        "gauge",
        "Times each node's breaker opened since it last closed (its cool-down grows with them).",
    );
    for n in &nodes {
        let _ = writeln!(
            out,
            "rebound_recovery_target_breaker_openings{{node=\"{}\"}} {}",
            label(&n.node),
            n.openings
        );
    }
}

/// A label value as the text format wants it: backslash, double quote and
/// line feed escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Binds `addr` (failing now, before any worker starts, when it cannot)
/// and serves `/metrics` from `metrics` and `journal` until dropped.
pub async fn serve(
    addr: &MetricsAddr,
    metrics: RunMetrics,
    journal: AnyJournal,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let state = Arc::new((metrics, journal));
    match addr {
        MetricsAddr::Tcp(a) => {
            let listener = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
            Ok(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(connection(stream, Arc::clone(&state)));
                }
            }))
        }
        MetricsAddr::Unix(path) => {
            // A socket left by an earlier run: replace it.
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                let _ = std::fs::remove_file(path);
            }
            let listener = tokio::net::UnixListener::bind(path)
                .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
            Ok(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(connection(stream, Arc::clone(&state)));
                }
            }))
        }
    }
}

async fn connection<S>(stream: S, state: Arc<(RunMetrics, AnyJournal)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let state = Arc::clone(&state);
        async move { Ok::<_, std::convert::Infallible>(answer(&req, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    req: &Request<hyper::body::Incoming>,
    state: &(RunMetrics, AnyJournal),
) -> Response<Full<Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.0.render(&state.1).await,
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET /metrics\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: this serves GET /metrics\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_addr("tcp:127.0.0.1:9464").unwrap(),
            MetricsAddr::Tcp("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_addr("unix:/run/m.sock").unwrap(),
            MetricsAddr::Unix("/run/m.sock".into())
        );
        assert!(
            parse_addr("tcp:localhost")
                .unwrap_err()
                .contains("tcp:IP:PORT")
        );
        assert!(
            parse_addr("127.0.0.1:80")
                .unwrap_err()
                .contains("unix:PATH")
        );
        assert!(parse_addr("unix:").is_err());
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::new(&CLAIM_BUCKETS);
        h.observe(0.000_1);
        h.observe(0.003);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("x_count 2\n"), "{out}");
    }
}
