//! Detection latency of the database and cache waits: how long after a
//! table is created (`init.wait_postgres`, `init.wait_mysql` with `table`)
//! or a key is set (`init.wait_redis` with `key`) does the waiting action
//! notice? Measured as benches/waits.rs measures the other waits, against
//! a fixed 1 s poller (wait4x's default) in the same run.
//!
//! One PostgreSQL, one MariaDB and one Redis server are started for the
//! run (tests/db_support). Each run: the action starts while the table or
//! key is missing (it logs in and polls); after a random 5-50 ms the bench
//! creates the table (or sets the key) through its own connection, and
//! takes the instant the server acknowledged it as "ready"; the latency is
//! the time from then until the action's future completes.
//!
//! `cargo bench -p rebound-init --bench db_waits` (`-- RUNS BASELINE_RUNS`:
//! default 100 and 50).

#[path = "../tests/db_support/mod.rs"]
mod db_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_support::{Mariadb, Postgres, Redis, fresh_name};
use mysql_async::prelude::Queryable;
use rebound_init::actions::{ActionContext, ActionSpec};

fn spec(uses: &str, with: serde_json::Value) -> ActionSpec {
    ActionSpec::deserialize_params(uses, with).expect("bench parameters")
}

/// How the bench makes a dependency ready, through its own connection.
enum Maker {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
    Redis(redis::aio::MultiplexedConnection),
}

impl Maker {
    /// Creates table (or sets key) `name`; returns once the server said so.
    async fn make_ready(&mut self, name: &str) {
        match self {
            Maker::Postgres(c) => {
                c.simple_query(&format!("CREATE TABLE {name} (id int)"))
                    .await
                    .expect("create table");
            }
            Maker::Mysql(c) => {
                c.query_drop(format!("CREATE TABLE {name} (id int)"))
                    .await
                    .expect("create table");
            }
            Maker::Redis(c) => {
                let () = redis::cmd("SET")
                    .arg(name)
                    .arg("1")
                    .query_async(c)
                    .await
                    .expect("set key");
            }
        }
    }
}

/// One measurement: `action` waits for `name`, made ready after `after`
/// ms; returns ready -> success.
async fn measure(action: ActionSpec, maker: &mut Maker, name: &str, after: u64) -> Duration {
    let task = tokio::spawn(async move {
        let ctx = ActionContext::new("bench", Arc::new(|_, _, _| {}));
        action.attempt(&ctx).await.expect("wait");
        Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(after)).await;
    maker.make_ready(name).await;
    let ready = Instant::now();
    let done = task.await.expect("waiter");
    done.saturating_duration_since(ready)
}

/// wait4x style on a Redis key: `EXISTS`, then sleep a fixed second.
async fn fixed_poller(url: String, key: String, set_after: u64) -> Duration {
    let client = redis::Client::open(url).expect("client");
    let mut poll = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut setter = poll.clone();
    let k = key.clone();
    let task = tokio::spawn(async move {
        loop {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&k)
                .query_async(&mut poll)
                .await
                .expect("exists");
            if n > 0 {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(set_after)).await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .query_async(&mut setter)
        .await
        .expect("set");
    let ready = Instant::now();
    let done = task.await.expect("poller");
    done.saturating_duration_since(ready)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let p50 = percentile(&v, 50.0);
    println!(
        "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        v.len(),
        ms(p50),
        ms(percentile(&v, 90.0)),
        ms(percentile(&v, 99.0)),
        ms(*v.last().expect("a run"))
    );
    p50
}

fn main() {
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(100);
    let baseline_runs = numbers.get(1).copied().unwrap_or(50);
    let pg = Postgres::shared();
    let pg_db = pg.fresh_db();
    let my = Mariadb::shared();
    let my_db = my.fresh_db();
    let redis_server = Redis::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = pg
            .url(&pg_db)
            .parse::<tokio_postgres::Config>()
            .expect("config")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(conn);
        let mut pg_maker = Maker::Postgres(client);
        let my_conn = mysql_async::Conn::new(
            mysql_async::Opts::from_url(&my.url(&my_db)).expect("mysql URL"),
        )
        .await
        .expect("connect to MariaDB");
        let mut my_maker = Maker::Mysql(my_conn);
        let redis_conn = redis::Client::open(redis_server.url())
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        let mut redis_maker = Maker::Redis(redis_conn);

        println!("| wait | runs | p50 | p90 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut worst = Duration::ZERO;
        for kind in ["postgres", "mysql", "redis"] {
            let mut v = Vec::with_capacity(runs);
            for _ in 0..runs {
                let name = fresh_name("t");
                let (action, maker) = match kind {
                    "postgres" => (
                        spec(
                            "init.wait_postgres",
                            serde_json::json!({ "url": pg.url(&pg_db), "table": name }),
                        ),
                        &mut pg_maker,
                    ),
                    "mysql" => (
                        spec(
                            "init.wait_mysql",
                            serde_json::json!({ "url": my.url(&my_db), "table": name }),
                        ),
                        &mut my_maker,
                    ),
                    _ => (
                        spec(
                            "init.wait_redis",
                            serde_json::json!({ "url": redis_server.url(), "key": name }),
                        ),
                        &mut redis_maker,
                    ),
                };
                v.push(measure(action, maker, &name, fastrand::u64(5..50)).await);
            }
            let label = match kind {
                "postgres" => "init.wait_postgres table (CREATE TABLE)",
                "mysql" => "init.wait_mysql table, MariaDB (CREATE TABLE)",
                _ => "init.wait_redis key (SET)",
            };
            worst = worst.max(row(label, v));
        }
        let mut fixed = Vec::with_capacity(baseline_runs);
        while fixed.len() < baseline_runs {
            let batch = (baseline_runs - fixed.len()).min(25);
            let tasks: Vec<_> = (0..batch)
                .map(|_| {
                    tokio::spawn(fixed_poller(
                        redis_server.url(),
                        fresh_name("b"),
                        fastrand::u64(1..1000),
                    ))
                })
                .collect();
            for t in tasks {
                fixed.push(t.await.expect("baseline"));
            }
        }
        row("fixed 1 s poller (wait4x default), Redis key", fixed);
        println!(
            "\ngoal p50 <= 10 ms for every wait: {} (worst p50 {:.2} ms)",
            if worst <= Duration::from_millis(10) {
                "met"
            } else {
                "MISSED"
            },
            ms(worst)
        );
    });
}
