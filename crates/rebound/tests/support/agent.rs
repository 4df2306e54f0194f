//! A running `rebound agent` and the ways the tests talk to it: the
//! command lines, one raw HTTP/1.1 request, a child's exit and stderr.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rebound::agent::addr::Addr;
use rebound::agent::client::Client;

use super::{Cli, send_signal, wait_until, write_file};

/// A runtime `quick` that is ready once `{dir}/up` exists (its start
/// touches it).
pub const QUICK_CONFIG: &str = r#"runtimes:
  quick:
    start:
      steps:
        - id: touch
          uses: init.run
          with: { command: ["touch", "{dir}/up"] }
    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }
    endpoint: "file://{dir}/up"
"#;

/// The entry of a runtime `web` in an agent config (for [`Agent::start`]:
/// `{dir}` stands for the agent's directory). Its start runs the shell
/// command `{before}({delay}exec python3 -m http.server PORT) & echo $! >
/// {dir}/web.pid`, so the server (python's, on `port`) runs in the
/// background and [`Agent`] kills it when dropped; it is probed over TCP
/// with a 1 s timeout and its endpoint is `http://127.0.0.1:PORT`. `rest`
/// holds further fields of the runtime, a line each, indented four spaces.
pub fn web_runtime(port: u16, before: &str, delay: &str, rest: &str) -> String {
    format!(
        r#"  web:
    start:
      steps:
        - id: serve
          uses: init.run
          with:
            command: "{before}({delay}exec python3 -m http.server {port} --bind 127.0.0.1) >/dev/null 2>&1 & echo $! > {{dir}}/web.pid"
    probe:
      uses: init.wait_tcp
      with: {{ host: 127.0.0.1, port: {port} }}
      timeout: 1s
    endpoint: "http://127.0.0.1:{port}"
{rest}"#
    )
}

/// An agent config with the one runtime `name`, whose start is one
/// `init.run` step running the shell command `command` (double-quoted in
/// the YAML; `{dir}` as in [`write_config`]), followed by `rest`: the
/// runtime's probe, endpoint and further fields, a line each, indented four
/// spaces.
pub fn one_runtime(name: &str, command: &str, rest: &str) -> String {
    format!(
        "runtimes:\n  {name}:\n    start:\n      steps:\n        - id: start\n          uses: init.run\n          with: {{ command: \"{command}\" }}\n{rest}"
    )
}

/// The probe and endpoint of a runtime that is never ready (for
/// [`one_runtime`]): it waits `timeout` for a file nobody writes; then
/// `rest`, further fields as for [`one_runtime`].
pub fn never_ready(timeout: &str, rest: &str) -> String {
    format!(
        "    probe: {{ uses: init.wait_file, with: {{ path: \"{{dir}}/never\" }}, timeout: {timeout} }}\n    endpoint: none\n{rest}"
    )
}

/// Writes `config`, with `{dir}` replaced by `dir`, to `dir/agent.yaml`.
pub fn write_config(dir: &Path, config: &str) -> PathBuf {
    write_file(
        dir,
        "agent.yaml",
        &config.replace("{dir}", &dir.display().to_string()),
    )
}

/// A fresh temporary directory with [`QUICK_CONFIG`] written to
/// `agent.yaml` in it: the directory and the config's path.
pub fn quick_config_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), QUICK_CONFIG);
    (dir, config)
}

/// `rebound agent --config CONFIG --listen LISTEN`.
pub fn agent_cli(config: &Path, listen: &str) -> Cli {
    Cli::new()
        .args(["agent", "--config"])
        .args([config])
        .args(["--listen", listen])
}

/// `rebound ensure --agent ADDR NAME`.
pub fn ensure_cli(addr: &str, name: &str) -> Cli {
    Cli::new().args(["ensure", "--agent", addr, name])
}

/// `rebound ensure --agent ADDR NAME --wait WAIT`.
pub fn ensure_wait(addr: &str, name: &str, wait: &str) -> Cli {
    ensure_cli(addr, name).args(["--wait", wait])
}

/// Starts `cli` in the background with stdout discarded and stderr piped
/// (read it with [`finish`]).
pub fn spawn_logging(cli: Cli) -> Child {
    cli.command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rebound")
}

/// Waits for `child` to exit: its exit code and everything it wrote to
/// stderr (when that was piped).
pub fn finish(child: &mut Child) -> (Option<i32>, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    (child.wait().unwrap().code(), stderr)
}

/// SIGTERM to `child`, then its exit code and stderr (see [`finish`]).
pub fn terminate(child: &mut Child) -> (Option<i32>, String) {
    send_signal(child.id(), "TERM");
    finish(child)
}

/// SIGTERM to `child`, then asserts that it exits 0 (showing its stderr
/// where it does not): its stderr.
#[track_caller]
pub fn stop_cleanly(child: &mut Child) -> String {
    let (code, stderr) = terminate(child);
    assert_eq!(code, Some(0), "{stderr}");
    stderr
}

/// One request on a fresh connection to the Unix socket `socket`, without
/// a token: the status and body.
#[track_caller]
pub fn unix_http(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    http(
        UnixStream::connect(socket).unwrap(),
        method,
        path,
        body,
        None,
    )
}

/// Polls `cond` every 10 ms for up to `limit` (waiting for real processes,
/// not measuring time): whether it came true. For a test that has to clean
/// up before it asserts; [`wait_until`] fails at once instead.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

/// One HTTP/1.1 request with `Connection: close` (a whole-body answer) and
/// a JSON `body`, with `Authorization: Bearer TOKEN` when `token` is given:
/// the status and body.
#[track_caller]
pub fn http<S: Read + Write>(
    stream: S,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    try_http(stream, method, path, body, token)
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer"))
}

/// [`http`], or `None` where the exchange fails or the answer has no
/// status line (a peer that closes, a read timeout).
pub fn try_http<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A running `rebound agent` on a Unix socket in its own temporary
/// directory, its stderr piped (see [`Agent::stop`]). When dropped it is
/// killed, and so is every process whose pid a runtime wrote to a `*.pid`
/// file in that directory.
pub struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Agent {
    /// Writes `config` (with `{dir}` replaced by the temporary directory)
    /// to `agent.yaml` there, starts the agent on `unix:{dir}/agent.sock`
    /// and returns once the socket accepts connections.
    pub fn start(config: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let config = write_config(dir.path(), config);
        let child = spawn_logging(agent_cli(&config, &format!("unix:{}", socket.display())));
        let agent = Agent {
            child: Some(child),
            dir,
            socket,
        };
        wait_until(
            || UnixStream::connect(&agent.socket).is_ok(),
            "the agent socket",
        );
        agent
    }

    /// `unix:PATH`, for `rebound ensure --agent`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The socket the agent listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A path in the agent's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client of the agent's socket, without a token.
    pub fn client(&self) -> Client {
        Client::new(Addr::Unix(self.socket.clone()), None)
    }

    /// One request on a fresh connection: the status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        unix_http(&self.socket, method, path, body)
    }

    /// One request on a fresh connection whose answer must have status
    /// `expected`: its body as JSON.
    #[track_caller]
    pub fn request_json(
        &self,
        method: &str,
        path: &str,
        body: &str,
        expected: u16,
    ) -> serde_json::Value {
        let (code, body) = self.request(method, path, body);
        assert_eq!(code, expected, "{method} {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// `POST /v1/runtimes/RUNTIME/ensure`: the answer, which must be 200.
    pub fn ensure(&self, runtime: &str, start: bool) -> serde_json::Value {
        self.request_json(
            "POST",
            &format!("/v1/runtimes/{runtime}/ensure"),
            &format!("{{\"start_if_needed\": {start}}}"),
            200,
        )
    }

    /// `runtime`'s entry in `GET /v1/runtimes`.
    pub fn state(&self, runtime: &str) -> serde_json::Value {
        let all = self.request_json("GET", "/v1/runtimes", "", 200);
        all["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == runtime)
            .cloned()
            .unwrap()
    }

    /// A sample of the agent's `/metrics`, by its full name and labels.
    #[track_caller]
    pub fn metric(&self, sample: &str) -> u64 {
        let (_, text) = self.request("GET", "/metrics", "");
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    }

    /// SIGTERM, then the exit code and stderr.
    pub fn stop(&mut self) -> (Option<i32>, String) {
        terminate(&mut self.child.take().expect("the agent runs"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Runtimes the tests started write their pid here.
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(".pid") {
                if let Ok(pid) = std::fs::read_to_string(entry.path()) {
                    let _ = Command::new("kill")
                        .args(["-KILL", pid.trim()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}
