//! Readiness pushed, not polled: `GET /v1`, `GET /v1/runtimes/{name}/watch`,
//! `GET /v1/events` and `rebound ensure` waiting on them, end to end with a
//! real `rebound agent` process whose runtimes are started by real shell
//! commands. Starts take 200-500 ms.

mod support;

use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rebound::agent::addr::Addr;
use rebound::agent::client::{CallError, Client, EventStream};
use rebound::agent::sse::Event;
use support::{
    Agent, QUICK_CONFIG, agent_cli, ensure_cli, ensure_wait, free_port, http, send_signal,
    spawn_logging, wait_until, web_runtime, write_config,
};

/// Bound on anything a test waits for (real processes, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The next event, within [`PATIENCE`].
async fn next(events: &mut EventStream) -> Event {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("no event in time")
        .expect("the stream broke")
        .expect("the stream ended")
}

fn data(event: &Event) -> serde_json::Value {
    serde_json::from_str(&event.data).unwrap()
}

async fn open(agent: &Agent, name: &str) -> EventStream {
    agent
        .client()
        .watch(name, Duration::from_secs(5))
        .await
        .unwrap()
}

async fn ensure(agent: &Agent, name: &str) -> String {
    agent
        .client()
        .ensure(name, true, Duration::from_secs(5))
        .await
        .unwrap()
        .status
}

/// `slow` opens `{dir}/up` 300 ms after its start begins; `broken`'s start
/// fails; `web` serves TCP on a free port (python's http.server), with a
/// 500 ms TTL.
fn config(port: u16) -> String {
    format!(
        r#"runtimes:
  slow:
    start:
      steps:
        - id: later
          uses: init.run
          with: {{ command: "(sleep 0.3; touch {{dir}}/up) >/dev/null 2>&1 &" }}
    probe: {{ uses: init.wait_file, with: {{ path: "{{dir}}/up" }}, timeout: 1s }}
    endpoint: "file://{{dir}}/up"
    start_timeout: 20s
  broken:
    start:
      steps:
        - {{ id: fail, uses: init.run, with: {{ command: "echo 'no such flag' >&2; exit 1" }} }}
    probe: {{ uses: init.wait_file, with: {{ path: "{{dir}}/never" }}, timeout: 200ms }}
    endpoint: none
    backoff: {{ initial: 30s, jitter: none }}
{}"#,
        web_runtime(port, "", "", "    ready_ttl: 500ms\n")
    )
}

#[test]
fn the_first_event_is_the_state_then_a_start_is_starting_then_ready() {
    let agent = Agent::start(&config(free_port()));
    runtime().block_on(async {
        let mut events = open(&agent, "slow").await;
        let first = next(&mut events).await;
        assert_eq!(first.event, "not_started");
        assert_eq!(data(&first)["name"], "slow");
        assert_eq!(ensure(&agent, "slow").await, "starting");
        assert_eq!(next(&mut events).await.event, "starting");
        let ready = next(&mut events).await;
        assert_eq!(ready.event, "ready");
        let ready = data(&ready);
        assert_eq!(ready["state"], "ready");
        assert_eq!(
            ready["endpoint"],
            format!("file://{}", agent.path("up").display())
        );
        // A watcher that comes later gets the state it finds: ready.
        let mut late = open(&agent, "slow").await;
        let first = next(&mut late).await;
        assert_eq!(first.event, "ready");
        assert_eq!(data(&first)["endpoint"], ready["endpoint"]);
    });
}

#[test]
fn a_failing_start_is_failed_with_retry_after() {
    let agent = Agent::start(&config(free_port()));
    runtime().block_on(async {
        let mut events = open(&agent, "broken").await;
        assert_eq!(next(&mut events).await.event, "not_started");
        assert_eq!(ensure(&agent, "broken").await, "starting");
        assert_eq!(next(&mut events).await.event, "starting");
        let failed = next(&mut events).await;
        assert_eq!(failed.event, "failed");
        let failed = data(&failed);
        assert!(
            failed["message"].as_str().unwrap().contains("no such flag"),
            "{failed}"
        );
        let after = failed["retry_after_ms"].as_u64().unwrap();
        assert!(after > 25_000 && after <= 30_000, "{failed}");
        assert_eq!(failed["failures"], 1);
    });
    // `rebound ensure` hears it on the stream and stops at once: the next
    // start is after --wait.
    ensure_wait(&agent.addr(), "broken", "5s")
        .run()
        .code(78)
        .stderr_has("no such flag")
        .stderr_has("after --wait runs out");
}

#[test]
fn a_killed_runtime_is_not_started_after_the_ttl() {
    let agent = Agent::start(&config(free_port()));
    runtime().block_on(async {
        assert_eq!(ensure(&agent, "web").await, "starting");
        let mut events = open(&agent, "web").await;
        let mut first = next(&mut events).await;
        if first.event == "starting" {
            first = next(&mut events).await;
        }
        assert_eq!(first.event, "ready", "{first:?}");
        let pid = std::fs::read_to_string(agent.path("web.pid")).unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
        let lost = next(&mut events).await;
        assert_eq!(lost.event, "not_started", "{lost:?}");
        assert!(
            data(&lost)["message"]
                .as_str()
                .unwrap()
                .contains("stopped answering"),
            "{lost:?}"
        );
    });
}

#[test]
fn the_handshake_names_protocol_capabilities_and_start_budgets() {
    let agent = Agent::start(&config(free_port()));
    let h = agent.request_json("GET", "/v1", "", 200);
    assert_eq!(h["protocol"], "1.0");
    assert_eq!(h["agent_version"], env!("CARGO_PKG_VERSION"));
    for capability in ["ensure", "watch", "events", "metrics"] {
        assert!(
            h["capabilities"]
                .as_array()
                .unwrap()
                .contains(&capability.into()),
            "{h}"
        );
    }
    let slow = h["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "slow")
        .unwrap();
    // start_timeout 20 s + the probe's 1 s.
    assert_eq!(slow["start_budget_ms"], 21_000, "{slow}");
    assert_eq!(slow["start_timeout_ms"], 20_000);
    assert_eq!(slow["probe_timeout_ms"], 1_000);
    assert_eq!(agent.request("POST", "/v1", "").0, 405);
    // A --wait below that budget is warned about (and still works).
    let out = ensure_wait(&agent.addr(), "slow", "10s")
        .run()
        .code(0)
        .stderr_has("--wait 10s is shorter than slow's start budget on the agent, 21s")
        .stderr_has("a host deadline below the guest's budget fails cold boots");
    // The answer and the pushed `starting` say the same: one progress line.
    let starting: Vec<String> = out
        .stderr()
        .lines()
        .filter(|l| l.contains("starting"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        starting,
        ["rebound: slow: starting: runtime start in progress"],
        "{}",
        out.stderr()
    );
    ensure_wait(&agent.addr(), "slow", "30s")
        .run()
        .code(0)
        .stderr_lacks("shorter than");
}

#[test]
fn the_handshake_and_streams_need_the_token_on_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let token = "watch-token-value";
    std::fs::write(dir.path().join("token"), token).unwrap();
    let config = write_config(dir.path(), QUICK_CONFIG);
    let port = free_port();
    let mut child = spawn_logging(agent_cli(&config, &format!("tcp:127.0.0.1:{port}")).args([
        "--token-file".as_ref(),
        dir.path().join("token").as_os_str(),
    ]));
    let connect = || std::net::TcpStream::connect(("127.0.0.1", port));
    wait_until(|| connect().is_ok(), "the agent to listen");
    for path in ["/v1", "/v1/runtimes/quick/watch", "/v1/events"] {
        assert_eq!(
            http(connect().unwrap(), "GET", path, "", None).0,
            401,
            "{path}"
        );
    }
    runtime().block_on(async {
        let addr = Addr::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let wrong = Client::new(addr.clone(), Some("wrong".into()));
        assert!(matches!(
            wrong.handshake(Duration::from_secs(5)).await,
            Err(CallError::Refused { status: 401, .. })
        ));
        let right = Client::new(addr, Some(token.into()));
        let h = right
            .handshake(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert!(h.can("watch"));
        let mut events = right.watch("quick", Duration::from_secs(5)).await.unwrap();
        assert_eq!(next(&mut events).await.event, "not_started");
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_watch_on_an_unknown_runtime_is_404_naming_the_known_ones() {
    let agent = Agent::start(&config(free_port()));
    let reply = agent.request_json("GET", "/v1/runtimes/nope/watch", "", 404);
    assert_eq!(reply["error"], "unknown runtime `nope`");
    assert_eq!(
        reply["runtimes"],
        serde_json::json!(["broken", "slow", "web"])
    );
    assert_eq!(agent.request("POST", "/v1/runtimes/slow/watch", "").0, 405);
    ensure_cli(&agent.addr(), "nope")
        .args(["--watch"])
        .run()
        // The agent has no such runtime: 78, as for an ensure of it.
        .code(78)
        .stderr_has("unknown runtime `nope`")
        .stderr_has("runtimes: broken, slow, web");
}

#[test]
fn all_events_begin_with_agent_ready_then_each_runtime() {
    let agent = Agent::start(&config(free_port()));
    runtime().block_on(async {
        let mut events = agent.client().events(Duration::from_secs(5)).await.unwrap();
        let hello = next(&mut events).await;
        assert_eq!(hello.event, "agent_ready");
        assert_eq!(data(&hello)["protocol"], "1.0");
        assert_eq!(
            data(&hello)["runtimes"],
            serde_json::json!(["broken", "slow", "web"])
        );
        let mut names = Vec::new();
        for _ in 0..3 {
            let state = next(&mut events).await;
            assert_eq!(state.event, "not_started");
            names.push(data(&state)["name"].as_str().unwrap().to_owned());
        }
        names.sort();
        assert_eq!(names, ["broken", "slow", "web"]);
        assert_eq!(ensure(&agent, "slow").await, "starting");
        let starting = next(&mut events).await;
        assert_eq!(
            (starting.event.as_str(), data(&starting)["name"].clone()),
            ("starting", "slow".into())
        );
        let ready = next(&mut events).await;
        assert_eq!(
            (ready.event.as_str(), data(&ready)["name"].clone()),
            ("ready", "slow".into())
        );
    });
}

#[test]
fn a_reader_that_never_reads_holds_up_no_other_watcher_nor_ensure() {
    let agent = Agent::start(&config(free_port()));
    // Readers that send their request and then never read a byte.
    let mut stuck = Vec::new();
    for path in ["/v1/runtimes/slow/watch", "/v1/events"] {
        for _ in 0..5 {
            let mut s = UnixStream::connect(agent.socket()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
            stuck.push(s);
        }
    }
    wait_until(
        || agent.metric("rebound_agent_watch_streams") >= 10,
        "the streams to open",
    );
    runtime().block_on(async {
        let mut events = open(&agent, "slow").await;
        assert_eq!(next(&mut events).await.event, "not_started");
        let client = tokio::process::Command::new(env!("CARGO_BIN_EXE_rebound"))
            .args(["ensure", "--agent", &agent.addr(), "slow", "--wait", "20s"])
            .env_remove("REBOUND_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        let out = tokio::time::timeout(PATIENCE, client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(next(&mut events).await.event, "starting");
        assert_eq!(next(&mut events).await.event, "ready");
    });
    drop(stuck);
}

#[test]
fn ensure_waits_on_the_stream_without_polling() {
    let agent = Agent::start(&config(free_port()));
    let lines = ensure_wait(&agent.addr(), "slow", "20s")
        .args(["--json"])
        .run()
        .code(0)
        .stdout_has("file://")
        .stdout_json();
    assert_eq!(lines[0]["event"], "answer");
    assert_eq!(lines[0]["status"], "starting");
    assert!(lines.iter().any(|l| l["event"] == "watch"), "{lines:?}");
    assert_eq!(lines.last().unwrap()["outcome"], "ready");
    // One handshake, one ensure, one watch: a 300 ms start polled with the
    // connection backoff (50 ms, 100 ms, 200 ms ...) takes 3 ensure calls or
    // more.
    assert_eq!(
        agent.metric("rebound_agent_requests_total{endpoint=\"handshake\"}"),
        1
    );
    assert_eq!(
        agent.metric("rebound_agent_requests_total{endpoint=\"ensure\"}"),
        1
    );
    assert_eq!(
        agent.metric("rebound_agent_requests_total{endpoint=\"watch\"}"),
        1
    );
    // Forced polling asks again and again.
    let polled = Agent::start(&config(free_port()));
    ensure_wait(&polled.addr(), "slow", "20s")
        .args(["--no-watch"])
        .run()
        .code(0);
    assert_eq!(
        polled.metric("rebound_agent_requests_total{endpoint=\"handshake\"}"),
        0
    );
    assert!(polled.metric("rebound_agent_requests_total{endpoint=\"ensure\"}") >= 3);
}

/// A stand-in agent: a hyper server on a Unix socket whose answers are
/// given by `answer(method, path, calls so far)`; it counts requests.
struct OldAgent {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl OldAgent {
    fn start(answer: fn(&str, &str, usize) -> (u16, String)) -> OldAgent {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("old.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let seen = std::sync::Arc::clone(&seen);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let seen = std::sync::Arc::clone(&seen);
                                async move {
                                    let line = format!("{} {}", req.method(), req.uri().path());
                                    let calls = {
                                        let mut seen = seen.lock().unwrap();
                                        seen.push(line.clone());
                                        seen.iter().filter(|l| **l == line).count()
                                    };
                                    let (status, body) =
                                        answer(req.method().as_str(), req.uri().path(), calls);
                                    // An event stream: its events a second
                                    // later, then open and silent.
                                    let body = if body.starts_with("event:") {
                                        http_body_util::Either::Right(Delayed {
                                            sleep: Box::pin(tokio::time::sleep(
                                                Duration::from_secs(1),
                                            )),
                                            data: Some(Bytes::from(body)),
                                        })
                                    } else {
                                        http_body_util::Either::Left(Full::new(Bytes::from(body)))
                                    };
                                    let mut resp = hyper::Response::new(body);
                                    *resp.status_mut() =
                                        hyper::StatusCode::from_u16(status).unwrap();
                                    Ok::<_, std::convert::Infallible>(resp)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        OldAgent {
            _dir: dir,
            socket,
            requests,
            _thread: thread,
        }
    }

    fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    fn count(&self, line: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == line)
            .count()
    }
}

/// A body that sends `data` once `sleep` is over, then stays open.
struct Delayed {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    data: Option<hyper::body::Bytes>,
}

impl hyper::body::Body for Delayed {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        match self.data.take() {
            Some(data) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data)))),
            None => std::task::Poll::Pending,
        }
    }
}

/// An agent with the handshake and `watch` whose runtime `db` is starting,
/// and whose watch stream says, a second later, that the start failed with
/// the next start in `retry_after_ms`.
fn failing_later(method: &str, path: &str, retry_after_ms: u64) -> (u16, String) {
    match (method, path) {
        ("GET", "/v1") => (
            200,
            r#"{"protocol":"1.0","agent_version":"0.1.0","capabilities":["ensure","watch"],"runtimes":[]}"#.into(),
        ),
        ("POST", "/v1/runtimes/db/ensure") => (
            200,
            r#"{"ready":false,"endpoint":"","message":"runtime start in progress","status":"starting","retry_after_ms":null}"#.into(),
        ),
        ("GET", "/v1/runtimes/db/watch") => (
            200,
            format!(
                "event: failed\ndata: {{\"name\":\"db\",\"state\":\"failed\",\"endpoint\":null,\"message\":\"exit status 1\",\"for_ms\":0,\"failures\":1,\"retry_after_ms\":{retry_after_ms},\"verifying\":false}}\n\n"
            ),
        ),
        _ => (404, r#"{"error":"no such endpoint"}"#.into()),
    }
}

#[test]
fn a_pushed_failure_near_the_end_of_the_wait_is_a_timeout_unless_its_backoff_outlasts_the_wait() {
    // The failure comes 1 s into a 2 s wait. Next start in 1.5 s: after the
    // wait, but sooner than a whole wait: the wait ran out between retries
    // (124, at once). Next start in 2.5 s, longer than the whole wait:
    // failed for good (78, at once).
    let short = OldAgent::start(|m, p, _| failing_later(m, p, 1500));
    let begun = Instant::now();
    ensure_wait(&short.addr(), "db", "2s")
        .run()
        .code(124)
        .stderr_has("not ready after 2s")
        .stderr_has("exit status 1");
    assert!(
        begun.elapsed() < Duration::from_millis(1900),
        "{:?}",
        begun.elapsed()
    );
    let long = OldAgent::start(|m, p, _| failing_later(m, p, 2500));
    ensure_wait(&long.addr(), "db", "2s")
        .run()
        .code(78)
        .stderr_has("exit status 1 (next start in 2s 500ms, after --wait runs out)");
    assert_eq!(long.count("POST /v1/runtimes/db/ensure"), 1);
}

/// The agent before the handshake: only `ensure`; `starting` twice, then
/// ready.
fn old_agent(method: &str, path: &str, calls: usize) -> (u16, String) {
    match (method, path) {
        ("POST", "/v1/runtimes/db/ensure") if calls < 3 => (
            200,
            r#"{"ready":false,"endpoint":"","message":"runtime start in progress","status":"starting","retry_after_ms":null}"#.into(),
        ),
        ("POST", "/v1/runtimes/db/ensure") => (
            200,
            r#"{"ready":true,"endpoint":"tcp://127.0.0.1:5432","message":"up","status":"reused","retry_after_ms":null}"#.into(),
        ),
        _ => (404, format!(r#"{{"error":"no such endpoint: {method} {path}"}}"#)),
    }
}

#[test]
fn ensure_still_polls_an_agent_without_the_handshake() {
    let old = OldAgent::start(old_agent);
    ensure_wait(&old.addr(), "db", "20s")
        .run()
        .code(0)
        .stdout_has("tcp://127.0.0.1:5432");
    assert_eq!(old.count("GET /v1"), 1);
    assert_eq!(old.count("POST /v1/runtimes/db/ensure"), 3);
    assert_eq!(old.count("GET /v1/runtimes/db/watch"), 0);
    // --watch needs the handshake: a clear refusal, not a hang.
    ensure_cli(&old.addr(), "db")
        .args(["--watch"])
        .usage_error("predates watch streams");
}

#[test]
fn a_handshake_that_is_not_json_or_of_an_unknown_major_is_exit_2() {
    fn not_json(_: &str, path: &str, _: usize) -> (u16, String) {
        match path {
            "/v1" => (200, "<html>hello</html>".into()),
            _ => (500, "should not be asked".into()),
        }
    }
    fn future(_: &str, path: &str, _: usize) -> (u16, String) {
        match path {
            "/v1" => (
                200,
                r#"{"protocol":"2.0","agent_version":"9.0.0","capabilities":["ensure","watch"],"runtimes":[]}"#.into(),
            ),
            _ => (500, "should not be asked".into()),
        }
    }
    fn bad_version(_: &str, path: &str, _: usize) -> (u16, String) {
        match path {
            "/v1" => (
                200,
                r#"{"protocol":"one","agent_version":"9.0.0","capabilities":[],"runtimes":[]}"#
                    .into(),
            ),
            _ => (500, "should not be asked".into()),
        }
    }
    let agent = OldAgent::start(not_json);
    ensure_wait(&agent.addr(), "db", "10s")
        .usage_error("the agent's handshake (GET /v1) is not the protocol");
    assert_eq!(agent.count("POST /v1/runtimes/db/ensure"), 0);
    let agent = OldAgent::start(future);
    for extra in [&[][..], &["--watch"][..]] {
        ensure_cli(&agent.addr(), "db").args(extra).usage_error(
            "the agent speaks protocol 2.0 (agent version 9.0.0); this rebound knows only 1.x",
        );
    }
    assert_eq!(agent.count("POST /v1/runtimes/db/ensure"), 0);
    let agent = OldAgent::start(bad_version);
    ensure_cli(&agent.addr(), "db").usage_error("protocol `one` is not MAJOR.MINOR");
}

#[test]
fn ensure_watch_prints_events_until_interrupted() {
    let agent = Agent::start(&config(free_port()));
    for (json, signal, code) in [(false, "INT", 130), (true, "TERM", 143)] {
        let mut child = ensure_cli(&agent.addr(), "slow")
            .args(["--watch"])
            .args(if json { &["--json"][..] } else { &[][..] })
            .spawn();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut read_line = |line: &mut String| {
            line.clear();
            std::io::BufRead::read_line(&mut stdout, line).unwrap();
            line.trim_end().to_owned()
        };
        let first = read_line(&mut line);
        if json {
            let v: serde_json::Value = serde_json::from_str(&first).unwrap();
            assert_eq!(v["event"], "ready", "{first}");
            assert_eq!(v["name"], "slow");
            assert!(
                v["endpoint"].as_str().unwrap().starts_with("file://"),
                "{first}"
            );
        } else {
            assert_eq!(first, "slow: not_started");
            runtime().block_on(async { assert_eq!(ensure(&agent, "slow").await, "starting") });
            assert_eq!(read_line(&mut line), "slow: starting");
            let ready = read_line(&mut line);
            assert!(ready.starts_with("slow: ready file://"), "{ready}");
        }
        send_signal(child.id(), signal);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code));
    }
}
