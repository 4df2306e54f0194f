//! End-to-end `ensure` requests per second: a real `rebound agent` on a
//! Unix socket, a runtime that is already Ready, keep-alive HTTP/1.1
//! connections sending `POST /v1/runtimes/quick/ensure` (1 connection, and 2
//! connections on 2 threads). `GET /v1/runtimes` is measured alongside as
//! the server's own floor (routing, JSON, no ensure).
//!
//! Run: `cargo bench -p rebound --bench agent_ensure -- --warm-up-time 1 --measurement-time 3`

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const CONFIG: &str = r#"runtimes:
  quick:
    start:
      steps:
        - id: touch
          uses: init.run
          with: { command: ["touch", "{dir}/up"] }
    probe: { uses: init.wait_file, with: { path: "{dir}/up" }, timeout: 1s }
    endpoint: "unix:/run/quick.sock"
    ready_ttl: 1h
"#;

/// A keep-alive HTTP/1.1 connection to the agent.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn open(socket: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// One request; the status and body.
    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let config = dir.path().join("agent.yaml");
        std::fs::write(
            &config,
            CONFIG.replace("{dir}", &dir.path().display().to_string()),
        )
        .expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_rebound"))
            .args(["agent", "--config"])
            .arg(&config)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the agent");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = loop {
            if let Ok(conn) = Conn::open(&socket) {
                break conn;
            }
            assert!(Instant::now() < deadline, "the agent did not come up");
            std::thread::sleep(Duration::from_millis(20));
        };
        loop {
            let (status, body) = conn.call("POST", "/v1/runtimes/quick/ensure", "{}");
            assert_eq!(status, 200, "{body}");
            if body.contains("\"status\":\"reused\"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the runtime did not become ready: {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            _dir: dir,
            socket,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `iters` calls on each of `conns` connections, one thread each; wall time.
fn run(
    socket: &Path,
    conns: usize,
    iters: u64,
    method: &str,
    path: &str,
    expect: &str,
) -> Duration {
    let barrier = Barrier::new(conns);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                s.spawn(|| {
                    let mut conn = Conn::open(socket).expect("connect");
                    barrier.wait();
                    let begun = Instant::now();
                    for _ in 0..iters {
                        let body = if method == "POST" {
                            "{\"start_if_needed\": true}"
                        } else {
                            ""
                        };
                        let (status, body) = conn.call(method, path, body);
                        assert!(status == 200 && body.contains(expect), "{status} {body}");
                    }
                    begun.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .max()
            .unwrap_or_default()
    })
}

fn end_to_end(c: &mut Criterion) {
    let agent = Agent::start();
    let mut group = c.benchmark_group("agent_over_unix_socket");
    for conns in [1usize, 2] {
        group.throughput(Throughput::Elements(conns as u64));
        group.bench_with_input(BenchmarkId::new("ensure_reused", conns), &conns, |b, &n| {
            b.iter_custom(|iters| {
                run(
                    &agent.socket,
                    n,
                    iters,
                    "POST",
                    "/v1/runtimes/quick/ensure",
                    "\"reused\"",
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("list_runtimes", conns), &conns, |b, &n| {
            b.iter_custom(|iters| run(&agent.socket, n, iters, "GET", "/v1/runtimes", "\"ready\""))
        });
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
