//! Throwaway database and cache servers for the tests and benchmarks of
//! `init.wait_postgres`, `init.wait_mysql` and `init.wait_redis`: each in a
//! temp dir, on a free loopback port, with a password (so logins are
//! really checked), stopped when the test binary exits (a watchdog `sh`
//! loop: statics are never dropped) or, for [`Redis::start`], on drop.
//!
//! A missing server binary fails the test loudly, naming
//! `scripts/deps.sh` (which installs it); nothing is skipped.
//!
//! Shared with the `rebound` binary's tests (`#[path]`). The PostgreSQL
//! binaries and the free ports come from rebound-recovery's test support
//! (`pg.rs`, whose trust-authenticated cluster these password tests cannot
//! use); the test CA from `common/test_ca.rs`.
#![allow(dead_code)]

#[path = "../../../rebound-recovery/tests/support/pg.rs"]
mod pg;
#[path = "../common/test_ca.rs"]
mod test_ca;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The password of every server's login (the tests assert that it never
/// shows up in messages).
pub const PASSWORD: &str = "pw-Hunter2-s3cret";

pub use pg::free_port;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `program` as `nobody` when we are root (PostgreSQL refuses root).
fn as_nobody(program: &Path) -> Command {
    if !is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--"]).arg(program);
    cmd
}

fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `name` on the PATH or in `extra` dirs; panics naming scripts/deps.sh.
fn program(name: &str, extra: &[&str]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: run scripts/deps.sh to install the test servers")
        })
}

/// A `sh` loop that runs `cleanup` once this process is gone.
// The watchdog must outlive this process, so it is never waited for.
#[allow(clippy::zombie_processes)]
fn watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a server watchdog");
}

static NAMES: AtomicU32 = AtomicU32::new(0);

/// A fresh name: `prefix_PID_N`.
pub fn fresh_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL cluster with password (SCRAM) authentication: the
/// superuser `postgres` logs in with [`PASSWORD`].
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Postgres {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Postgres::boot)
    }

    fn boot() -> Postgres {
        let bin = pg::bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rebound-dbwait-pg-")
            .tempdir()
            .expect("temp dir");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let mut c = Command::new("chown");
            c.args(["-R", "nobody:nogroup"]).arg(dir.path());
            run(c, "chown the cluster dir to nobody");
        }
        let data = dir.path().join("data");
        let mut c = as_nobody(&bin.join("initdb"));
        c.arg("-D")
            .arg(&data)
            .arg(format!("--pwfile={}", pwfile.display()));
        c.args([
            "-A",
            "scram-sha-256",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(c, "initdb");
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
                dir.path().display()
            );
            let status = as_nobody(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run pg_ctl");
            if status.success() {
                watchdog(&format!(
                    "{runas}{pg_ctl} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
                    runas = if is_root() {
                        "runuser -u nobody -- "
                    } else {
                        ""
                    },
                    pg_ctl = bin.join("pg_ctl").display(),
                    data = data.display(),
                    dir = dir.path().display(),
                ));
                return Postgres { dir, bin, port };
            }
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// The URL of `database` as `postgres` with `password`.
    pub fn url_with(&self, database: &str, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The URL of `database` as `postgres` with the right password.
    pub fn url(&self, database: &str) -> String {
        self.url_with(database, PASSWORD)
    }

    /// Creates a fresh database and returns its name.
    pub fn fresh_db(&self) -> String {
        let name = fresh_name("w");
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs SQL through `psql` in `database`; returns stdout.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let mut c = Command::new(self.bin.join("psql"));
        c.env("PGPASSWORD", PASSWORD).args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]);
        run(c, &format!("psql {sql}"))
    }
}

/// A MariaDB server: `root` through its socket for set-up, and the user
/// `app` with [`PASSWORD`] over TCP, allowed everything on databases
/// named `w_*`.
pub struct Mariadb {
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    client: PathBuf,
}

impl Mariadb {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static Mariadb {
        static SHARED: OnceLock<Mariadb> = OnceLock::new();
        SHARED.get_or_init(Mariadb::boot)
    }

    // The server outlives this call (the watchdog kills it when the test
    // binary is gone), so it is not waited for here.
    #[allow(clippy::zombie_processes)]
    fn boot() -> Mariadb {
        let install = program("mariadb-install-db", &["/usr/bin"]);
        let server = program("mariadbd", &["/usr/sbin"]);
        let client = program("mariadb", &["/usr/bin"]);
        let dir = tempfile::Builder::new()
            .prefix("rebound-dbwait-mariadb-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let mut c = Command::new(&install);
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            c.arg("--user=root");
        }
        run(c, "mariadb-install-db");
        let socket = dir.path().join("s.sock");
        let log = dir.path().join("err.log");
        for _ in 0..5 {
            let port = free_port();
            let mut c = Command::new(&server);
            c.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--pid-file={}", dir.path().join("pid").display()))
                .arg(format!("--log-error={}", log.display()))
                .args([
                    "--innodb-buffer-pool-size=16M",
                    "--skip-log-bin",
                    "--innodb-flush-log-at-trx-commit=0",
                ]);
            if is_root() {
                c.arg("--user=root");
            }
            let mut child = c
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mariadbd");
            let start = Instant::now();
            let mut up = false;
            while start.elapsed() < Duration::from_secs(60) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            watchdog(&format!(
                "kill -9 {pid} 2>/dev/null; rm -rf {dir}",
                pid = child.id(),
                dir = dir.path().display()
            ));
            let db = Mariadb { dir, port, client };
            db.root_sql(&format!(
                "CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON `w\\_%`.* TO 'app'@'%';"
            ));
            return db;
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("MariaDB did not start:\n{log}");
    }

    /// The URL of `database` as `app` with `password`.
    pub fn url_with(&self, database: &str, password: &str) -> String {
        format!("mysql://app:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of `database` as `app` with the right password.
    pub fn url(&self, database: &str) -> String {
        self.url_with(database, PASSWORD)
    }

    /// Creates a fresh database and returns its name.
    pub fn fresh_db(&self) -> String {
        let name = fresh_name("w");
        self.root_sql(&format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs SQL as root through the socket; returns stdout.
    pub fn root_sql(&self, sql: &str) -> String {
        let mut c = Command::new(&self.client);
        c.arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("s.sock").display()
            ))
            .args(["-uroot", "-N", "-B", "-e", sql]);
        run(c, &format!("mariadb {sql}"))
    }
}

/// A Redis server with `requirepass` [`PASSWORD`] and no persistence.
pub struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    /// For a TLS-only server ([`Redis::start_tls`]): the PEM file of the
    /// test CA that signed its certificate (for `localhost` and
    /// `127.0.0.1`).
    pub ca_file: Option<PathBuf>,
}

/// Writes a fresh test CA (`ca.pem`) and a server certificate it signed
/// for `localhost` and `127.0.0.1` (`cert.pem`, `key.pem`) into `dir`.
fn write_test_ca(dir: &Path) {
    let ca = test_ca::TestCa::new();
    for (name, pem) in [
        ("ca.pem", ca.ca_pem),
        ("cert.pem", ca.cert_pem),
        ("key.pem", ca.key_pem),
    ] {
        std::fs::write(dir.join(name), pem).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

impl Redis {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static Redis {
        static SHARED: OnceLock<Redis> = OnceLock::new();
        SHARED.get_or_init(|| {
            let r = Redis::start_on(None);
            watchdog(&format!("kill -9 {} 2>/dev/null", r.child.id()));
            r
        })
    }

    /// A server that `Drop` stops.
    pub fn start() -> Redis {
        Redis::start_on(None)
    }

    /// The TLS-only server of this test binary ([`Redis::start_tls`]),
    /// started on first use.
    pub fn shared_tls() -> &'static Redis {
        static SHARED: OnceLock<Redis> = OnceLock::new();
        SHARED.get_or_init(|| {
            let r = Redis::boot(None, true);
            watchdog(&format!("kill -9 {} 2>/dev/null", r.child.id()));
            r
        })
    }

    /// A server that speaks only TLS (`rediss://`, `--port 0 --tls-port`),
    /// with a certificate from a fresh test CA ([`Redis::ca_file`]) and no
    /// client certificates asked for, listening on 127.0.0.1 and on
    /// 127.0.0.2 (which the certificate does not name); `Drop` stops it.
    pub fn start_tls() -> Redis {
        Redis::boot(None, true)
    }

    /// A server on `port` (or a free one) that `Drop` stops.
    pub fn start_on(given: Option<u16>) -> Redis {
        Redis::boot(given, false)
    }

    fn boot(given: Option<u16>, tls: bool) -> Redis {
        let server = program("redis-server", &["/usr/bin"]);
        let dir = tempfile::Builder::new()
            .prefix("rebound-dbwait-redis-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("redis.log");
        if tls {
            write_test_ca(dir.path());
        }
        for _ in 0..5 {
            let port = given.unwrap_or_else(free_port);
            let mut cmd = Command::new(&server);
            if tls {
                let file = |name: &str| dir.path().join(name);
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(file("cert.pem"))
                    .arg("--tls-key-file")
                    .arg(file("key.pem"))
                    .arg("--tls-ca-cert-file")
                    .arg(file("ca.pem"))
                    .args(["--tls-auth-clients", "no"])
                    // Also on 127.0.0.2, an address the certificate does
                    // not name (host checks).
                    .args(["--bind", "127.0.0.1", "127.0.0.2"]);
            } else {
                cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            }
            let mut child = cmd
                .args([
                    "--requirepass",
                    PASSWORD,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let start = Instant::now();
            let mut up = false;
            while start.elapsed() < Duration::from_secs(20) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if up {
                let ca_file = tls.then(|| dir.path().join("ca.pem"));
                return Redis {
                    child,
                    _dir: dir,
                    port,
                    ca_file,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            if given.is_some() {
                break;
            }
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("redis-server did not start:\n{log}");
    }

    /// The URL of database 0 with `password` (`rediss://localhost:...`
    /// for a TLS server: the host its certificate names).
    pub fn url_with(&self, password: &str) -> String {
        match self.ca_file {
            None => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            Some(_) => format!("rediss://:{password}@localhost:{}/0", self.port),
        }
    }

    /// The URL of database 0 with the right password.
    pub fn url(&self) -> String {
        self.url_with(PASSWORD)
    }

    /// Runs a command through `redis-cli`; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut c = Command::new(program("redis-cli", &["/usr/bin"]));
        c.env("REDISCLI_AUTH", PASSWORD)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca_file {
            c.arg("--tls").arg("--cacert").arg(ca);
        }
        c.args(args);
        run(c, &format!("redis-cli {args:?}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
