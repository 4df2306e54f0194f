//! How `rebound agent` listens and how `rebound ensure` reaches it, with real
//! processes and real sockets: taking over a stale Unix socket under a lock
//! (two agents racing on one path), vsock listening, the hybrid vsock
//! (`hvsock:`) handshake of Firecracker and Cloud Hypervisor, and bad
//! addresses.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Cli;

/// A runtime `quick` whose start touches `{dir}/up`.
fn quick_config(dir: &Path) -> PathBuf {
    let path = dir.join("agent.yaml");
    let config = r#"runtimes:
  quick:
    start:
      steps:
        - id: touch
          uses: init.run
          with: { command: ["touch", "{dir}/up"] }
    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }
    endpoint: "file://{dir}/up"
"#;
    std::fs::write(&path, config.replace("{dir}", &dir.display().to_string())).unwrap();
    path
}

/// `rebound agent --config CONFIG --listen LISTEN`.
fn agent_cli(config: &Path, listen: &str) -> Cli {
    Cli::new()
        .args(["agent", "--config"])
        .args([config])
        .args(["--listen", listen])
}

fn spawn(cli: Cli) -> Child {
    cli.command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM.
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the exit; the code and stderr.
fn finish(child: &mut Child) -> (Option<i32>, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    (child.wait().unwrap().code(), stderr)
}

/// Polls `cond` every 10 ms for up to `limit` (waiting for real processes,
/// not measuring time); whether it came true.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `GET /v1/runtimes` over a Unix socket, with `token` when given: the
/// status code, or `None` when nothing answers.
fn list_runtimes(socket: &Path, token: Option<&str>) -> Option<u16> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /v1/runtimes HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n{auth}\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.get(9..12)?.parse().ok()
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
    let dir = tempfile::tempdir().unwrap();
    let config = quick_config(dir.path());
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
                spawn(
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
        let ended = wait_for(Duration::from_secs(10), || {
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
        let (code, stderr) = finish(&mut agents[loser]);
        assert_eq!(code, Some(3), "round {round}: the loser: {stderr}");
        assert!(
            stderr.contains(&format!(
                "another agent is listening on {}",
                socket.display()
            )),
            "round {round}: the loser's message: {stderr}"
        );
        assert!(
            agents[winner].try_wait().unwrap().is_none(),
            "round {round}: the winner exited too: {:?}",
            finish(&mut agents[winner])
        );
        // The loser is gone; the winner's socket is still there and answers.
        assert!(
            wait_for(Duration::from_secs(10), || list_runtimes(
                &socket,
                Some(token)
            ) == Some(200)),
            "round {round}: the winner's socket does not answer"
        );
        terminate(&agents[winner]);
        let (code, stderr) = finish(&mut agents[winner]);
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
    let dir = tempfile::tempdir().unwrap();
    let config = quick_config(dir.path());
    let socket = dir.path().join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut first = spawn(agent_cli(&config, &listen));
    assert!(wait_for(Duration::from_secs(20), || list_runtimes(
        &socket, None
    ) == Some(200)));
    std::fs::remove_file(&socket).unwrap();
    let mut second = spawn(agent_cli(&config, &listen));
    let refused = wait_for(Duration::from_secs(10), || {
        second.try_wait().unwrap().is_some()
    });
    if !refused {
        let _ = second.kill();
    }
    let (code, stderr) = finish(&mut second);
    assert!(refused, "a second agent is running on the path: {stderr}");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another agent is listening on {}",
            socket.display()
        )),
        "{stderr}"
    );
    assert!(!socket.exists(), "the refused agent bound the socket");
    terminate(&first);
    assert_eq!(finish(&mut first).0, Some(0));
    // Once the first one has stopped, the path is free again.
    let mut third = spawn(agent_cli(&config, &listen));
    assert!(wait_for(Duration::from_secs(20), || list_runtimes(
        &socket, None
    ) == Some(200)));
    terminate(&third);
    assert_eq!(finish(&mut third).0, Some(0));
}

/// An agent removes its socket file at exit only if the path still names
/// the socket it bound.
#[test]
fn an_agent_never_removes_a_socket_it_did_not_bind() {
    let dir = tempfile::tempdir().unwrap();
    let config = quick_config(dir.path());
    let socket = dir.path().join("agent.sock");
    let mut agent = spawn(agent_cli(&config, &format!("unix:{}", socket.display())));
    assert!(wait_for(Duration::from_secs(20), || list_runtimes(
        &socket, None
    ) == Some(200)));
    // Someone else now owns the path.
    std::fs::remove_file(&socket).unwrap();
    let other = UnixListener::bind(&socket).unwrap();
    terminate(&agent);
    let (code, stderr) = finish(&mut agent);
    assert_eq!(code, Some(0), "{stderr}");
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
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            r#"runtimes:
  daemon:
    start:
      steps:
        - id: daemon
          uses: init.run
          with: {{ command: "(exec sleep 30) >/dev/null 2>&1 & echo $! > {dir}/daemon.pid; touch {dir}/up" }}
    probe: {{ uses: init.wait_file, with: {{ path: "{dir}/up" }}, timeout: 1s }}
    endpoint: "daemon"
"#,
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let socket = dir.path().join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut first = spawn(agent_cli(&config, &listen));
    Cli::new()
        .args(["ensure", "--agent", &listen, "daemon", "--wait", "20s"])
        .run()
        .code(0);
    let pid = std::fs::read_to_string(dir.path().join("daemon.pid")).unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn(agent_cli(&config, &listen));
    let up = wait_for(Duration::from_secs(20), || {
        list_runtimes(&socket, None) == Some(200)
    });
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    assert!(up, "the new agent did not take over: {:?}", {
        let _ = second.kill();
        finish(&mut second)
    });
    terminate(&second);
    assert_eq!(finish(&mut second).0, Some(0));
}
