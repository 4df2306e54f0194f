//! Detection latency of the waits of issue 12: how long after the
//! dependency becomes ready does the waiting action notice? Measured as
//! benches/wait_tcp.rs measures `init.wait_tcp`, against a fixed 1 s poller
//! (wait4x's default) in the same run.
//!
//! Each run: the action starts while the dependency is not ready; after a
//! random 5-50 ms the bench makes it ready (binds a Unix socket, flips an
//! HTTP-over-Unix-socket server's JSON from "starting" to "ok", creates the
//! file an `init.wait_exec` command tests for, closes a TCP listener,
//! removes a pid file, turns a gRPC service SERVING in a real tonic-health
//! server); "ready" is the instant that change is made, the latency is the
//! time from then until the action's future completes.
//!
//! `cargo bench -p rebound-init --bench waits` (`-- RUNS BASELINE_RUNS`:
//! default 100 and 50; `-- grpc unix ...` measures only those waits).

mod latency;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use latency::spec;
use rebound_init::actions::ActionSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A dependency the bench makes ready: what to wait for, and how.
trait Scenario {
    /// The action (its `uses:` and `with:`) that waits for it.
    fn action(&self) -> ActionSpec;
    /// Makes it ready (synchronously, so the instant after is "ready").
    fn make_ready(&mut self);
}

struct UnixSocket {
    path: PathBuf,
    listener: Option<std::os::unix::net::UnixListener>,
}

impl Scenario for UnixSocket {
    fn action(&self) -> ActionSpec {
        spec("init.wait_unix", serde_json::json!({ "path": self.path }))
    }
    fn make_ready(&mut self) {
        self.listener = Some(std::os::unix::net::UnixListener::bind(&self.path).expect("bind"));
    }
}

/// An HTTP server on a Unix socket answering `{"status":"starting"}` until
/// `ok` is set, then `{"status":"ok"}`.
struct HttpJson {
    socket: PathBuf,
    ok: Arc<AtomicBool>,
}

impl HttpJson {
    async fn start(socket: PathBuf) -> Self {
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let ok = Arc::new(AtomicBool::new(false));
        let flag = ok.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let body = if flag.load(Ordering::SeqCst) {
                        r#"{"status":"ok"}"#
                    } else {
                        r#"{"status":"starting"}"#
                    };
                    let _ = conn
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                });
            }
        });
        HttpJson { socket, ok }
    }
}

impl Scenario for HttpJson {
    fn action(&self) -> ActionSpec {
        spec(
            "init.wait_http",
            serde_json::json!({
                "url": "http://localhost/health", "socket": self.socket,
                "json": { "path": "status", "equals": "ok" },
            }),
        )
    }
    fn make_ready(&mut self) {
        self.ok.store(true, Ordering::SeqCst);
    }
}

struct ExecFlag {
    flag: PathBuf,
}

impl Scenario for ExecFlag {
    fn action(&self) -> ActionSpec {
        spec(
            "init.wait_exec",
            serde_json::json!({ "command": ["test", "-e", self.flag] }),
        )
    }
    fn make_ready(&mut self) {
        std::fs::write(&self.flag, b"").expect("flag");
    }
}

struct TcpClosed {
    port: u16,
    listener: Option<std::net::TcpListener>,
}

impl Scenario for TcpClosed {
    fn action(&self) -> ActionSpec {
        spec(
            "init.wait_tcp",
            serde_json::json!({ "host": "127.0.0.1", "port": self.port, "state": "closed" }),
        )
    }
    fn make_ready(&mut self) {
        self.listener = None;
    }
}

struct FileAbsent {
    path: PathBuf,
}

impl Scenario for FileAbsent {
    fn action(&self) -> ActionSpec {
        spec(
            "init.wait_file",
            serde_json::json!({ "path": self.path, "state": "absent" }),
        )
    }
    fn make_ready(&mut self) {
        std::fs::remove_file(&self.path).expect("remove");
    }
}

#[cfg(feature = "grpc")]
#[path = "../tests/common/grpc.rs"]
mod grpc;

/// A real gRPC server (tonic + tonic-health) on a loopback port whose
/// service `bench.Orders` is NOT_SERVING until made ready.
#[cfg(feature = "grpc")]
struct GrpcService {
    server: grpc::GrpcServer,
}

#[cfg(feature = "grpc")]
impl Scenario for GrpcService {
    fn action(&self) -> ActionSpec {
        spec(
            "init.wait_grpc",
            serde_json::json!({ "url": format!("grpc://{}/bench.Orders", self.server.addr) }),
        )
    }
    fn make_ready(&mut self) {
        // The reporter's setter is async (a tokio RwLock and watch
        // channel, which need no particular runtime): run it to its end on
        // a thread of its own, so that the instant after is "ready".
        let reporter = self.server.reporter();
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime")
                    .block_on(
                        reporter.set_service_status("bench.Orders", grpc::ServingStatus::Serving),
                    )
            });
        });
    }
}

/// One measurement: the action waits, the scenario becomes ready after
/// `after` ms; returns ready -> success.
async fn measure(mut scenario: Box<dyn Scenario + Send>, after: u64) -> Duration {
    let waiter = latency::attempt(scenario.action());
    latency::measure(waiter, after, async { scenario.make_ready() }).await
}

/// A fresh scenario of `kind` in `dir` (run `n`).
async fn scenario(kind: &str, dir: &Path, n: usize) -> Box<dyn Scenario + Send> {
    match kind {
        "unix" => Box::new(UnixSocket {
            path: dir.join(format!("u{n}.sock")),
            listener: None,
        }),
        "http" => Box::new(HttpJson::start(dir.join(format!("h{n}.sock"))).await),
        "exec" => Box::new(ExecFlag {
            flag: dir.join(format!("f{n}")),
        }),
        "closed" => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            Box::new(TcpClosed {
                port: listener.local_addr().expect("addr").port(),
                listener: Some(listener),
            })
        }
        "absent" => {
            let path = dir.join(format!("p{n}.pid"));
            std::fs::write(&path, b"1").expect("pid file");
            Box::new(FileAbsent { path })
        }
        #[cfg(feature = "grpc")]
        "grpc" => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let server = grpc::GrpcServer::start(listener, None).await;
            server
                .set("bench.Orders", grpc::ServingStatus::NotServing)
                .await;
            Box::new(GrpcService { server })
        }
        other => unreachable!("{other}"),
    }
}

/// wait4x style, on a Unix socket: try, then sleep a fixed second.
async fn fixed_poller(path: PathBuf, opened_after: u64) -> Duration {
    let poll_path = path.clone();
    let waiter = latency::every_second(move || {
        let path = poll_path.clone();
        async move { tokio::net::UnixStream::connect(&path).await.is_ok() }
    });
    latency::measure(waiter, opened_after, async {
        std::os::unix::net::UnixListener::bind(&path).expect("bind")
    })
    .await
}

fn main() {
    let (runs, baseline_runs) = latency::counts();
    // Words (not flags such as cargo's `--bench`) choose the waits measured.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<usize>().is_err())
        .collect();
    let rt = latency::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        latency::header();
        let mut worst = Duration::ZERO;
        for (kind, name) in [
            ("unix", "init.wait_unix (socket bound)"),
            (
                "http",
                "init.wait_http over a Unix socket, json status = ok (JSON flips)",
            ),
            ("exec", "init.wait_exec `test -e FLAG` (flag created)"),
            ("closed", "init.wait_tcp state: closed (listener closed)"),
            ("absent", "init.wait_file state: absent (pid file removed)"),
            #[cfg(feature = "grpc")]
            (
                "grpc",
                "init.wait_grpc grpc://.../SERVICE (service turned SERVING)",
            ),
        ] {
            if !only.is_empty() && !only.iter().any(|k| k == kind) {
                continue;
            }
            let mut v = Vec::with_capacity(runs);
            for n in 0..runs {
                let s = scenario(kind, dir.path(), n).await;
                v.push(measure(s, fastrand::u64(5..50)).await);
            }
            worst = worst.max(latency::row(name, v));
        }
        let fixed = latency::baseline(baseline_runs, |i| {
            let path = dir.path().join(format!("b{i}.sock"));
            fixed_poller(path, fastrand::u64(1..1000))
        })
        .await;
        latency::row("fixed 1 s poller (wait4x default), Unix socket", fixed);
        latency::goal(worst);
    });
}
