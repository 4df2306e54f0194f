//! `rebound wait postgres://... mysql://... redis://... rediss://...` as a
//! process, against real servers (one of each for this test binary, and a
//! TLS-only Redis, from rebound-init's test support): ready at once, ready
//! late, never ready (exit 124 with the last reason), and the password in
//! no output.

#[path = "../../rebound-init/tests/db_support/mod.rs"]
mod db_support;
mod support;

use std::thread;
use std::time::Duration;

use db_support::{Mariadb, PASSWORD, Postgres, Redis};
use support::{Cli, Outcome};

/// Asserts that neither stdout nor stderr shows the password.
#[track_caller]
fn no_password(out: &Outcome) {
    for text in [out.stdout(), out.stderr()] {
        assert!(!text.contains(PASSWORD), "the password shows:\n{text}");
    }
}

#[test]
fn postgres_ready_at_once_with_the_password_from_pgpassword() {
    let pg = Postgres::shared();
    let db = pg.fresh_db();
    pg.sql(&db, "CREATE TABLE users (id int)");
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}?table=users", pg.port);
    let out = Cli::new()
        .env("PGPASSWORD", PASSWORD)
        .args(["wait", "--timeout", "20s", &url])
        .run()
        .code(0)
        .stdout_has(&format!("ready {url} after"));
    no_password(&out);
}

#[test]
fn postgres_with_a_wrong_password_times_out_with_124_saying_why() {
    let pg = Postgres::shared();
    let url = pg.url_with("postgres", &format!("{PASSWORD}-wrong"));
    for json in [false, true] {
        let mut args = vec!["wait", "--timeout", "1"];
        if json {
            args.push("--json");
        }
        args.push(&url);
        let out = Cli::new()
            .args(&args)
            .run()
            .code(124)
            .stderr_has(
                "(authentication failed: password authentication failed for user \"postgres\")",
            )
            .stderr_has(&format!(
                "postgres://postgres:***@127.0.0.1:{}/postgres",
                pg.port
            ));
        no_password(&out);
        if json {
            assert!(
                out.stdout().contains("\"event\":\"timeout\""),
                "{}",
                out.stdout()
            );
            assert!(
                out.stdout().contains("authentication failed"),
                "{}",
                out.stdout()
            );
        }
    }
}

#[test]
fn mysql_ready_once_the_table_is_created() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    let url = format!("{}?table=orders", my.url(&db));
    let child = Cli::new()
        .args(["wait", "--json", "--timeout", "30s", &url])
        .spawn();
    thread::sleep(Duration::from_millis(500));
    my.root_sql(&format!("CREATE TABLE {db}.orders (id int)"));
    let out = Outcome::of(child).code(0).stdout_has("\"event\":\"ready\"");
    no_password(&out);
}

/// A URL without a password takes it from `MYSQL_PWD`, as the mysql
/// client does; without the variable the same URL is refused by the
/// server.
#[test]
fn mysql_takes_the_password_from_mysql_pwd_when_the_url_has_none() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    let url = format!("mysql://app@127.0.0.1:{}/{db}", my.port);
    let out = Cli::new()
        .env("MYSQL_PWD", PASSWORD)
        .args(["wait", "--timeout", "20s", &url])
        .run()
        .code(0)
        .stdout_has(&format!("ready {url} after"));
    no_password(&out);
    let out = Cli::new()
        .env_remove("MYSQL_PWD")
        .args(["wait", "--timeout", "1s", &url])
        .run()
        .code(124)
        .stderr_has("Access denied for user 'app'");
    no_password(&out);
}

#[test]
fn mysql_never_ready_names_the_missing_table() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    let url = format!("{}?table=orders", my.url(&db));
    let out = Cli::new()
        .args(["wait", "--timeout", "1s", &url])
        .run()
        .code(124)
        .stderr_has("(table orders does not exist)");
    no_password(&out);
}

#[test]
fn redis_ready_once_the_key_is_set_and_never_ready_without_it() {
    let redis = Redis::shared();
    let url = format!("{}?key=jobs:ready", redis.url());
    let child = Cli::new().args(["wait", "--timeout", "30s", &url]).spawn();
    thread::sleep(Duration::from_millis(500));
    redis.cli(&["SET", "jobs:ready", "1"]);
    let out = Outcome::of(child).code(0);
    no_password(&out);

    let url = format!("{}?key=never", redis.url());
    let out = Cli::new()
        .args(["wait", "--timeout", "1s", &url])
        .run()
        .code(124)
        .stderr_has("(key \"never\" does not exist)");
    no_password(&out);
}

#[test]
fn bad_database_targets_exit_2_before_anything_runs() {
    for (target, why) in [
        ("postgres://db/app?table=users;drop", "is not a table name"),
        ("mysql://u:hunter22@db?table=orders", "needs a database"),
        ("redis://:hunter22@cache:0", "port 0"),
    ] {
        let out = Cli::new().args(["wait", target]).usage_error(why);
        assert!(!out.stderr().contains("hunter22"), "{}", out.stderr());
    }
}

/// `rebound wait rediss://...` against a TLS-only redis-server whose
/// certificate a test CA signed: trusted through `SSL_CERT_FILE` (the
/// redis crate loads the roots with rustls-native-certs, which reads it),
/// ready at once with the password, then once a key is set late.
#[test]
fn rediss_ready_with_the_password_and_once_the_key_is_set() {
    let redis = Redis::shared_tls();
    let ca = redis.ca_file.as_ref().expect("a TLS server");
    let url = redis.url();
    assert!(url.starts_with("rediss://:"), "{url}");
    let shown = format!("rediss://:***@localhost:{}/0", redis.port);
    let out = Cli::new()
        .env("SSL_CERT_FILE", ca)
        .args(["wait", "--timeout", "20s", &url])
        .run()
        .code(0)
        .stdout_has(&format!("ready {shown} after"));
    no_password(&out);

    let url = format!("{url}?key=tls:ready");
    let child = Cli::new()
        .env("SSL_CERT_FILE", ca)
        .args(["wait", "--json", "--timeout", "30s", &url])
        .spawn();
    thread::sleep(Duration::from_millis(500));
    redis.cli(&["SET", "tls:ready", "1"]);
    let out = Outcome::of(child).code(0).stdout_has("\"event\":\"ready\"");
    no_password(&out);
}

/// A certificate nothing trusts (`SSL_CERT_FILE` names a CA that did not
/// sign it; without the variable the system's roots do not know the test
/// CA either), or a host the certificate does not name: never ready, exit
/// 124 naming the TLS error.
#[test]
fn rediss_with_an_untrusted_certificate_times_out_with_124_naming_the_tls_error() {
    let redis = Redis::shared_tls();
    let other = tempfile::tempdir().expect("temp dir");
    let other_ca = other.path().join("other-ca.pem");
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    let key = rcgen::KeyPair::generate().expect("CA key");
    std::fs::write(&other_ca, params.self_signed(&key).expect("CA").pem()).expect("write CA");

    let url = redis.url();
    for ca in [Some(other_ca.as_path()), None] {
        let mut cli = Cli::new();
        if let Some(ca) = ca {
            cli = cli.env("SSL_CERT_FILE", ca);
        }
        let out = cli
            .args(["wait", "--timeout", "1s", &url])
            .run()
            .code(124)
            .stderr_has(&format!("rediss://:***@localhost:{}/0", redis.port))
            .stderr_has("(invalid peer certificate: UnknownIssuer)");
        no_password(&out);
    }

    // The CA is trusted, but the certificate names localhost and
    // 127.0.0.1, not 127.0.0.2 (where the server listens too).
    let ca = redis.ca_file.as_ref().expect("a TLS server");
    let wrong_host = format!("rediss://:{PASSWORD}@127.0.0.2:{}/0", redis.port);
    let out = Cli::new()
        .env("SSL_CERT_FILE", ca)
        .args(["wait", "--timeout", "1s", &wrong_host])
        .run()
        .code(124)
        .stderr_has("(invalid peer certificate: certificate not valid for name \"127.0.0.2\"");
    no_password(&out);
}
