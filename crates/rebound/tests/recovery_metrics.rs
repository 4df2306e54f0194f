//! `rebound recovery run --metrics-listen`, scraped from a real `run`
//! process with a real HTTP client (curl) over TCP and a Unix socket.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Cli, free_port, send_signal, wait_until_within};

/// curl's answer (head, body), or `None` when it could not get one.
fn try_curl(args: &[&str]) -> Option<(String, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-D", "-"])
        .args(args)
        .output()
        .expect("curl must be installed for this test");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

#[track_caller]
fn curl(args: &[&str]) -> (String, String) {
    try_curl(args).unwrap_or_else(|| panic!("curl {args:?}: no HTTP answer"))
}

/// The value of the sample named exactly `sample` (name and labels).
fn sample(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

struct Run {
    dir: tempfile::TempDir,
    journal: String,
    child: Child,
}

impl Run {
    fn start(listen: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let journal = format!("sqlite:{}", dir.path().join("j.db").display());
        let cli = |args: &[&str]| {
            Cli::new()
                .args(["recovery", "--journal", &journal, "--initial-delay", "1ms"])
                .args(args)
                .current_dir(dir.path())
        };
        for id in ["good", "bad"] {
            cli(&["record", "--migration", id, "--workload", id])
                .args(["--source", "a", "--target", "b", "--kind", "timeout"])
                .args(["--message", "slow"])
                .run()
                .code(0);
        }
        // "bad" fails with a transient network error (exit 75): retried
        // minutes later (--initial-delay 4m for the run).
        let mut cmd = Cli::new()
            .args(["recovery", "--journal", &journal, "--initial-delay", "4m"])
            .current_dir(dir.path())
            .args([
                "run",
                "--metrics-listen",
                listen,
                "--migrate-cmd",
                "sleep 0.1; [ \"$REBOUND_MIGRATION\" = good ] || exit 75",
                "--rollback-cmd",
                "true",
                "--json",
            ])
            .command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        Self {
            dir,
            journal,
            child,
        }
    }

    fn stop(self) {
        let Run { child, dir, .. } = self;
        send_signal(child.id(), "TERM");
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(143),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(dir);
    }
}

fn check_exposition(head: &str, body: &str) {
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    for family in [
        "rebound_recovery_recoveries",
        "rebound_recovery_attempts_total",
        "rebound_recovery_attempt_duration_seconds",
        "rebound_recovery_claim_duration_seconds",
        "rebound_recovery_rescues",
        "rebound_recovery_journal_up",
        "rebound_recovery_target_breaker_state",
        "rebound_recovery_target_breaker_failures",
        "rebound_recovery_target_breaker_openings",
    ] {
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "{family}\n{body}"
        );
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family}\n{body}"
        );
    }
    assert_eq!(sample(body, "rebound_recovery_journal_up"), Some(1.0));
    // Both recorded failures were timeouts to node b (target-side kinds);
    // "good" then succeeded there, which closed b's breaker.
    assert_eq!(
        sample(
            body,
            "rebound_recovery_target_breaker_state{node=\"b\",state=\"closed\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            body,
            "rebound_recovery_target_breaker_state{node=\"b\",state=\"open\"}"
        ),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(body, "rebound_recovery_recoveries{state=\"succeeded\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(body, "rebound_recovery_recoveries{state=\"pending\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(body, "rebound_recovery_recoveries{state=\"given_up\"}"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(
            body,
            "rebound_recovery_attempts_total{strategy=\"retry_on_same_target\",outcome=\"succeeded\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            body,
            "rebound_recovery_attempts_total{strategy=\"retry_on_same_target\",outcome=\"retrying\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(body, "rebound_recovery_attempt_duration_seconds_count"),
        Some(2.0),
        "{body}"
    );
    // Each took the command's 0.1 s at least.
    let sum = sample(body, "rebound_recovery_attempt_duration_seconds_sum").unwrap();
    assert!(sum >= 0.2, "{body}");
    assert_eq!(
        sample(
            body,
            "rebound_recovery_attempt_duration_seconds_bucket{le=\"0.1\"}"
        ),
        Some(0.0),
        "{body}"
    );
    let claims = sample(body, "rebound_recovery_claim_duration_seconds_count").unwrap();
    assert!(claims >= 2.0, "{body}");
    assert_eq!(
        sample(body, "rebound_recovery_claims_total{result=\"claimed\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(sample(body, "rebound_recovery_rescues"), Some(0.0));
}

/// Scrapes until both attempts are counted.
fn scrape_until_done(args: &[&str]) -> (String, String) {
    let mut last = (String::new(), String::new());
    wait_until_within(
        Duration::from_secs(20),
        || {
            let Some(got) = try_curl(args) else {
                return false;
            };
            last = got;
            sample(&last.1, "rebound_recovery_attempt_duration_seconds_count") == Some(2.0)
        },
        "both attempts to be counted",
    );
    last
}

#[test]
fn metrics_over_tcp_count_states_attempts_and_durations() {
    let port = free_port();
    let run = Run::start(&format!("tcp:127.0.0.1:{port}"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (head, body) = scrape_until_done(&[&url]);
    check_exposition(&head, &body);
    // Anything else: 404; another method: 405.
    let (head, _) = curl(&[&format!("http://127.0.0.1:{port}/other")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = curl(&["-X", "POST", &url]);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(run.journal.starts_with("sqlite:"));
    run.stop();
}

#[test]
fn metrics_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("metrics.sock");
    let run = Run::start(&format!("unix:{}", socket.display()));
    wait_until_within(
        Duration::from_secs(20),
        || socket.exists(),
        "the metrics socket",
    );
    let socket = socket.display().to_string();
    let (head, body) = scrape_until_done(&["--unix-socket", &socket, "http://run/metrics"]);
    check_exposition(&head, &body);
    run.stop();
}

#[test]
fn a_bad_metrics_address_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    for (addr, says) in [
        ("127.0.0.1:9464", "tcp:IP:PORT or unix:PATH"),
        ("tcp:localhost:9464", "tcp:IP:PORT"),
    ] {
        Cli::new()
            .args([
                "recovery",
                "--journal",
                &journal,
                "run",
                "--metrics-listen",
                addr,
            ])
            .args(["--migrate-cmd", "true", "--rollback-cmd", "true", "--once"])
            .run()
            .code(2)
            .stderr_has(says);
    }
    // A port that is taken: exit 2 naming it, nothing run.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", taken.local_addr().unwrap());
    Cli::new()
        .args([
            "recovery",
            "--journal",
            &journal,
            "run",
            "--metrics-listen",
            &addr,
        ])
        .args(["--migrate-cmd", "true", "--rollback-cmd", "true", "--once"])
        .run()
        .code(2)
        .stderr_has(&addr);
}
