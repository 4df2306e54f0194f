//! A real S3-compatible server for tests: `s3s-fs` on a free loopback port,
//! serving a temporary directory, stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "rebound-test-access";
/// The secret key the server accepts; tests assert it never shows up.
pub const SECRET_KEY: &str = "rebound-test-SECRET-d9f8a7c6";

/// A running `s3s-fs`.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

fn find_s3s_fs() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("s3s-fs");
        if candidate.is_file() {
            return candidate;
        }
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin/s3s-fs"));
    if let Some(p) = cargo_bin.filter(|p| p.is_file()) {
        return p;
    }
    panic!(
        "s3s-fs is not installed (not on PATH): run scripts/deps.sh, which installs it \
         (cargo install --locked s3s-fs@0.14.1 --features binary)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

impl S3Server {
    /// Starts a server with the given buckets created (as directories).
    pub fn start(buckets: &[&str]) -> Self {
        let binary = find_s3s_fs();
        let root = tempfile::tempdir().expect("temp dir");
        for b in buckets {
            std::fs::create_dir_all(root.path().join(b)).expect("create bucket dir");
        }
        // The port may be taken between probing and binding: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&binary)
                .arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(port.to_string())
                .arg("--access-key")
                .arg(ACCESS_KEY)
                .arg("--secret-key")
                .arg(SECRET_KEY)
                .arg(root.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn s3s-fs");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, root, port };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: most likely the port was taken
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start listening");
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory the server stores objects in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
