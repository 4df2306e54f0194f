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
mod latency;

use std::time::Duration;

use db_support::{Mariadb, Postgres, Redis, fresh_name};
use latency::spec;
use mysql_async::prelude::Queryable;
use rebound_init::actions::ActionSpec;

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
    latency::measure(latency::attempt(action), after, maker.make_ready(name)).await
}

/// wait4x style on a Redis key: `EXISTS`, then sleep a fixed second.
async fn fixed_poller(url: String, key: String, set_after: u64) -> Duration {
    let client = redis::Client::open(url).expect("client");
    let poll = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut setter = poll.clone();
    let k = key.clone();
    let waiter = latency::every_second(move || {
        let (mut poll, k) = (poll.clone(), k.clone());
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&k)
                .query_async(&mut poll)
                .await
                .expect("exists");
            n > 0
        }
    });
    latency::measure(waiter, set_after, async {
        let () = redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .query_async(&mut setter)
            .await
            .expect("set");
    })
    .await
}

fn main() {
    let (runs, baseline_runs) = latency::counts();
    let pg = Postgres::shared();
    let pg_db = pg.fresh_db();
    let my = Mariadb::shared();
    let my_db = my.fresh_db();
    let redis_server = Redis::start();
    let rt = latency::runtime();
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

        latency::header();
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
            worst = worst.max(latency::row(label, v));
        }
        let fixed = latency::baseline(baseline_runs, |_| {
            fixed_poller(redis_server.url(), fresh_name("b"), fastrand::u64(1..1000))
        })
        .await;
        latency::row("fixed 1 s poller (wait4x default), Redis key", fixed);
        latency::goal(worst);
    });
}
