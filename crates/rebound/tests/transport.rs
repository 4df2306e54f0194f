//! How `rebound agent` listens and how `rebound ensure` reaches it, with real
//! processes and real sockets: taking over a stale Unix socket under a lock
//! (two agents racing on one path), vsock listening, the hybrid vsock
//! (`hvsock:`) handshake of Firecracker and Cloud Hypervisor, and bad
//! addresses.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::{
    Cli, agent_cli, ensure_wait, finish, one_runtime, poll_until, quick_config_dir, read_pid,
    send_signal, spawn_logging, stop_cleanly, terminate, try_http, write_config,
};

/// Whether `GET /v1/runtimes` over the Unix socket `socket`, with `token`
/// when given, is answered 200 within `limit`.
fn answers_within(limit: Duration, socket: &Path, token: Option<&str>) -> bool {
    poll_until(limit, || {
        let Ok(stream) = UnixStream::connect(socket) else {
            return false;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        try_http(stream, "GET", "/v1/runtimes", "", token).is_some_and(|(code, _)| code == 200)
    })
}

/// Asserts that an agent's `(exit code, stderr)` are those of one refused
/// because another agent listens on `socket`: exit 3, naming the path.
#[track_caller]
fn assert_taken((code, stderr): (Option<i32>, String), socket: &Path, who: &str) {
    assert_eq!(code, Some(3), "{who}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "another agent is listening on {}",
            socket.display()
        )),
        "{who}'s message: {stderr}"
    );
}

/// A socket file nobody listens on, as a crashed agent leaves behind.
fn stale_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
    drop(UnixListener::bind(path).unwrap());
    assert!(path.exists());
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Issue 8.4: two agents started at the same moment on a stale socket could
/// both listen (the second removed the first one's fresh socket and bound
/// its own), and stopping the one whose file was gone deleted the live
/// agent's socket. Each agent of a pair reads its token from a FIFO, which
/// holds both just before they bind; the test opens both FIFOs (each open
/// returns once that agent is waiting on it) and then releases them
/// together, so the two takeovers really overlap. Exactly one must listen;
/// the other exits 3 naming the path; the winner's socket survives the
/// loser and answers.
#[test]
fn fifty_racing_pairs_on_a_stale_socket_leave_exactly_one_agent() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("race.sock");
    let listen = format!("unix:{}", socket.display());
    let token = "race-token";
    for round in 0..50 {
        stale_socket(&socket);
        let fifos: Vec<PathBuf> = (0..2)
            .map(|i| {
                let fifo = dir.path().join(format!("token-{round}-{i}"));
                mkfifo(&fifo);
                fifo
            })
            .collect();
        let mut agents: Vec<Child> = fifos
            .iter()
            .map(|fifo| {
                spawn_logging(
                    agent_cli(&config, &listen)
                        .args(["--token-file"])
                        .args([fifo]),
                )
            })
            .collect();
        // Opening a FIFO for writing blocks until its reader opens it.
        let mut writers: Vec<std::fs::File> = fifos
            .iter()
            .map(|f| std::fs::OpenOptions::new().write(true).open(f).unwrap())
            .collect();
        for w in &mut writers {
            w.write_all(token.as_bytes()).unwrap();
        }
        drop(writers);

        // The loser gives up at once; the winner keeps listening.
        let mut exited = None;
        let ended = poll_until(Duration::from_secs(10), || {
            for (i, a) in agents.iter_mut().enumerate() {
                if a.try_wait().unwrap().is_some() {
                    exited = Some(i);
                    return true;
                }
            }
            false
        });
        assert!(
            ended,
            "round {round}: both agents are still running after 10 s (both listening)"
        );
        let loser = exited.unwrap();
        let winner = 1 - loser;
        assert_taken(
            finish(&mut agents[loser]),
            &socket,
            &format!("round {round}: the loser"),
        );
        assert!(
            agents[winner].try_wait().unwrap().is_none(),
            "round {round}: the winner exited too: {:?}",
            finish(&mut agents[winner])
        );
        // The loser is gone; the winner's socket is still there and answers.
        assert!(
            answers_within(Duration::from_secs(10), &socket, Some(token)),
            "round {round}: the winner's socket does not answer"
        );
        let (code, stderr) = terminate(&mut agents[winner]);
        assert_eq!(code, Some(0), "round {round}: the winner: {stderr}");
        assert!(
            !socket.exists(),
            "round {round}: the socket was left behind"
        );
        let lock = PathBuf::from(format!("{}.lock", socket.display()));
        assert!(
            !lock.exists(),
            "round {round}: the lock file was left behind"
        );
    }
}

/// The lock, not the socket file, says an agent is there: with the live
/// agent's socket file deleted, a second agent still refuses the path.
#[test]
fn a_second_agent_is_refused_while_the_first_holds_the_lock() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut first = spawn_logging(agent_cli(&config, &listen));
    assert!(answers_within(Duration::from_secs(20), &socket, None));
    std::fs::remove_file(&socket).unwrap();
    let mut second = spawn_logging(agent_cli(&config, &listen));
    let refused = poll_until(Duration::from_secs(10), || {
        second.try_wait().unwrap().is_some()
    });
    if !refused {
        let _ = second.kill();
    }
    let (code, stderr) = finish(&mut second);
    assert!(refused, "a second agent is running on the path: {stderr}");
    assert_taken((code, stderr), &socket, "the second agent");
    assert!(!socket.exists(), "the refused agent bound the socket");
    stop_cleanly(&mut first);
    // Once the first one has stopped, the path is free again.
    let mut third = spawn_logging(agent_cli(&config, &listen));
    assert!(answers_within(Duration::from_secs(20), &socket, None));
    stop_cleanly(&mut third);
}

/// An agent removes its socket file at exit only if the path still names
/// the socket it bound.
#[test]
fn an_agent_never_removes_a_socket_it_did_not_bind() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("agent.sock");
    let mut agent = spawn_logging(agent_cli(&config, &format!("unix:{}", socket.display())));
    assert!(answers_within(Duration::from_secs(20), &socket, None));
    // Someone else now owns the path.
    std::fs::remove_file(&socket).unwrap();
    let other = UnixListener::bind(&socket).unwrap();
    stop_cleanly(&mut agent);
    assert!(
        socket.exists(),
        "the agent removed a socket it did not bind"
    );
    let _client = UnixStream::connect(&socket).unwrap();
    assert!(other.accept().is_ok());
}

/// The lock's descriptor is close-on-exec: a daemon left running by a start
/// step does not hold a dead agent's lock, so a new agent can take over.
#[test]
fn a_daemon_started_by_a_killed_agent_does_not_keep_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_runtime(
            "daemon",
            "(exec sleep 30) >/dev/null 2>&1 & echo $! > {dir}/daemon.pid; touch {dir}/up",
            r#"    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }
    endpoint: "daemon"
"#,
        ),
    );
    let socket = dir.path().join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut first = spawn_logging(agent_cli(&config, &listen));
    ensure_wait(&listen, "daemon", "20s").run().code(0);
    let pid = read_pid(&dir.path().join("daemon.pid"));
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn_logging(agent_cli(&config, &listen));
    let up = answers_within(Duration::from_secs(20), &socket, None);
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(up, "the new agent did not take over: {:?}", {
        let _ = second.kill();
        finish(&mut second)
    });
    stop_cleanly(&mut second);
}

/// Reads `child`'s stderr lines until one contains `needle` or the process
/// ends; whether it was seen, and everything read.
fn stderr_until(child: &mut Child, needle: &str) -> (bool, String) {
    let (seen, text, mut rest) = support::stderr_until(child, needle);
    // Keep draining in the background so the agent never blocks.
    std::thread::spawn(move || std::io::copy(&mut rest, &mut std::io::sink()));
    (seen, text)
}

/// The vsock listener: this kernel has vsock but no loopback transport, so
/// nothing can connect to it here; what can be checked is that the agent
/// binds a vsock port, that a second agent on the same port is refused with
/// "address in use" (exit 3), and, on a machine without vsock, that the
/// agent says so clearly (exit 3).
#[test]
fn an_agent_binds_a_vsock_port_and_a_second_one_gets_address_in_use() {
    let (dir, config) = quick_config_dir();
    let token = dir.path().join("token");
    std::fs::write(&token, "vsock-token\n").unwrap();
    // A port nobody else on this machine is likely to hold.
    let port = 40_000 + std::process::id() % 20_000;
    let listen = format!("vsock:{port}");
    let mut first = spawn_logging(
        agent_cli(&config, &listen)
            .args(["--token-file"])
            .args([&token]),
    );
    let (listening, seen) = stderr_until(&mut first, "listening on");
    if !listening {
        let code = first.wait().unwrap().code();
        let no_vsock = seen.contains("has no vsock") || seen.contains("no vsock transport");
        assert!(
            no_vsock,
            "the agent did not listen on {listen} and did not say the system has no vsock: {seen}"
        );
        assert_eq!(code, Some(3), "{seen}");
        eprintln!("NOTE: this machine has no vsock; checked the agent's message instead: {seen}");
        return;
    }
    assert!(seen.contains(&format!("listening on {listen}")), "{seen}");
    eprintln!("vsock: the agent bound {listen}");
    let second = agent_cli(&config, &listen)
        .args(["--token-file"])
        .args([&token])
        .run()
        .code(3)
        .stderr_has(&format!("cannot listen on {listen}"))
        .stderr_has("address in use");
    drop(second);
    send_signal(first.id(), "TERM");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    // Binding a CID that is not this machine's is refused, naming it.
    let mut wrong_cid = spawn_logging(
        agent_cli(&config, &format!("vsock:4294967294:{port}"))
            .args(["--token-file"])
            .args([&token]),
    );
    let (_, seen) = stderr_until(&mut wrong_cid, "listening on");
    let _ = wrong_cid.kill();
    let _ = wrong_cid.wait();
    assert!(
        seen.contains("CID 4294967294 is not this machine's"),
        "{seen}"
    );
    // Stopped, the port is free again: a new agent binds it.
    let mut third = spawn_logging(agent_cli(&config, &listen).args(["--insecure-no-token"]));
    let (listening, seen) = stderr_until(&mut third, "listening on");
    send_signal(third.id(), "TERM");
    let _ = third.wait();
    assert!(listening, "the port was not freed: {seen}");
    assert!(seen.contains("--insecure-no-token"), "{seen}");
}

/// vsock needs a token like TCP: any process of the guest can connect.
#[test]
fn vsock_without_a_token_is_refused_unless_insecure_no_token() {
    let (dir, config) = quick_config_dir();
    agent_cli(&config, "vsock:7070")
        .usage_error("listening on vsock:7070 requires --token-file")
        .stderr_has("--insecure-no-token")
        .stderr_lacks("listening on vsock:7070 (");
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    agent_cli(&config, "vsock:7070")
        .args(["--insecure-no-token", "--token-file"])
        .args([&token])
        .usage_error("cannot be used with");
}

/// Bad addresses: exit 2 naming the address, nothing started, nothing
/// contacted.
#[test]
fn bad_vsock_and_hvsock_addresses_exit_2_naming_the_address() {
    let (dir, config) = quick_config_dir();
    // A stand-in VMM socket: a bad address must never reach it.
    let vmm_path = dir.path().join("vmm.sock");
    let vmm = UnixListener::bind(&vmm_path).unwrap();
    vmm.set_nonblocking(true).unwrap();
    let vmm_text = vmm_path.display().to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            "vsock:x".into(),
            "the port must be a number 0-4294967294, got `x`",
        ),
        (
            "vsock:1:99999999999".into(),
            "the port must be a number 0-4294967294, got `99999999999`",
        ),
        ("vsock:".into(), "the port is missing"),
        (
            "hvsock:".into(),
            "the port is missing (write hvsock:PATH:PORT",
        ),
        (format!("hvsock:{vmm_text}"), "the port is missing"),
        (format!("hvsock:{vmm_text}:"), "the port is missing"),
        (
            format!("hvsock:{vmm_text}:x"),
            "the port must be a number 0-4294967294, got `x`",
        ),
        ("hvsock::7070".into(), "the socket path is empty"),
    ];
    for (address, why) in &cases {
        Cli::new()
            .args(["ensure", "--agent", address, "quick", "--wait", "30s"])
            .usage_error(&format!("--agent `{address}`: {why}"));
        agent_cli(&config, address)
            .args(["--insecure-no-token"])
            .usage_error(&format!("--listen `{address}`: {why}"))
            .stderr_lacks("listening on");
    }
    // Well-formed, but not for that side.
    Cli::new()
        .args(["ensure", "--agent", "vsock:7070", "quick"])
        .usage_error("--agent `vsock:7070`: no CID");
    agent_cli(&config, &format!("hvsock:{vmm_text}:7070"))
        .usage_error(&format!("cannot listen on hvsock:{vmm_text}:7070"))
        .stderr_has("listen on vsock:PORT");
    // And in the config file, at its position.
    let in_config = dir.path().join("listen.yaml");
    std::fs::write(
        &in_config,
        std::fs::read_to_string(&config).unwrap() + "listen: vsock:1:99999999999\n",
    )
    .unwrap();
    Cli::new()
        .args(["agent", "--config"])
        .args([&in_config])
        .usage_error("`vsock:1:99999999999`: the port must be a number");
    assert!(
        vmm.accept().is_err(),
        "a bad address reached the VMM socket"
    );
    assert!(!dir.path().join("up").exists(), "a runtime was started");
}

/// What the stand-in VMM does with a `CONNECT` line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Vmm {
    /// Answers `OK 1073741824\n`, then relays bytes to the agent's socket.
    Relay,
    /// Answers something that is not `OK <n>`.
    Garbage,
    /// Closes the connection (what Firecracker does when the guest does
    /// not listen on the port).
    Close,
    /// Never answers, holding the connection open.
    Silent,
}

/// A stand-in for Firecracker's / Cloud Hypervisor's hybrid vsock socket:
/// a Unix listener that reads `CONNECT PORT\n` byte by byte and acts by its
/// current mode; in `Relay` mode, to the agent socket `upstream` for
/// `port`, and closes for any other port.
struct StandIn {
    path: PathBuf,
    mode: std::sync::Arc<std::sync::Mutex<Vmm>>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StandIn {
    fn start(path: PathBuf, upstream: PathBuf, port: u32, mode: Vmm) -> StandIn {
        let listener = UnixListener::bind(&path).unwrap();
        let mode = std::sync::Arc::new(std::sync::Mutex::new(mode));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, l) = (mode.clone(), lines.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (m, l, upstream) = (m.clone(), l.clone(), upstream.clone());
                std::thread::spawn(move || serve_vmm(conn, &upstream, port, &m, &l));
            }
        });
        StandIn { path, mode, lines }
    }

    fn addr(&self, port: u32) -> String {
        format!("hvsock:{}:{port}", self.path.display())
    }

    fn set(&self, mode: Vmm) {
        *self.mode.lock().unwrap() = mode;
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

fn serve_vmm(
    mut conn: UnixStream,
    upstream: &Path,
    port: u32,
    mode: &std::sync::Mutex<Vmm>,
    lines: &std::sync::Mutex<Vec<String>>,
) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        match conn.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    lines.lock().unwrap().push(line.clone());
    let mode = *mode.lock().unwrap();
    match mode {
        Vmm::Relay if line == format!("CONNECT {port}\n") => {
            let Ok(agent) = UnixStream::connect(upstream) else {
                return;
            };
            conn.write_all(b"OK 1073741824\n").unwrap();
            let (mut to_agent, mut from_agent) = (agent.try_clone().unwrap(), agent);
            let mut from_host = conn.try_clone().unwrap();
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_host, &mut to_agent);
                let _ = to_agent.shutdown(std::net::Shutdown::Write);
            });
            let _ = std::io::copy(&mut from_agent, &mut conn);
            let _ = conn.shutdown(std::net::Shutdown::Write);
            let _ = up.join();
        }
        Vmm::Relay | Vmm::Close => {}
        Vmm::Garbage => {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
        Vmm::Silent => {
            // Hold the connection until the client gives up.
            let _ = conn.read(&mut byte);
        }
    }
}

/// `rebound ensure --agent hvsock:PATH:PORT` end to end: the documented
/// Firecracker handshake against a stand-in VMM that relays to a real
/// agent; while the guest "does not listen yet" (the stand-in closes each
/// connection) the call is retried as an unreachable agent, then succeeds.
#[test]
fn ensure_over_hybrid_vsock_reaches_the_agent_through_the_vmm_socket() {
    let (dir, config) = quick_config_dir();
    let socket = dir.path().join("agent.sock");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "hv-token\n").unwrap();
    let mut agent = spawn_logging(
        agent_cli(&config, &format!("unix:{}", socket.display()))
            .args(["--token-file"])
            .args([&token_file]),
    );
    assert!(answers_within(
        Duration::from_secs(20),
        &socket,
        Some("hv-token")
    ));
    let vmm = StandIn::start(
        dir.path().join("vmm.sock"),
        socket.clone(),
        7070,
        Vmm::Close,
    );
    let client = ensure_wait(&vmm.addr(7070), "quick", "60s")
        .env("REBOUND_AGENT_TOKEN", "hv-token")
        .spawn();
    // Refused twice (the guest is not listening yet), then let through.
    assert!(poll_until(Duration::from_secs(20), || vmm.lines().len() >= 2));
    vmm.set(Vmm::Relay);
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "agent unreachable: hybrid vsock: the VMM closed the connection after CONNECT 7070"
        ),
        "{stderr}"
    );
    let endpoint = String::from_utf8_lossy(&out.stdout);
    assert!(endpoint.starts_with("file://"), "{endpoint}");
    assert!(dir.path().join("up").exists());
    assert!(
        vmm.lines().iter().all(|l| l == "CONNECT 7070\n"),
        "{:?}",
        vmm.lines()
    );
    // The token travels through: a wrong one is refused by the agent.
    ensure_wait(&vmm.addr(7070), "quick", "10s")
        .env("REBOUND_AGENT_TOKEN", "wrong")
        .usage_error("missing or wrong bearer token");
    // A port the guest does not listen on: the stand-in closes it.
    let started = Instant::now();
    let out = ensure_wait(&vmm.addr(7071), "quick", "1s")
        .env("REBOUND_AGENT_TOKEN", "hv-token")
        .run()
        .stderr_has("listening on vsock port 7071");
    assert_ne!(out.output.status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    stop_cleanly(&mut agent);
}

/// A VMM that answers garbage, closes, or never answers: "agent
/// unreachable", retried until --wait runs out, then the exit code of an
/// unreachable agent (the same as for a Unix socket nobody listens on),
/// within a bounded time.
#[test]
fn a_bad_hybrid_vsock_handshake_is_an_unreachable_agent_never_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    // The exit code of an agent that cannot be reached today.
    let missing = dir.path().join("nobody.sock");
    let control = Cli::new()
        .args(["ensure", "--agent"])
        .arg_unix(&missing)
        .args(["quick", "--wait", "1s"])
        .run();
    let unreachable_code = control.output.status.code();
    assert!(
        control.stderr().contains("agent unreachable"),
        "{}",
        control.stderr()
    );
    assert_ne!(unreachable_code, Some(0));
    let cases = [
        (
            Vmm::Garbage,
            "1s",
            "the VMM answered \"HTTP/1.1 400 Bad Request\\r\" to CONNECT 7070",
        ),
        (
            Vmm::Close,
            "1s",
            "the VMM closed the connection after CONNECT 7070",
        ),
        // --wait 7s: the first call may wait 7 s, so the 5 s handshake
        // deadline is what ends it.
        (Vmm::Silent, "7s", "no answer to CONNECT 7070 within 5s"),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|&(mode, wait, why)| {
            let vmm = StandIn::start(
                dir.path().join(format!("{mode:?}.sock")),
                dir.path().join("no-agent.sock"),
                7070,
                mode,
            );
            let addr = vmm.addr(7070);
            std::thread::spawn(move || {
                let started = Instant::now();
                let out = Cli::new()
                    .args(["ensure", "--agent", &addr, "quick", "--wait", wait])
                    .run();
                (mode, wait, why, started.elapsed(), out, vmm.lines())
            })
        })
        .collect();
    for run in runs {
        let (mode, wait, why, took, out, lines) = run.join().unwrap();
        let stderr = out.stderr();
        assert_eq!(
            out.output.status.code(),
            unreachable_code,
            "{mode:?}: {stderr}"
        );
        assert!(
            stderr.contains("agent unreachable: hybrid vsock: "),
            "{mode:?}: {stderr}"
        );
        assert!(stderr.contains(why), "{mode:?}: {stderr}");
        let wait = humantime_secs(wait);
        assert!(
            took < wait + Duration::from_secs(5),
            "{mode:?}: took {took:?} with --wait {wait:?}"
        );
        assert!(!lines.is_empty(), "{mode:?}: the stand-in saw no CONNECT");
        assert!(
            lines.iter().all(|l| l == "CONNECT 7070\n"),
            "{mode:?}: {lines:?}"
        );
    }
}

fn humantime_secs(text: &str) -> Duration {
    Duration::from_secs(text.trim_end_matches('s').parse().unwrap())
}

/// `--agent unix:PATH` as two arguments.
trait ArgUnix {
    fn arg_unix(self, path: &Path) -> Self;
}

impl ArgUnix for Cli {
    fn arg_unix(self, path: &Path) -> Self {
        self.args([format!("unix:{}", path.display())])
    }
}
