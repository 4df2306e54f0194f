//! A throwaway PostgreSQL cluster for tests and benchmarks.
//!
//! `initdb` into a temp dir owned by `nobody` (PostgreSQL refuses to run as
//! root), a free loopback port, the Unix socket in the temp dir, trust
//! authentication. [`Pg::shared`] gives one cluster per test binary; a
//! watchdog process stops it with `pg_ctl` when the binary exits (statics
//! are never dropped). [`Pg::start`] gives one that `Drop` stops.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster.
pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    stop_on_drop: bool,
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl`.
pub fn bin_dir() -> PathBuf {
    bin_dir_in(Path::new("/usr/lib/postgresql"))
}

/// The newest `ROOT/*/bin` with `initdb` and `pg_ctl`; panics (fails the
/// test, never skips it) naming scripts/deps.sh when there is none.
pub fn bin_dir_in(root: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    match dirs.pop() {
        Some(dir) => dir,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under {}/*/bin: \
             run scripts/deps.sh to install them",
            root.display()
        ),
    }
}

/// Whether this process runs as root (PostgreSQL then needs another user).
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

/// `program` from the server's bin dir, as `nobody` when we are root.
fn as_nobody(bin: &Path, program: &str) -> Command {
    if !is_root() {
        return Command::new(bin.join(program));
    }
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--"]).arg(bin.join(program));
    cmd
}

fn run(mut cmd: Command, what: &str) {
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
}

/// A loopback port nothing listens on (free when probed).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

impl Pg {
    /// Starts a cluster that is stopped when dropped. `extra` are `-c`
    /// settings, e.g. `["fsync=on"]`.
    pub fn start(extra: &[&str]) -> Pg {
        let mut pg = Self::boot(extra);
        pg.stop_on_drop = true;
        pg
    }

    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static Pg {
        static SHARED: OnceLock<Pg> = OnceLock::new();
        SHARED.get_or_init(|| {
            let pg = Self::boot(&[]);
            pg.watchdog();
            pg
        })
    }

    fn boot(extra: &[&str]) -> Pg {
        Self::boot_with(extra, |_| {})
    }

    /// [`boot`](Self::boot), with `prepare` run on the data directory
    /// between `initdb` and the start (files it writes are then given to
    /// the server's user).
    fn boot_with(extra: &[&str], prepare: impl FnOnce(&Path)) -> Pg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rebound-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "nobody:nogroup"]).arg(dir.path());
                    c
                },
                "chown the cluster dir to nobody",
            );
        }
        let data = dir.path().join("data");
        run(
            {
                let mut c = as_nobody(&bin, "initdb");
                c.arg("-D").arg(&data).args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]);
                c
            },
            "initdb",
        );
        prepare(&data);
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "nobody:nogroup"]).arg(dir.path());
                    c
                },
                "chown the prepared cluster files to nobody",
            );
        }
        // Another test binary may take the port between our probe and the
        // start: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=100",
                dir.path().display()
            );
            for e in extra {
                opts.push_str(" -c ");
                opts.push_str(e);
            }
            let status = as_nobody(&bin, "pg_ctl")
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
                return Pg {
                    dir,
                    bin,
                    port,
                    stop_on_drop: false,
                };
            }
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// A `sh` loop that stops the cluster once this process is gone.
    // The watchdog must outlive this process, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {runas}{pg_ctl} -D {data} -m immediate -w stop >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            runas = if is_root() {
                "runuser -u nobody -- "
            } else {
                ""
            },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.dir.path().join("data").display(),
            dir = self.dir.path().display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the PostgreSQL watchdog");
    }

    /// The server's binaries (`pgbench`, `psql`, ...).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A URL for `database` as the `postgres` superuser over loopback.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh database named after `prefix` and returns its URL.
    pub fn fresh_db(&self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}_{}_{}",
            prefix.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
        .to_lowercase();
        run(
            {
                let mut c = Command::new(self.bin.join("createdb"));
                c.args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg(&name);
                c
            },
            "createdb",
        );
        self.url(&name)
    }

    /// Runs SQL through `psql` on `url`'s database; returns stdout.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                url,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn stop(&self) {
        let _ = as_nobody(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Pg {
    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended with
    /// 57P01), keeping its data directory and port for
    /// [`start_again`](Self::start_again).
    pub fn halt(&self) {
        run(
            {
                let mut c = as_nobody(&self.bin, "pg_ctl");
                c.arg("-D")
                    .arg(self.dir.path().join("data"))
                    .args(["-m", "fast", "-w", "stop"])
                    .stdout(Stdio::null());
                c
            },
            "pg_ctl stop",
        );
    }

    /// Starts a server [`halt`](Self::halt)ed before, on the same data
    /// directory and port (without the `-c` settings it was first started
    /// with).
    pub fn start_again(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        run(
            {
                let mut c = as_nobody(&self.bin, "pg_ctl");
                c.arg("-D")
                    .arg(self.dir.path().join("data"))
                    .arg("-l")
                    .arg(self.dir.path().join("server.log"))
                    .args(["-w", "-t", "60", "-o", &opts, "start"])
                    .stdout(Stdio::null());
                c
            },
            "pg_ctl start (again)",
        );
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}

/// A test CA and a server certificate it signed, as PEM text.
pub struct TestCerts {
    /// The CA's certificate (what `sslrootcert` names).
    pub ca_pem: String,
    /// The server's certificate, for `localhost` and `127.0.0.1`.
    pub server_cert_pem: String,
    /// The server certificate's private key.
    pub server_key_pem: String,
}

impl TestCerts {
    /// A fresh CA named `ca_name` and a server certificate it signed for
    /// `localhost` and `127.0.0.1` (made with rcgen).
    pub fn generate(ca_name: &str) -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        TestCerts {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

/// The role [`Pg::start_tls`] creates, which logs in with
/// [`TLS_PASSWORD`] (SCRAM) over TLS.
pub const TLS_USER: &str = "rebound";
/// [`TLS_USER`]'s password.
pub const TLS_PASSWORD: &str = "s3cr3t-Tls-pw";

impl Pg {
    /// Starts a cluster (stopped when dropped) with `ssl = on` and the
    /// server certificate of `certs`, whose `pg_hba.conf` allows TCP only
    /// over TLS (`hostssl`: a plaintext connection is refused): the
    /// `postgres` superuser by trust, [`TLS_USER`] by its password
    /// (`scram-sha-256`). The Unix socket stays open (trust) for `psql`.
    pub fn start_tls(certs: &TestCerts) -> Pg {
        let mut pg = Self::boot_with(&["ssl=on"], |data| {
            let write = |name: &str, text: &str| {
                std::fs::write(data.join(name), text)
                    .unwrap_or_else(|e| panic!("write {name}: {e}"));
            };
            write("server.crt", &certs.server_cert_pem);
            write("server.key", &certs.server_key_pem);
            write(
                "pg_hba.conf",
                "local all all trust\n\
                 hostssl all postgres 127.0.0.1/32 trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n",
            );
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod server.key");
        });
        pg.stop_on_drop = true;
        let socket = pg.socket_url("postgres");
        pg.psql(
            &socket,
            &format!("CREATE ROLE {TLS_USER} LOGIN SUPERUSER PASSWORD '{TLS_PASSWORD}'"),
        );
        pg
    }

    /// A URL for `database` as the `postgres` superuser over the cluster's
    /// Unix socket (no TLS there).
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "postgresql:///{database}?host={}&port={}&user=postgres",
            self.dir.path().display(),
            self.port
        )
    }
}
