//! `init.wait_postgres`, `init.wait_mysql` and `init.wait_redis` through
//! the spec loader and against real servers (one of each per test binary,
//! started in a temp dir on a free loopback port, with a password): ready
//! at once, ready late (a table created, a key set, the server started),
//! never ready (the last reason in the timeout message), the password in no
//! message, and bad parameters refused at file:line:column.

mod common;
mod db_support;

use std::time::Duration;

use common::steps::{action, ctx, refused};
use db_support::{Mariadb, PASSWORD, Postgres, Redis, free_port};
use rebound_init::actions::{ActionError, ActionSpec};

/// Runs `a` until it fails (it must), checking that the password shows in
/// neither the error, the last problem nor the description.
async fn never_ready(a: &ActionSpec) -> ActionError {
    let ctx = ctx();
    let err = a.attempt(&ctx).await.expect_err("never ready");
    assert!(err.is_timeout(), "{err}");
    let last = ctx.last_problem.get().unwrap_or_default();
    for text in [err.message(), &last, &a.describe(), &format!("{a:?}")] {
        assert!(!text.contains(PASSWORD), "the password shows: {text}");
        assert!(!text.contains("Hunter2"), "the password shows: {text}");
    }
    err
}

/// Starts `a` in the background, checks it is still waiting after 300 ms,
/// runs `make_ready`, and expects `a` to finish ready.
async fn ready_late(a: ActionSpec, make_ready: impl FnOnce()) {
    let waiter = tokio::spawn(async move { a.attempt(&ctx()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "ready before the dependency was");
    make_ready();
    tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("ready within 20 s")
        .unwrap()
        .unwrap();
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

// ---- parameters --------------------------------------------------------

#[test]
fn bad_parameters_are_refused_at_their_position() {
    assert_eq!(
        refused(
            "init.wait_postgres",
            "{ url: 'postgres://db/app', table: 'users; drop' }"
        ),
        "spec.yaml:5:48: init.steps[0].with.table: `table` \"users; drop\" is not a table name: NAME or SCHEMA.NAME, each a letter or _ then letters, digits, _ or $"
    );
    let err = refused(
        "init.wait_postgres",
        "{ url: 'postgres://u:hunter22@/app' }",
    );
    assert!(
        err.starts_with("spec.yaml:5:20: init.steps[0].with.url: "),
        "{err}"
    );
    assert!(!err.contains("hunter22"), "{err}");
    let err = refused(
        "init.wait_postgres",
        "{ url: 'postgres://db/app?sslmode=require' }",
    );
    assert!(err.contains("plaintext only"), "{err}");
    let err = refused(
        "init.wait_mysql",
        "{ url: 'mysql://db/shop', table: a.b.c }",
    );
    assert!(
        err.starts_with("spec.yaml:5:46: init.steps[0].with.table: "),
        "{err}"
    );
    let err = refused("init.wait_mysql", "{ url: 'tcp://db:3306' }");
    assert!(err.contains("must start with mysql://"), "{err}");
    // A check across fields: reported at the step.
    let err = refused("init.wait_mysql", "{ url: 'mysql://db', table: orders }");
    assert!(err.starts_with("spec.yaml:3:7: init.steps[0]: "), "{err}");
    assert!(err.contains("needs a database"), "{err}");
    let err = refused("init.wait_redis", "{ url: 'redis://cache', key: '' }");
    assert!(
        err.starts_with("spec.yaml:5:42: init.steps[0].with.key: "),
        "{err}"
    );
    let err = refused("init.wait_redis", "{ url: 'redis://cache', table: t }");
    assert!(err.contains("unknown field `table`"), "{err}");
    let err = refused("init.wait_redis", "{ url: 'redis://:hunter22@cache:0' }");
    assert!(err.contains("port 0"), "{err}");
    assert!(!err.contains("hunter22"), "{err}");
}

// ---- PostgreSQL --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ready_at_once() {
    let pg = Postgres::shared();
    let db = pg.fresh_db();
    pg.sql(&db, "CREATE TABLE users (id int)");
    for with in [
        format!("{{ url: {}, timeout: 20s }}", quoted(&pg.url(&db))),
        format!(
            "{{ url: {}, table: users, timeout: 20s }}",
            quoted(&pg.url(&db))
        ),
        format!(
            "{{ url: {}, table: public.users, timeout: 20s }}",
            quoted(&pg.url(&db))
        ),
    ] {
        action("init.wait_postgres", &with)
            .attempt(&ctx())
            .await
            .unwrap_or_else(|e| panic!("{with}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ready_once_the_table_is_created() {
    let pg = Postgres::shared();
    let db = pg.fresh_db();
    let a = action(
        "init.wait_postgres",
        &format!("{{ url: {}, table: app.migrations }}", quoted(&pg.url(&db))),
    );
    ready_late(a, || {
        pg.sql(
            &db,
            "CREATE SCHEMA app; CREATE TABLE app.migrations (v int)",
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_ready_says_why() {
    let pg = Postgres::shared();
    let db = pg.fresh_db();
    let a = action(
        "init.wait_postgres",
        &format!(
            "{{ url: {}, table: missing, timeout: 1s }}",
            quoted(&pg.url(&db))
        ),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message()
            .ends_with("table missing not ready after 1s (table missing does not exist)"),
        "{err}"
    );
    let a = action(
        "init.wait_postgres",
        &format!(
            "{{ url: {}, timeout: 1s }}",
            quoted(&pg.url_with(&db, "wrong"))
        ),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message().ends_with(
            "(authentication failed: password authentication failed for user \"postgres\")"
        ),
        "{err}"
    );
    let a = action(
        "init.wait_postgres",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&pg.url("no_such_db"))),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message()
            .ends_with("(database \"no_such_db\" does not exist)"),
        "{err}"
    );
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/x", free_port());
    let a = action(
        "init.wait_postgres",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&url)),
    );
    let err = never_ready(&a).await;
    assert!(err.message().ends_with("(connection refused)"), "{err}");
    assert!(err.message().contains(":***@127.0.0.1"), "{err}");
}

// ---- MySQL / MariaDB ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_ready_at_once() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    my.root_sql(&format!("CREATE TABLE {db}.orders (id int)"));
    for with in [
        format!("{{ url: {}, timeout: 20s }}", quoted(&my.url(&db))),
        format!(
            "{{ url: {}, table: orders, timeout: 20s }}",
            quoted(&my.url(&db))
        ),
        format!(
            "{{ url: {}, table: {db}.orders, timeout: 20s }}",
            quoted(&my.url(""))
        ),
    ] {
        action("init.wait_mysql", &with)
            .attempt(&ctx())
            .await
            .unwrap_or_else(|e| panic!("{with}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_ready_once_the_table_is_created() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    let a = action(
        "init.wait_mysql",
        &format!("{{ url: {}, table: orders }}", quoted(&my.url(&db))),
    );
    ready_late(a, || {
        my.root_sql(&format!("CREATE TABLE {db}.orders (id int)"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_never_ready_says_why() {
    let my = Mariadb::shared();
    let db = my.fresh_db();
    let a = action(
        "init.wait_mysql",
        &format!(
            "{{ url: {}, table: orders, timeout: 1s }}",
            quoted(&my.url(&db))
        ),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message().ends_with("(table orders does not exist)"),
        "{err}"
    );
    let a = action(
        "init.wait_mysql",
        &format!(
            "{{ url: {}, timeout: 1s }}",
            quoted(&my.url_with(&db, "wrong"))
        ),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message()
            .contains("(authentication failed: Access denied for user 'app'"),
        "{err}"
    );
    let url = format!("mysql://app:{PASSWORD}@127.0.0.1:{}/x", free_port());
    let a = action(
        "init.wait_mysql",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&url)),
    );
    let err = never_ready(&a).await;
    assert!(err.message().ends_with("(connection refused)"), "{err}");
}

// ---- Redis -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ready_at_once() {
    let redis = Redis::shared();
    redis.cli(&["SET", "ready-now", "1"]);
    for with in [
        format!("{{ url: {}, timeout: 20s }}", quoted(&redis.url())),
        format!(
            "{{ url: {}, key: ready-now, timeout: 20s }}",
            quoted(&redis.url())
        ),
    ] {
        action("init.wait_redis", &with)
            .attempt(&ctx())
            .await
            .unwrap_or_else(|e| panic!("{with}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ready_once_the_key_is_set() {
    let redis = Redis::shared();
    let a = action(
        "init.wait_redis",
        &format!("{{ url: {}, key: 'cache:warm' }}", quoted(&redis.url())),
    );
    ready_late(a, || {
        redis.cli(&["SET", "cache:warm", "yes"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ready_once_the_server_starts() {
    let port = free_port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let a = action("init.wait_redis", &format!("{{ url: {} }}", quoted(&url)));
    let mut server = None;
    ready_late(a, || server = Some(Redis::start_on(Some(port)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_ready_says_why() {
    let redis = Redis::shared();
    let a = action(
        "init.wait_redis",
        &format!(
            "{{ url: {}, key: never, timeout: 1s }}",
            quoted(&redis.url())
        ),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message()
            .ends_with("key \"never\" not ready after 1s (key \"never\" does not exist)"),
        "{err}"
    );
    let a = action(
        "init.wait_redis",
        &format!(
            "{{ url: {}, timeout: 1s }}",
            quoted(&redis.url_with("wrong"))
        ),
    );
    let err = never_ready(&a).await;
    assert!(err.message().contains("(authentication failed"), "{err}");
    // No password at all: the server asks for one.
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let a = action(
        "init.wait_redis",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&url)),
    );
    let err = never_ready(&a).await;
    assert!(err.message().contains("(authentication failed"), "{err}");
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", free_port());
    let a = action(
        "init.wait_redis",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&url)),
    );
    let err = never_ready(&a).await;
    assert!(err.message().ends_with("(connection refused)"), "{err}");
}

/// `rediss://` to a TLS-only server whose certificate a fresh test CA
/// signed: the system's roots (this process sets no `SSL_CERT_FILE`) do
/// not trust it, so the wait times out naming the TLS error, the password
/// nowhere. (The trusted case, with `SSL_CERT_FILE` in a child's
/// environment, is in the `rebound` binary's `wait_db` tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_an_untrusted_certificate_says_why() {
    let redis = Redis::start_tls();
    assert!(redis.url().starts_with("rediss://"), "{}", redis.url());
    let a = action(
        "init.wait_redis",
        &format!("{{ url: {}, timeout: 1s }}", quoted(&redis.url())),
    );
    let err = never_ready(&a).await;
    assert!(
        err.message().ends_with(&format!(
            "rediss://:***@localhost:{}/0 not ready after 1s (invalid peer certificate: UnknownIssuer)",
            redis.port
        )),
        "{err}"
    );
}
