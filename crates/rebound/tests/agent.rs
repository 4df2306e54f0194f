//! `rebound agent` and `rebound ensure` end to end: a real agent process on
//! a temporary socket, runtimes started by real shell commands, probed over
//! real TCP.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    Agent, Cli, Outcome, QUICK_CONFIG, agent_cli, alive, ensure_cli, ensure_wait, finish,
    free_port, http, never_ready, one_runtime, quick_config_dir, read_pid, send_signal,
    spawn_logging, stderr_until, stop_cleanly, unix_http, wait_until, web_runtime, write_config,
};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A runtime `web` whose start records itself in `{dir}/starts`, then opens
/// `port` (python's http.server) half a second later, in the background.
fn web_config(port: u16, ttl: &str) -> String {
    let before = "echo start >> {dir}/starts; ";
    let rest = format!("    start_timeout: 20s\n    ready_ttl: {ttl}\n");
    format!(
        "runtimes:\n{}",
        web_runtime(port, before, "sleep 0.5; ", &rest)
    )
}

#[test]
fn fifty_concurrent_ensure_calls_start_the_runtime_once() {
    let port = free_port();
    let agent = Agent::start(&web_config(port, "60s"));
    let answers: Vec<serde_json::Value> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..50)
            .map(|_| s.spawn(|| agent.ensure("web", true)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for a in &answers {
        assert_eq!(a["status"], "starting", "{a}");
        assert_eq!(a["ready"], false);
    }
    ensure_wait(&agent.addr(), "web", "20s")
        .run()
        .code(0)
        .stdout_has(&format!("http://127.0.0.1:{port}"));
    let again = agent.ensure("web", true);
    assert_eq!(again["status"], "reused");
    assert_eq!(again["endpoint"], format!("http://127.0.0.1:{port}"));
    assert_eq!(lines(&agent.path("starts")), 1);
    let (_, metrics) = agent.request("GET", "/metrics", "");
    assert!(
        metrics.contains("rebound_runtime_starts_total{runtime=\"web\"} 1"),
        "{metrics}"
    );
    let starting: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("rebound_ensure_calls_total{runtime=\"web\",status=\"starting\"} ")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no starting counter in\n{metrics}"));
    assert!(starting >= 50, "{metrics}");
    assert!(
        metrics.contains("rebound_runtime_state{runtime=\"web\",state=\"ready\"} 1"),
        "{metrics}"
    );
}

#[test]
fn killed_runtime_is_reported_not_ready_after_the_ttl_and_started_again() {
    let port = free_port();
    let agent = Agent::start(&web_config(port, "1s"));
    ensure_wait(&agent.addr(), "web", "20s").run().code(0);
    send_signal(read_pid(&agent.path("web.pid")), "KILL");
    wait_until(
        || agent.state("web")["state"] == "not_started",
        "the TTL probe to find it dead",
    );
    let state = agent.state("web");
    assert!(
        state["message"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{state}"
    );
    // A probe-only call reports what it finds and starts nothing.
    let probed = agent.ensure("web", false);
    assert_eq!(probed["status"], "not_started");
    assert_eq!(lines(&agent.path("starts")), 1);
    ensure_wait(&agent.addr(), "web", "20s").run().code(0);
    assert_eq!(lines(&agent.path("starts")), 2);
}

#[test]
fn hanging_start_fails_at_the_start_timeout_and_is_killed() {
    let agent = Agent::start(&one_runtime(
        "stuck",
        "echo $$ > {dir}/hang.pid; exec sleep 60",
        &never_ready(
            "200ms",
            "    start_timeout: 1s\n    backoff: { initial: 1m }\n",
        ),
    ));
    let out = ensure_wait(&agent.addr(), "stuck", "30s")
        .args(["--json"])
        .run()
        .code(78)
        .stderr_has("start timed out after 1s");
    assert!(
        out.stdout().contains("\"outcome\":\"failed\""),
        "{}",
        out.stdout()
    );
    let pid = read_pid(&agent.path("hang.pid"));
    wait_until(|| !alive(pid), "the hanging start's process to be killed");
    assert_eq!(agent.state("stuck")["state"], "failed");
}

#[test]
fn failing_start_is_retried_only_after_the_backoff() {
    let agent = Agent::start(&one_runtime(
        "broken",
        "echo try >> {dir}/starts; echo 'no such config' >&2; exit 1",
        &never_ready("200ms", "    backoff: { initial: 1500ms, jitter: none }\n"),
    ));
    assert_eq!(agent.ensure("broken", true)["status"], "starting");
    wait_until(
        || agent.state("broken")["state"] == "failed",
        "the start to fail",
    );
    // Every poll inside the backoff gets `failed` with the time left, and
    // nothing is started again.
    let first = agent.ensure("broken", true);
    assert_eq!(first["status"], "failed");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("no such config"),
        "{first}"
    );
    let left = first["retry_after_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 1500, "{first}");
    for _ in 0..20 {
        let again = agent.ensure("broken", true);
        if again["status"] != "failed" {
            break;
        }
        assert!(again["retry_after_ms"].as_u64().unwrap() <= left);
    }
    let waited = agent.state("broken")["retry_after_ms"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(lines(&agent.path("starts")), 1);
    // Once the agent's own retry_after has passed, the next call starts again.
    // A real sleep (about 1.5 s) only because this is a real agent process:
    // the exact backoff window is checked in virtual time by rebound-ensure's
    // `failed_start_is_not_retried_before_the_backoff`; here it is the wiring.
    std::thread::sleep(Duration::from_millis(waited + 50));
    assert_eq!(agent.ensure("broken", true)["status"], "starting");
    wait_until(|| lines(&agent.path("starts")) == 2, "the second start");
    wait_until(
        || agent.state("broken")["failures"] == 2,
        "the second failure",
    );
}

#[test]
fn runtime_already_running_is_adopted_without_running_the_start() {
    let port = free_port();
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let agent = Agent::start(&web_config(port, "60s"));
    ensure_wait(&agent.addr(), "web", "20s")
        .run()
        .code(0)
        .stdout_has(&format!("http://127.0.0.1:{port}"));
    assert_eq!(lines(&agent.path("starts")), 0);
    assert!(
        agent.ensure("web", true)["message"]
            .as_str()
            .unwrap()
            .contains("adopted")
    );
    drop(server);
}

#[test]
fn bad_config_exits_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        "runtimes:\n  web:\n    start: { steps: [ { id: a, uses: init.run, with: { command: \"true\" } } ] }\n    probe: { uses: init.wait_tcp, with: { host: 127.0.0.1, port: 70000 } }\n    endpoint: x\n",
    )
    .unwrap();
    agent_cli(
        &path,
        &format!("unix:{}", dir.path().join("s.sock").display()),
    )
    .usage_error(&format!("{}:4:", path.display()))
    .stderr_has("70000");
    std::fs::write(&path, "runtimes:\n  web:\n    strat: {}\n").unwrap();
    Cli::new()
        .args(["agent", "--config"])
        .args([&path])
        .usage_error(&format!("{}:3:5: ", path.display()))
        .stderr_has("unknown field `strat`");
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn tcp_needs_a_token_and_answers_401_without_it() {
    let (dir, config) = quick_config_dir();
    agent_cli(&config, "tcp:127.0.0.1:0").usage_error("requires --token-file");

    let token = "s3cret-token-value";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut child = spawn_logging(
        agent_cli(&config, "tcp:127.0.0.1:0")
            .args(["--token-file"])
            .args([&token_file])
            .env("REBOUND_LOG", "debug"),
    );
    // The first stderr line names the bound port.
    let (listening, text, mut stderr) = stderr_until(&mut child, "runtime(s)");
    assert!(listening, "agent ended early: {text}");
    let port: u16 = text
        .split("tcp:127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let connect = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let path = "/v1/runtimes/quick/ensure";
    let (code, body) = http(connect(), "POST", path, "{}", None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(http(connect(), "POST", path, "{}", Some("wrong")).0, 401);
    assert_eq!(http(connect(), "GET", "/metrics", "", None).0, 401);
    assert_eq!(http(connect(), "POST", path, "{}", Some(token)).0, 200);
    let addr = format!("tcp:127.0.0.1:{port}");
    ensure_wait(&addr, "quick", "10s").usage_error("missing or wrong bearer token");
    ensure_wait(&addr, "quick", "10s")
        .env("REBOUND_AGENT_TOKEN", token)
        .run()
        .code(0)
        .stdout_has("file://");
    ensure_cli(&addr, "quick")
        .args(["--token-file"])
        .args([&token_file])
        .run()
        .code(0);
    send_signal(child.id(), "TERM");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        !rest.contains(token) && !text.contains(token),
        "the token was logged:\n{text}{rest}"
    );
}

#[test]
fn protocol_errors_unknown_runtime_bad_json_and_listing() {
    let agent = Agent::start(QUICK_CONFIG);
    let reply = agent.request_json("POST", "/v1/runtimes/nope/ensure", "{}", 404);
    assert_eq!(reply["error"], "unknown runtime `nope`");
    assert_eq!(reply["runtimes"], serde_json::json!(["quick"]));
    let (code, body) = agent.request("POST", "/v1/runtimes/quick/ensure", "{not json");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("bad request body"), "{body}");
    let (code, _) = agent.request(
        "POST",
        "/v1/runtimes/quick/ensure",
        "{\"start_if_needed\": true, \"x\": 1}",
    );
    assert_eq!(code, 400);
    assert_eq!(agent.request("GET", "/v1/runtimes/quick/ensure", "").0, 405);
    assert_eq!(agent.request("GET", "/nothing", "").0, 404);
    // `--probe` starts nothing: not running, the wait runs out.
    ensure_cli(&agent.addr(), "quick")
        .args(["--probe", "--wait", "3s"])
        .run()
        .code(124)
        .stderr_has("not_started");
    assert_eq!(agent.state("quick")["state"], "not_started");
    assert!(!agent.path("up").exists());
    // An empty body means start_if_needed = true.
    let (code, body) = agent.request("POST", "/v1/runtimes/quick/ensure", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"starting\""), "{body}");
    wait_until(
        || agent.state("quick")["state"] == "ready",
        "quick to be ready",
    );
    let state = agent.state("quick");
    assert!(
        state["endpoint"].as_str().unwrap().starts_with("file://"),
        "{state}"
    );
    ensure_cli(&agent.addr(), "quick")
        .args(["--probe", "--wait", "5s"])
        .run()
        .code(0)
        .stdout_has("file://");
    ensure_cli(&agent.addr(), "nope")
        .run()
        .code(78)
        .stderr_has("unknown runtime `nope`")
        .stderr_has("runtimes: quick");
}

#[test]
fn socket_is_private_and_removed_on_sigterm() {
    let mut agent = Agent::start(QUICK_CONFIG);
    let mode = std::fs::metadata(agent.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let (code, stderr) = agent.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!agent.socket().exists());
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    // A probe that says when it begins, then takes 2 s and finds it down.
    let config = QUICK_CONFIG.replace(
        r#"probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }"#,
        r#"probe: { uses: init.run, with: { command: "touch {dir}/probing; sleep 2; exit 1" }, timeout: 5s }"#,
    );
    assert_ne!(config, QUICK_CONFIG);
    let mut agent = Agent::start(&config);
    let socket = agent.socket().to_path_buf();
    // A probe-only call on a runtime that is not up waits for that probe.
    let in_flight = std::thread::spawn(move || {
        let stream = UnixStream::connect(&socket).unwrap();
        http(
            stream,
            "POST",
            "/v1/runtimes/quick/ensure",
            "{\"start_if_needed\": false}",
            None,
        )
    });
    // The request is in the agent once its probe has begun.
    wait_until(|| agent.path("probing").exists(), "the probe to begin");
    let (code, stderr) = agent.stop();
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"not_started\""), "{body}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!agent.socket().exists());
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    // A socket file nobody listens on, as a crashed agent leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let config = write_config(dir.path(), QUICK_CONFIG);
    let mut child = spawn_logging(agent_cli(&config, &format!("unix:{}", socket.display())));
    let addr = format!("unix:{}", socket.display());
    ensure_wait(&addr, "quick", "20s").run().code(0);
    stop_cleanly(&mut child);
}

#[test]
fn ensure_retries_while_the_agent_is_not_up_yet() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("late.sock");
    let addr = format!("unix:{}", socket.display());
    let mut client = ensure_wait(&addr, "quick", "30s").spawn();
    // The agent starts only once the client has met the missing socket.
    let mut stderr = std::io::BufReader::new(client.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("agent unreachable"), "{first}");
    let config = write_config(dir.path(), QUICK_CONFIG);
    let mut agent = agent_cli(&config, &addr)
        .command()
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = client.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{first}{rest}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("file://"));
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn ensure_exits_124_when_the_wait_runs_out() {
    let agent = Agent::start(&one_runtime(
        "slow",
        "echo $$ > {dir}/slow.pid; exec sleep 60",
        &never_ready("200ms", ""),
    ));
    let out = ensure_wait(&agent.addr(), "slow", "1s")
        .args(["--json"])
        .run()
        .code(124)
        .stderr_has("not ready after 1s");
    let first: serde_json::Value =
        serde_json::from_str(out.stdout().lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "answer");
    assert_eq!(first["status"], "starting");
    let last: serde_json::Value =
        serde_json::from_str(out.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "timeout");
    ensure_wait(&agent.addr(), "slow", "nonsense").run().code(2);
}

#[test]
fn help_shows_examples_and_exit_codes() {
    for command in ["agent", "ensure"] {
        Cli::new()
            .args([command, "--help"])
            .run()
            .code(0)
            .stdout_has("Examples:")
            .stdout_has(&format!("  rebound {command} --"))
            .stdout_has("Exit codes: 0 ");
    }
}

#[test]
fn ensure_waits_out_a_short_backoff_and_then_succeeds() {
    // The first start fails, the second (after a 300 ms backoff) works.
    let agent = Agent::start(&one_runtime(
        "flaky",
        "if [ -e {dir}/tried ]; then touch {dir}/up; else touch {dir}/tried; exit 1; fi",
        r#"    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 200ms }
    endpoint: "file://{dir}/up"
    backoff: { initial: 300ms, jitter: none }
"#,
    ));
    let out = ensure_wait(&agent.addr(), "flaky", "20s")
        .args(["--json"])
        .run()
        .code(0);
    let events: Vec<serde_json::Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed = events
        .iter()
        .find(|e| e["status"] == "failed")
        .unwrap_or_else(|| panic!("no `failed` answer in {events:?}"));
    let after = failed["retry_after_ms"].as_u64().unwrap();
    assert!(after > 0 && after <= 300, "{failed}");
    // retry_after_ms is honoured: the client sleeps it out and asks once
    // more, instead of polling into the backoff (which answers `failed`).
    let failed_answers = events.iter().filter(|e| e["status"] == "failed").count();
    assert_eq!(failed_answers, 1, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "ready", "{last}");
    assert_eq!(agent.state("flaky")["failures"], 0);
    assert_eq!(agent.state("flaky")["state"], "ready");
}

#[test]
fn probe_without_a_timeout_does_not_hold_the_start() {
    // The probe step has no `timeout:` of its own: each probe inside the
    // start is still bounded (default 5 s, the adoption probe 500 ms), so the
    // start steps run and the runtime is ready long before start_timeout.
    // Before, the adoption probe waited for the file until start_timeout.
    let agent = Agent::start(
        r#"runtimes:
  plain:
    start:
      steps:
        - id: touch
          uses: init.run
          with: { command: ["touch", "{dir}/up"] }
    probe: { uses: init.wait_file, with: { path: "{dir}/up" } }
    endpoint: "file://{dir}/up"
    start_timeout: 1h
"#,
    );
    ensure_wait(&agent.addr(), "plain", "15s")
        .run()
        .code(0)
        .stdout_has("file://");
    let state = agent.state("plain");
    assert!(
        state["message"].as_str().unwrap().starts_with("started:"),
        "{state}"
    );
}

#[test]
fn a_wait_too_long_for_the_clock_waits_instead_of_panicking() {
    let agent = Agent::start(QUICK_CONFIG);
    // u64::MAX seconds overflowed the deadline: a panic (exit 101). The
    // one duration grammar now refuses it (above about 136 years), naming
    // the flag; the longest wait it reads still waits.
    ensure_wait(&agent.addr(), "quick", "18446744073709551615s")
        .usage_error("invalid value '18446744073709551615s' for '--wait <D>': duration \"18446744073709551615s\" is too large");
    ensure_wait(&agent.addr(), "quick", "4294967295")
        .run()
        .code(0)
        .stdout_has("file://");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_dropped() {
    // Slow clients (slowloris): a connection whose headers never end is
    // closed after the agent's 10 s header timeout; before, it was held for
    // ever, and enough of them used up the agent's descriptors.
    let agent = Agent::start(QUICK_CONFIG);
    let mut slow = UnixStream::connect(agent.socket()).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n")
        .unwrap();
    // Other clients are served meanwhile.
    assert_eq!(agent.request("GET", "/metrics", "").0, 200);
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(
        read.is_ok(),
        "the slow connection was still open after 30 s: {read:?}"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("200 OK"),
        "an unfinished request was answered: {text}"
    );
}

#[test]
fn a_client_that_shuts_its_write_side_after_the_request_is_answered() {
    // `printf 'GET ...' | nc -N`, or any client that half-closes once its
    // request is out: the end of its input must not end the exchange
    // before the answer is written.
    let agent = Agent::start(QUICK_CONFIG);
    let mut client = UnixStream::connect(agent.socket()).unwrap();
    client
        .write_all(b"GET /v1 HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    assert!(answer.contains("\"protocol\""), "{answer}");
}

#[test]
fn longest_socket_path_binds_and_a_second_agent_is_refused() {
    let (dir, config) = quick_config_dir();
    // 107 bytes, the most a Unix socket path may have: before, the agent
    // bound it under a longer temporary name first and failed (exit 3).
    let base = dir.path().display().to_string();
    let socket = format!("{base}/{}", "s".repeat(107 - base.len() - 1));
    assert_eq!(socket.len(), 107);
    let addr = format!("unix:{socket}");
    let mut first = spawn_logging(agent_cli(&config, &addr));
    ensure_wait(&addr, "quick", "20s").run().code(0);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    agent_cli(&config, &addr)
        .run()
        .code(3)
        .stderr_has("another agent is listening");
    // One byte more is refused up front, naming the limit.
    agent_cli(&config, &format!("unix:{socket}x")).usage_error("at most 107");
    ensure_cli("tcp:127.0.0.1:0", "quick").usage_error("port 0");
    stop_cleanly(&mut first);
    assert!(!Path::new(&socket).exists());
}

#[test]
fn log_lines_of_a_start_name_the_runtime() {
    // With several runtimes, "runtime start failed" must say which one.
    let mut agent = Agent::start(
        r#"runtimes:
  broken:
    start:
      steps:
        - { id: fail, uses: init.run, with: { command: "exit 1" } }
    probe: { uses: init.wait_file, with: { path: "{dir}/never" }, timeout: 100ms }
    endpoint: none
  other:
    start:
      steps:
        - { id: ok, uses: init.run, with: { command: "true" } }
    probe: { uses: init.wait_file, with: { path: "{dir}/never" }, timeout: 100ms }
    endpoint: none
"#,
    );
    assert_eq!(agent.ensure("broken", true)["status"], "starting");
    wait_until(
        || agent.state("broken")["state"] == "failed",
        "the start to fail",
    );
    let (code, stderr) = agent.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let plain = strip_ansi(&stderr);
    let line = plain
        .lines()
        .find(|l| l.contains("runtime start failed"))
        .unwrap_or_else(|| panic!("no start failure logged:\n{plain}"));
    assert!(line.contains("runtime=broken"), "{line}");
}

/// `text` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn wrong_method_gets_405_with_the_allowed_one() {
    let agent = Agent::start(QUICK_CONFIG);
    for (request, allow) in [
        ("GET /v1/runtimes/quick/ensure", "POST"),
        ("DELETE /v1/runtimes", "GET"),
        ("POST /metrics", "GET"),
    ] {
        let mut stream = UnixStream::connect(agent.socket()).unwrap();
        write!(
            stream,
            "{request} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let head = response.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 405"), "{response}");
        assert!(
            head.contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
            "{response}"
        );
    }
}

#[test]
fn a_wait_that_runs_out_between_failed_starts_names_the_failure() {
    // Every start fails after a short backoff: when --wait runs out the last
    // answer is usually `starting` (a retry is running), and it still says
    // why the starts fail. Before, it said only "runtime start in progress".
    let agent = Agent::start(&one_runtime(
        "broken",
        "sleep 0.2; echo 'bad flag --xyz' >&2; exit 1",
        &never_ready(
            "100ms",
            "    backoff: { initial: 100ms, max: 100ms, jitter: none }\n",
        ),
    ));
    ensure_wait(&agent.addr(), "broken", "2s")
        .run()
        .code(124)
        .stderr_has("not ready after 2s")
        .stderr_has("bad flag --xyz");
}

#[test]
fn probe_of_a_failed_runtime_polls_at_the_usual_pace() {
    // Once its backoff is over, a failed runtime answers probe-only calls
    // `failed` with retry_after_ms 0. `ensure --probe` waited out that 0 ms
    // (plus up to 50 ms) and so probed it about 40 times a second.
    let agent = Agent::start(&one_runtime(
        "broken",
        "exit 1",
        r#"    probe: { uses: init.run, with: { command: "exit 1" }, timeout: 1s }
    endpoint: none
    backoff: { initial: 100ms, max: 100ms, jitter: none }
"#,
    ));
    assert_eq!(agent.ensure("broken", true)["status"], "starting");
    wait_until(
        || {
            let state = agent.state("broken");
            state["state"] == "failed" && state["retry_after_ms"] == 0
        },
        "the start to fail and its backoff to pass",
    );
    let out = ensure_cli(&agent.addr(), "broken")
        .args(["--probe", "--wait", "2s", "--json"])
        .run()
        .code(124);
    let answers = out
        .stdout()
        .lines()
        .filter(|l| l.contains("\"event\":\"answer\""))
        .count();
    // The connection preset: 50 ms doubling to 2 s, with jitter, is at most
    // about 6 polls in 2 s; probing takes time too.
    assert!(
        (1..=10).contains(&answers),
        "{answers} answers:\n{}",
        out.stdout()
    );
}

// Socket activation, with systemd's own test tool: `systemd-socket-activate
// -l ADDR rebound agent ...` binds ADDR, waits for the first connection,
// then executes rebound with the socket as fd 3 (LISTEN_FDS=1,
// LISTEN_PID=its pid, LISTEN_FDNAMES from --fdname).

/// `systemd-socket-activate ARGS... rebound agent --config CONFIG EXTRA...`
/// with stderr piped (read it with `finish`).
fn socket_activated(activate: &[&str], config: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new("systemd-socket-activate")
        .args(activate)
        .arg(env!("CARGO_BIN_EXE_rebound"))
        .args(["agent", "--config"])
        .arg(config)
        .args(extra)
        .env_remove("REBOUND_LOG")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("these tests need systemd-socket-activate (package systemd): {e}")
        })
}

/// A runtime `quick` whose start writes its environment to `{dir}/env`.
fn env_config() -> String {
    one_runtime(
        "quick",
        "env > '{dir}/env'; touch '{dir}/up'",
        r#"    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }
    endpoint: "file://{dir}/up"
"#,
    )
}

#[test]
fn socket_activated_agent_serves_the_named_tcp_socket_and_hides_listen_vars_from_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &env_config());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let (other, agent) = (free_port(), free_port());
    let unused = dir.path().join("not-bound.sock");
    let mut child = socket_activated(
        &[
            "-l",
            &format!("127.0.0.1:{other}"),
            "-l",
            &format!("127.0.0.1:{agent}"),
            "--fdname=other:agent",
        ],
        &config,
        &[
            "--fdname",
            "agent",
            "--token-file",
            token_file.to_str().unwrap(),
            // The address when started without a socket: not bound here.
            "--listen",
            &format!("unix:{}", unused.display()),
        ],
    );
    // The first connection starts the agent, which then answers it.
    let connect = || std::net::TcpStream::connect(("127.0.0.1", agent));
    wait_until(
        || {
            connect().is_ok_and(|s| {
                drop(s);
                true
            })
        },
        "systemd-socket-activate to listen",
    );
    let (code, body) = http(connect().unwrap(), "GET", "/v1", "", Some("s3cret"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"protocol\""), "{body}");
    // The token is required as on a bound TCP socket.
    assert_eq!(http(connect().unwrap(), "GET", "/v1", "", None).0, 401);
    // A start runs without the socket-activation variables.
    let (code, body) = http(
        connect().unwrap(),
        "POST",
        "/v1/runtimes/quick/ensure",
        "{}",
        Some("s3cret"),
    );
    assert_eq!(code, 200, "{body}");
    let env_file = dir.path().join("env");
    wait_until(|| dir.path().join("up").exists(), "the start");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(!env.contains("LISTEN_PID="), "{env}");
    assert!(!env.contains("LISTEN_FDS="), "{env}");
    assert!(!unused.exists(), "--listen was bound as well");
    let stderr = stop_cleanly(&mut child);
    assert!(
        stderr.contains(&format!(
            "listening on tcp:127.0.0.1:{agent} (socket activation: fd 4 named `agent`;"
        )),
        "{stderr}"
    );
}

#[test]
fn socket_activated_agent_serves_the_only_unix_socket_and_leaves_its_file() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("activated.sock");
    let mut child = socket_activated(&["-l", socket.to_str().unwrap()], &config, &[]);
    wait_until(
        || UnixStream::connect(&socket).is_ok(),
        "systemd-socket-activate to listen",
    );
    let (code, body) = unix_http(&socket, "GET", "/v1", "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = unix_http(&socket, "POST", "/v1/runtimes/quick/ensure", "{}");
    assert_eq!(code, 200, "{body}");
    // No lock file: the socket is the service manager's, not bound here.
    assert!(!dir.path().join("activated.sock.lock").exists());
    let stderr = stop_cleanly(&mut child);
    assert!(
        stderr.contains(&format!(
            "listening on unix:{} (socket activation: fd 3;",
            socket.display()
        )),
        "{stderr}"
    );
    // Nor is its file removed: the manager owns it.
    assert!(socket.exists());
}

#[test]
fn listen_fds_for_another_pid_are_ignored_and_the_agent_binds() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("agent.sock");
    let mut child = spawn_logging(
        agent_cli(&config, &format!("unix:{}", socket.display()))
            .env("LISTEN_FDS", "1")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDNAMES", "agent"),
    );
    wait_until(|| UnixStream::connect(&socket).is_ok(), "the agent socket");
    let (code, body) = unix_http(&socket, "GET", "/v1", "");
    assert_eq!(code, 200, "{body}");
    let stderr = stop_cleanly(&mut child);
    assert!(!stderr.contains("socket activation"), "{stderr}");
    assert!(!socket.exists(), "the bound socket is removed on stop");
}

#[test]
fn passed_sockets_that_cannot_be_served_exit_2_naming_the_descriptor() {
    let (dir, config) = quick_config_dir();
    let rebound = env!("CARGO_BIN_EXE_rebound");
    // A regular file as fd 3.
    let script = format!(
        "exec 3<'{}'; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=agent; exec '{rebound}' agent --config '{}' --listen 'unix:{}/agent.sock'",
        config.display(),
        config.display(),
        dir.path().display()
    );
    Outcome::command(
        Command::new("sh")
            .args(["-c", &script])
            .env_remove("REBOUND_LOG"),
        "sh",
    )
    .code(2)
    .stderr_has("socket activation: fd 3 (`agent`) is not a socket but a regular file");
    // A bound TCP socket nobody listens on.
    let python = "import os, socket, sys\n\
                  s = socket.socket()\n\
                  s.bind(('127.0.0.1', 0))\n\
                  if s.fileno() != 3: os.dup2(s.fileno(), 3)\n\
                  os.set_inheritable(3, True)\n\
                  os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n\
                  os.execv(sys.argv[1], sys.argv[1:])\n";
    Outcome::command(
        Command::new("python3")
            .args(["-c", python, rebound, "agent", "--config"])
            .arg(&config)
            .args(["--insecure-no-token"])
            .env_remove("REBOUND_LOG")
            .env_remove("LISTEN_FDNAMES"),
        "python3",
    )
    .code(2)
    .stderr_has("socket activation: fd 3 is a stream socket that is not listening");
    // A UDP socket (systemd-socket-activate --datagram): the first datagram
    // starts the agent, which refuses it.
    let port = free_port();
    let mut child = socket_activated(
        &["--datagram", "-l", &format!("127.0.0.1:{port}")],
        &config,
        &["--insecure-no-token"],
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Datagrams until it starts (one sent before it listens is lost).
    let mut done = None;
    for _ in 0..200 {
        let _ = udp.send_to(b"x", ("127.0.0.1", port));
        if let Some(status) = child.try_wait().unwrap() {
            done = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(done.is_some(), "the activated agent did not exit");
    assert_exits_2_saying(
        &mut child,
        "socket activation: fd 3 is not a TCP, Unix or vsock stream socket",
    );
    // Two unnamed sockets and no --fdname.
    let (a, b) = (free_port(), free_port());
    let (a_addr, b_addr) = (format!("127.0.0.1:{a}"), format!("127.0.0.1:{b}"));
    let mut child = activated_on_tcp(
        a,
        &["-l", &a_addr, "-l", &b_addr],
        &config,
        &["--insecure-no-token"],
    );
    assert_exits_2_saying(
        &mut child,
        "2 sockets were passed (LISTEN_FDS=2, names: unknown, unknown); choose the one to listen on with --fdname NAME",
    );
    // A name none has.
    let c = free_port();
    let mut child = activated_on_tcp(
        c,
        &["-l", &format!("127.0.0.1:{c}"), "--fdname=http"],
        &config,
        &["--insecure-no-token", "--fdname", "agent"],
    );
    assert_exits_2_saying(
        &mut child,
        "no socket named `agent` was passed (--fdname); the names passed (LISTEN_FDNAMES) are: http",
    );
}

/// [`socket_activated`] listening on TCP `port` (among others): returns
/// once it listens there.
fn activated_on_tcp(
    port: u16,
    activate: &[&str],
    config: &Path,
    extra: &[&str],
) -> std::process::Child {
    let child = socket_activated(activate, config, extra);
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "systemd-socket-activate to listen",
    );
    child
}

/// Asserts that `child` exits 2 with `says` in its stderr.
#[track_caller]
fn assert_exits_2_saying(child: &mut std::process::Child, says: &str) {
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn ensure_wait_takes_the_one_duration_grammar_a_bare_number_is_seconds() {
    // No agent listens: ensure polls until --wait runs out, then names it.
    // `0.3` (refused by humantime, which wants a unit) and `300ms` are the
    // same wait.
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix:{}", dir.path().join("no-agent.sock").display());
    for wait in ["0.3", "300ms"] {
        ensure_cli(&addr, "web")
            .args(["--wait", wait])
            .run()
            .code(69)
            .stderr_has("web: the agent could not be reached for 300ms");
    }
    ensure_wait(&addr, "web", "soon").usage_error("invalid duration \"soon\"");
}
