//! rebound and a service manager: the sd_notify protocol checked against a
//! real Unix datagram socket standing in for systemd (the messages, their
//! order, the watchdog's pace), and socket activation's `LISTEN_PID`
//! passed on to the workload. Nothing is sent over vsock here (its parsing
//! is unit-tested in src/notify.rs).

mod support;

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Outcome, agent_cli, ensure_wait, init_cli, send_signal, write_file};

/// The stand-in for systemd: a datagram socket rebound notifies.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    fn at_path(path: &Path) -> Self {
        Self::on(UnixDatagram::bind(path).unwrap())
    }

    fn abstract_name(name: &str) -> Self {
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        Self::on(UnixDatagram::bind_addr(&addr).unwrap())
    }

    /// Reads from `socket`, each read bounded to 20 s.
    fn on(socket: UnixDatagram) -> Self {
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self { socket }
    }

    /// The next message (fails after 20 s without one).
    fn next(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a notification within 20 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Messages until one contains `last` (included).
    fn until(&self, last: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let message = self.next();
            let done = message.contains(last);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

fn two_steps(dir: &Path) -> std::path::PathBuf {
    write_file(
        dir,
        "spec.yaml",
        "init:\n  steps:\n    - id: first\n      uses: init.run\n      with: { command: 'true' }\n    - id: second\n      uses: init.run\n      with: { command: 'true' }\n",
    )
}

#[test]
fn init_sends_a_status_per_step_then_ready_once_the_workload_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = two_steps(dir.path());
    let manager = Manager::at_path(&dir.path().join("notify"));
    init_cli(&["--notify-ready"], &spec)
        .env("NOTIFY_SOCKET", dir.path().join("notify"))
        .workload(["true"])
        .run()
        .code(0);
    let messages = manager.until("READY=1");
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages[0].starts_with("STATUS=init: [first] "),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("STATUS=init: [second] "),
        "{messages:?}"
    );
    assert_eq!(messages[2], "STATUS=init done");
    assert!(
        messages[3].starts_with("READY=1\nSTATUS=running true (pid "),
        "{messages:?}"
    );
}

#[test]
fn without_notify_ready_init_sends_statuses_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = two_steps(dir.path());
    let name = format!("rebound-systemd-test-{}", std::process::id());
    let manager = Manager::abstract_name(&name);
    init_cli(&[], &spec)
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .workload(["true"])
        .run()
        .code(0);
    let messages = manager.until("STATUS=running true");
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages.iter().all(|m| !m.contains("READY=1")),
        "{messages:?}"
    );
}

#[test]
fn an_invalid_notify_socket_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = two_steps(dir.path());
    init_cli(&[], &spec)
        .env("NOTIFY_SOCKET", "vsock:host:1")
        .usage_error("NOTIFY_SOCKET=\"vsock:host:1\": the CID `host` is not a number");
}

#[test]
fn socket_activation_hands_the_descriptors_to_the_workload_with_its_own_listen_pid() {
    // systemd sets LISTEN_PID to rebound's pid and opens fd 3; the shell
    // does the same here, then becomes rebound. The workload must see
    // LISTEN_PID equal to its own pid, the other variables unchanged, and
    // fd 3 open.
    let dir = tempfile::tempdir().unwrap();
    let spec = two_steps(dir.path());
    let probe = "echo \"pid=$LISTEN_PID self=$$ fds=$LISTEN_FDS names=$LISTEN_FDNAMES\"; \
                 [ -e /proc/$$/fd/3 ] && echo fd3-open; \
                 env | grep -c REBOUND_INIT_TRAMPOLINE";
    let inner = format!(
        "exec 3<'{}'; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http; exec '{}' init --quiet '{}' -- sh -c '{}'",
        spec.display(),
        env!("CARGO_BIN_EXE_rebound"),
        spec.display(),
        probe
    );
    let out = Outcome::command(Command::new("sh").args(["-c", &inner]), "sh");
    let text = out.stdout();
    let line = text.lines().next().unwrap_or_default();
    let (pid, rest) = line
        .strip_prefix("pid=")
        .and_then(|l| l.split_once(" self="))
        .unwrap_or_else(|| panic!("{text}"));
    let (me, vars) = rest.split_once(' ').unwrap();
    assert_eq!(pid, me, "LISTEN_PID is not the workload's pid: {text}");
    assert_eq!(vars, "fds=1 names=http");
    assert!(text.contains("fd3-open"), "{text}");
    assert!(
        text.ends_with("0\n"),
        "the trampoline's variable leaked: {text}"
    );
    // `grep -c` exits 1 when it counts 0: that is the workload's code.
    out.code(1);
}

#[test]
fn listen_fds_for_another_process_are_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let spec = two_steps(dir.path());
    init_cli(&["--quiet"], &spec)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .workload(["sh", "-c", "echo pid=$LISTEN_PID"])
        .run()
        .code(0)
        .stdout_has("pid=1\n");
}

#[test]
fn agent_is_ready_once_listening_pets_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let config = write_file(
        dir.path(),
        "agent.yaml",
        &format!(
            "runtimes:\n  web:\n    start:\n      steps:\n        - id: go\n          uses: init.run\n          with: {{ command: \"touch '{0}'\" }}\n    probe: {{ uses: init.wait_file, with: {{ path: '{0}' }} }}\n    endpoint: none\n",
            up.display()
        ),
    );
    let socket = dir.path().join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let manager = Manager::at_path(&dir.path().join("notify"));
    // WATCHDOG_USEC 200 ms: WATCHDOG=1 every 100 ms.
    let mut agent = agent_cli(&config, &listen)
        .env("NOTIFY_SOCKET", dir.path().join("notify"))
        .env("WATCHDOG_USEC", "200000")
        .spawn_quiet();
    let ready = manager.next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=listening on unix:"),
        "{ready}"
    );
    assert!(ready.ends_with("; runtimes: web"), "{ready}");
    // Ready means listening: a connection is accepted at once.
    std::os::unix::net::UnixStream::connect(&socket).expect("READY=1 before the socket listens");
    // The watchdog's pace: five pets, each about 100 ms after the last
    // (never faster than 60 ms apart, which a tight loop would be). The
    // first carries the runtimes' states; the others, unchanged, do not.
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    for i in 0..5 {
        let expected = if i == 0 {
            "WATCHDOG=1\nSTATUS=web: not_started"
        } else {
            "WATCHDOG=1"
        };
        assert_eq!(manager.next(), expected);
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    assert!(
        gaps[1..].iter().all(|g| *g >= Duration::from_millis(60)),
        "{gaps:?}"
    );
    // A state change shows in the next pet's status.
    ensure_wait(&listen, "web", "20s").run().code(0);
    let changed = manager.until("STATUS=web: ready");
    assert!(
        changed.iter().all(|m| m.starts_with("WATCHDOG=1")),
        "{changed:?}"
    );
    send_signal(agent.id(), "TERM");
    let stopping = manager.until("STOPPING=1");
    assert!(
        stopping[..stopping.len() - 1]
            .iter()
            .all(|m| m == "WATCHDOG=1"),
        "{stopping:?}"
    );
    assert_eq!(stopping.last().unwrap(), "STOPPING=1\nSTATUS=stopping");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
}

#[test]
fn agent_without_watchdog_usec_sends_no_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "agent.yaml",
        "runtimes:\n  web:\n    start:\n      steps:\n        - id: go\n          uses: init.run\n          with: { command: 'true' }\n    probe: { uses: init.wait_file, with: { path: /nonexistent } }\n    endpoint: none\n",
    );
    let socket = dir.path().join("agent.sock");
    let manager = Manager::at_path(&dir.path().join("notify"));
    let mut agent = agent_cli(&config, &format!("unix:{}", socket.display()))
        .env("NOTIFY_SOCKET", dir.path().join("notify"))
        .env_remove("WATCHDOG_USEC")
        .spawn_quiet();
    assert!(manager.next().starts_with("READY=1"));
    send_signal(agent.id(), "TERM");
    // The very next message is STOPPING=1: no WATCHDOG=1 in between.
    assert_eq!(manager.next(), "STOPPING=1\nSTATUS=stopping");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
}

#[test]
fn the_example_units_pass_systemd_analyze_verify() {
    // The units of examples/systemd, with the installed paths pointed at
    // this build (verify checks that ExecStart's program exists); any
    // warning (an unknown key, a bad value) fails the test.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in [
        "rebound-agent.service",
        "rebound-agent.socket",
        "app.service",
    ] {
        let text = std::fs::read_to_string(examples.join(name)).unwrap();
        let text = text
            .replace("/usr/local/bin/rebound", env!("CARGO_BIN_EXE_rebound"))
            .replace("/usr/local/bin/app", "/bin/true");
        units.push(write_file(dir.path(), name, &text));
    }
    let out = Outcome::command(
        Command::new("systemd-analyze").arg("verify").args(&units),
        "systemd-analyze (systemd)",
    )
    .code(0);
    assert!(out.stderr().trim().is_empty(), "{}", out.stderr());
}
