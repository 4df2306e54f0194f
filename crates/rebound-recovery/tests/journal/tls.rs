//! PostgreSQL over TLS: a private cluster with `ssl = on`, a server
//! certificate from a test CA (rcgen) and `hostssl` only in `pg_hba.conf`
//! (plaintext over TCP is refused). The journal's `sslmode` and
//! `sslrootcert`, what each failure says, and that the password never
//! shows.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rebound_recovery::{
    FailureKind, FailureReport, Journal, JournalAddress, JournalError, JournalErrorKind, Outcome,
    PostgresJournal, RecoveryState,
};

use crate::support::pg::{Pg, TLS_PASSWORD, TLS_USER, TestCerts};
use crate::support::quick;

/// The TLS cluster of this binary, with its CA written to a file.
struct TlsPg {
    pg: Pg,
    ca_file: PathBuf,
    /// A CA that signed nothing the server holds.
    other_ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn tls_pg() -> &'static TlsPg {
    static PG: OnceLock<TlsPg> = OnceLock::new();
    PG.get_or_init(|| {
        let certs = TestCerts::generate("rebound journal test CA");
        let other = TestCerts::generate("another test CA");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, &certs.ca_pem).unwrap();
        std::fs::write(&other_ca_file, &other.ca_pem).unwrap();
        TlsPg {
            pg: Pg::start_tls(&certs),
            ca_file,
            other_ca_file,
            _dir: dir,
        }
    })
}

/// A fresh database on the TLS cluster; `(cluster, database name)`.
async fn fresh(prefix: &'static str) -> (&'static TlsPg, String) {
    tokio::task::spawn_blocking(move || {
        let t = tls_pg();
        let url = t.pg.fresh_db(prefix);
        let db = url.rsplit('/').next().unwrap().to_owned();
        (t, db)
    })
    .await
    .unwrap()
}

/// A URL to `db` as the password user, to `host`, with `query`.
fn url(t: &TlsPg, host: &str, db: &str, query: &str) -> String {
    format!(
        "postgres://{TLS_USER}:{TLS_PASSWORD}@{host}:{}/{db}?{query}",
        t.pg.port
    )
}

fn report(id: &str) -> FailureReport {
    FailureReport::new(
        id,
        format!("web-{id}"),
        "src",
        "t1",
        FailureKind::Timeout,
        "boom",
    )
}

/// The error's text, its debug form and every source's, checked to hold
/// no password.
fn no_password(err: &JournalError) -> String {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut all = Vec::new();
    while let Some(e) = next {
        all.push(format!("{e} / {e:?}"));
        next = e.source();
    }
    let all = all.join("\n");
    assert!(!all.contains(TLS_PASSWORD), "the password shows: {all}");
    err.to_string()
}

/// How many of `user`'s sessions on `db` use TLS, and how many do not.
fn sessions(t: &TlsPg, db: &str, user: &str) -> (u32, u32) {
    let out = t.pg.psql(
        &t.pg.socket_url("postgres"),
        &format!(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = '{db}' AND a.usename = '{user}'"
        ),
    );
    let (tls, plain) = out.split_once('|').expect("two counts");
    (tls.parse().unwrap(), plain.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_ca_records_claims_and_completes_over_tls() {
    let (t, db) = fresh("tls_full").await;
    for host in ["127.0.0.1", "localhost"] {
        let url = url(
            t,
            host,
            &db,
            &format!("sslmode=verify-full&sslrootcert={}", t.ca_file.display()),
        );
        let j = PostgresJournal::connect(&url, quick()).await.unwrap();
        let id = format!("m-{host}");
        j.record(report(&id), 0).await.unwrap();
        let claims = j
            .claim("w1", 10_000, Duration::from_secs(30), 1)
            .await
            .unwrap();
        assert_eq!(claims.len(), 1, "{claims:?}");
        let done = j
            .complete(&claims[0], Outcome::Migrated, 11_000)
            .await
            .unwrap();
        assert_eq!(done.state, RecoveryState::Succeeded);
        let shown = j.describe();
        assert!(shown.contains("sslmode=verify-full"), "{shown}");
        assert!(!shown.contains(TLS_PASSWORD), "{shown}");
        let db = db.clone();
        let (tls, plain) = tokio::task::spawn_blocking(move || sessions(tls_pg(), &db, TLS_USER))
            .await
            .unwrap();
        assert!(tls >= 1 && plain == 0, "TLS {tls}, plaintext {plain}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_wakes_a_listening_journal_over_tls() {
    let (t, db) = fresh("tls_listen").await;
    let url = url(
        t,
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", t.ca_file.display()),
    );
    let address: JournalAddress = url.parse().unwrap();
    let worker = rebound_recovery::AnyJournal::open(&address, quick())
        .await
        .unwrap();
    let _listener = worker.listen().await.unwrap().expect("a listener");
    let mut idle = worker.wake().unwrap().listen();
    let other = PostgresJournal::connect(&url, quick()).await.unwrap();
    other.record(report("m"), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), idle.wait())
        .await
        .expect("woken through LISTEN over TLS");
    // The LISTEN connection is one of the TLS sessions: none is plaintext.
    let listen = tokio::task::spawn_blocking(move || {
        let t = tls_pg();
        t.pg.psql(
            &t.pg.socket_url("postgres"),
            &format!(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.datname = '{db}' AND a.application_name = '{}'",
                rebound_recovery::journal::pg_listen::APPLICATION_NAME
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(listen, "t", "the LISTEN connection uses TLS");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_naming_the_problem() {
    let (t, db) = fresh("tls_wrong_ca").await;
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = url(
            t,
            "127.0.0.1",
            &db,
            &format!("sslmode={mode}&sslrootcert={}", t.other_ca_file.display()),
        );
        let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
        assert_eq!(err.kind(), JournalErrorKind::Unavailable, "{err}");
        let text = no_password(&err);
        assert!(text.contains("UnknownIssuer"), "{mode}: {text}");
        assert!(text.contains("not signed by a CA of sslrootcert"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{}", t.pg.port)), "{text}");
    }
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let (t, db) = fresh("tls_name").await;
    // Reached at 127.0.0.1, but named as a host the certificate does not
    // hold.
    let query = |mode: &str| {
        format!(
            "hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            t.ca_file.display()
        )
    };
    let wrong = url(t, "db.example.invalid", &db, &query("verify-full"));
    let err = PostgresJournal::connect(&wrong, quick()).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Unavailable, "{err}");
    let text = no_password(&err);
    assert!(
        text.contains("not valid for name \"db.example.invalid\""),
        "{text}"
    );
    assert!(
        text.contains("does not name the host connected to"),
        "{text}"
    );
    // verify-ca and require check the chain only: the same host is fine.
    for mode in ["verify-ca", "require"] {
        let url = url(t, "db.example.invalid", &db, &query(mode));
        let j = PostgresJournal::connect(&url, quick()).await.unwrap();
        j.record(report(mode), 0).await.unwrap();
    }
}

#[tokio::test]
async fn prefer_uses_tls_without_checking_the_certificate() {
    let (t, db) = fresh("tls_prefer").await;
    // The default: no sslrootcert, and the test CA is in no system store.
    let url = url(t, "127.0.0.1", &db, "application_name=prefer");
    let j = PostgresJournal::connect(&url, quick()).await.unwrap();
    j.record(report("m"), 0).await.unwrap();
}

#[tokio::test]
async fn sslmode_disable_against_a_tls_only_server_fails_clearly() {
    let (t, db) = fresh("tls_disable").await;
    let url = url(t, "127.0.0.1", &db, "sslmode=disable");
    let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Unavailable, "{err}");
    let text = no_password(&err);
    assert!(text.contains("no pg_hba.conf entry"), "{text}");
    assert!(text.contains("no encryption"), "{text}");
}

#[tokio::test]
async fn a_verifying_mode_against_a_server_without_tls_fails_clearly() {
    // This binary's other cluster has ssl = off.
    let plain = crate::support::fresh_db("tls_none").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, TestCerts::generate("unused CA").ca_pem).unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}&password={TLS_PASSWORD}",
        plain,
        ca.display()
    );
    let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Unavailable, "{err}");
    let text = no_password(&err);
    assert!(text.contains("server does not support TLS"), "{text}");
    assert!(text.contains("does not offer TLS"), "{text}");
}

#[tokio::test]
async fn bad_tls_parameters_are_invalid_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text, no certificate\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    // Nothing listens there: each is refused before any connection.
    let port = crate::support::free_port();
    let base = format!("postgres://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{port}/db");
    for (query, says, at_parse) in [
        (
            "sslmode=verify-everything",
            "sslmode=\"verify-everything\"",
            true,
        ),
        (
            "sslmode=allow",
            "allow, plaintext first, is not supported",
            true,
        ),
        (
            "sslmode=require&sslmode=disable",
            "sslmode is given twice",
            true,
        ),
        (
            "sslmode=disable&sslrootcert=/x.pem",
            "checks no certificate",
            true,
        ),
        (
            "sslcert=/c.pem&sslkey=/k.pem",
            "client certificates are not supported",
            true,
        ),
        ("sslrootcert=", "sslrootcert is empty", true),
        (
            &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
            "cannot be read",
            false,
        ),
        (
            &format!("sslmode=verify-ca&sslrootcert={}", not_pem.display()),
            "holds no certificate",
            false,
        ),
        (
            &format!("sslrootcert={}", broken.display()),
            "is not a PEM file",
            false,
        ),
    ] {
        let url = format!("{base}?{query}");
        let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
        assert_eq!(err.kind(), JournalErrorKind::Invalid, "{query}: {err}");
        let text = no_password(&err);
        assert!(text.contains(says), "{query}: {text}");
        assert!(text.contains(&format!("127.0.0.1:{port}/db")), "{text}");
        let parsed = url.parse::<JournalAddress>();
        if at_parse {
            let err = parsed.unwrap_err();
            assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
            assert!(no_password(&err).contains(says), "{query}: {err}");
        } else {
            // The file is read when the journal is opened.
            assert!(parsed.is_ok(), "{query}");
        }
    }
}

/// A connection an administrator ends is replaced over TLS too (the
/// cluster refuses plaintext, so the new one could not be anything else;
/// pg_stat_ssl says so as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_comes_back_over_tls() {
    let (t, db) = fresh("tls_reconnect").await;
    let url = url(
        t,
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", t.ca_file.display()),
    );
    let j = PostgresJournal::connect(&url, quick()).await.unwrap();
    j.record(report("before"), 0).await.unwrap();
    let terminated = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let t = tls_pg();
            t.pg.psql(
                &t.pg.socket_url("postgres"),
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{db}' AND usename = '{TLS_USER}'"
                ),
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(terminated, "1");
    // The call that finds the connection gone fails as Unavailable (unless
    // the driver noticed first); the next one connects again.
    if let Err(e) = j.list(None).await {
        assert_eq!(e.kind(), JournalErrorKind::Unavailable, "{e}");
        no_password(&e);
    }
    j.record(report("after"), 0).await.unwrap();
    assert_eq!(j.list(None).await.unwrap().len(), 2);
    let (tls, plain) = tokio::task::spawn_blocking(move || sessions(tls_pg(), &db, TLS_USER))
        .await
        .unwrap();
    assert_eq!((tls, plain), (1, 0));
}

/// A Unix socket never carries TLS: under the default `prefer` (and with
/// `disable`) the journal connects over it as before. The driver asks for
/// a TLS connector with no host name there, which must not fail.
#[tokio::test]
async fn a_unix_socket_journal_connects_without_tls() {
    let (t, db) = fresh("tls_socket").await;
    for query in ["", "&sslmode=disable", "&sslmode=prefer"] {
        let url = format!("{}{query}", t.pg.socket_url(&db));
        let j = PostgresJournal::connect(&url, quick()).await.unwrap();
        j.record(report(&format!("m{query}")), 0).await.unwrap();
    }
}
