//! Wake-ups without polling: the earliest due time on every backend, a
//! record through the same handle waking an idle worker, a worker woken by
//! a recovery's due time, and other connections' changes arriving through
//! LISTEN (PostgreSQL, also after its connection was terminated) and the
//! file watch (SQLite). Every worker here polls once an hour: only a
//! wake-up can make it run within the seconds the tests allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rebound_recovery::journal::pg_listen::APPLICATION_NAME;
use rebound_recovery::{
    AnyJournal, Clock, FailureKind, FailureReport, Journal, JournalAddress, RecoveryConfig,
    RecoveryState, RecoveryWorker,
};

use crate::support::{Backend, Counter, fresh_db, pg};

const HOUR: Duration = Duration::from_secs(3600);

fn config(initial_delay: Duration) -> RecoveryConfig {
    RecoveryConfig {
        initial_delay,
        jitter: rebound_retry::Jitter::None,
        ..RecoveryConfig::default()
    }
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

macro_rules! wake_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            wake_suite!(@cases $open;
                next_due_after_is_the_earliest_delay_or_lease_end,
                a_record_through_the_handle_wakes_an_idle_worker,
                a_recovery_whose_delay_ends_wakes_its_worker
            );
        }
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($open).await;
            }
        )*
    };
}

wake_suite!(memory, crate::support::Backend::Memory);
wake_suite!(sqlite_file, crate::support::Backend::Sqlite);
wake_suite!(postgresql, crate::support::Backend::Postgres);

async fn next_due_after_is_the_earliest_delay_or_lease_end(backend: Backend) {
    let j = backend.open(config(Duration::from_secs(10))).await;
    assert_eq!(j.next_due_after(0).await.unwrap(), None);
    j.record(report("a"), 1_000).await.unwrap(); // due 11_000
    j.record(report("b"), 5_000).await.unwrap(); // due 15_000
    j.record(report("c"), 3_000).await.unwrap(); // due 13_000
    assert_eq!(j.next_due_after(0).await.unwrap(), Some(11_000));
    // Due times at or before now are not "next": a claim already saw them.
    assert_eq!(j.next_due_after(11_000).await.unwrap(), Some(13_000));
    assert_eq!(j.next_due_after(15_000).await.unwrap(), None);
    // A claimed one is due again when its lease runs out.
    let claims = j
        .claim("w", 11_000, Duration::from_secs(60), 1)
        .await
        .unwrap();
    assert_eq!(claims[0].recovery.migration, "a");
    assert_eq!(j.next_due_after(14_000).await.unwrap(), Some(15_000));
    assert_eq!(j.next_due_after(15_000).await.unwrap(), Some(71_000));
    // A finished one never is.
    j.cancel("a", "done with it", 12_000).await.unwrap();
    assert_eq!(j.next_due_after(15_000).await.unwrap(), None);
}

/// Runs a worker that polls once an hour over `journal` while `act` runs,
/// until recovery `id` has succeeded; fails after `within`.
async fn run_until(
    journal: &AnyJournal,
    counter: &Counter,
    within: Duration,
    act: impl std::future::Future<Output = ()>,
    id: &str,
) {
    let worker = RecoveryWorker::new(journal, counter.clone(), counter.clone())
        .with_owner("idle")
        .with_poll_interval(HOUR);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watch = async {
        act.await;
        let start = Instant::now();
        loop {
            let state = journal.get(id).await.unwrap().map(|r| r.state);
            if state == Some(RecoveryState::Succeeded) {
                break;
            }
            assert!(
                start.elapsed() < within,
                "the idle worker was not woken within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(
        worker.run(async {
            stopped.await.unwrap();
        }),
        watch
    );
    report.unwrap();
}

fn ran(counter: &Counter, id: &str) -> bool {
    counter.0.lock().unwrap().contains_key(id)
}

async fn a_record_through_the_handle_wakes_an_idle_worker(backend: Backend) {
    let j = backend.open(config(Duration::from_millis(1))).await;
    let journal: &AnyJournal = &j;
    let counter = Counter::default();
    let act = async {
        // The worker has claimed nothing and gone idle by now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rebound_recovery::SystemClock.now_ms();
        journal.record(report("m"), now).await.unwrap();
    };
    run_until(journal, &counter, Duration::from_secs(3), act, "m").await;
    assert!(ran(&counter, "m"));
    let rec = j.get("m").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Succeeded);
}

async fn a_recovery_whose_delay_ends_wakes_its_worker(backend: Backend) {
    let j = backend.open(config(Duration::from_millis(400))).await;
    let journal: &AnyJournal = &j;
    let counter = Counter::default();
    let recorded = Instant::now();
    let now = rebound_recovery::SystemClock.now_ms();
    // Recorded before the worker starts: no signal wakes it, only the
    // due time it reads when it goes idle.
    journal.record(report("m"), now).await.unwrap();
    run_until(journal, &counter, Duration::from_secs(4), async {}, "m").await;
    assert!(ran(&counter, "m"));
    let took = recorded.elapsed();
    assert!(took >= Duration::from_millis(400), "ran early: {took:?}");
    let rec = j.get("m").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Succeeded);
}

/// A clock that reads tokio's (virtual, when paused) time.
#[derive(Clone)]
struct TokioClock {
    start: tokio::time::Instant,
    base_ms: u64,
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base_ms + u64::try_from(self.start.elapsed().as_millis()).unwrap()
    }
}

/// In virtual time: a worker polling once an hour runs a recovery at the
/// moment its 7 s delay ends, and a retry 20 s after that, not an hour
/// later.
#[tokio::test(start_paused = true)]
async fn in_virtual_time_the_worker_wakes_at_each_due_time() {
    let journal = rebound_recovery::MemoryJournal::new(config(Duration::from_secs(7))).unwrap();
    let clock = TokioClock {
        start: tokio::time::Instant::now(),
        base_ms: 1_000_000,
    };
    journal.record(report("m"), clock.now_ms()).await.unwrap();
    let started = tokio::time::Instant::now();
    let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fails = Arc::new(std::sync::atomic::AtomicBool::new(true));
    struct Timed {
        runs: Arc<std::sync::Mutex<Vec<Duration>>>,
        started: tokio::time::Instant,
        fails: Arc<std::sync::atomic::AtomicBool>,
    }
    impl rebound_recovery::Migrator for &Timed {
        type Error = std::io::Error;
        async fn migrate(&self, _: &rebound_recovery::Job) -> std::io::Result<()> {
            self.runs.lock().unwrap().push(self.started.elapsed());
            if self.fails.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
            }
            Ok(())
        }
    }
    impl rebound_recovery::RollbackHandler for &Timed {
        type Error = std::io::Error;
        async fn rollback(&self, _: &rebound_recovery::Job) -> std::io::Result<()> {
            Ok(())
        }
    }
    let timed = Timed {
        runs: runs.clone(),
        started,
        fails,
    };
    let worker = RecoveryWorker::new(&journal, &timed, &timed)
        .with_clock(clock.clone())
        .with_poll_interval(HOUR);
    let report = worker
        .run(async {
            while journal.get("m").await.unwrap().unwrap().state != RecoveryState::Succeeded {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    assert_eq!((report.retrying, report.succeeded), (1, 1));
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    // 7 s, then the second retry delay (2 x 7 s = 14 s) later; the worker
    // wakes a millisecond after each due time.
    assert!(
        runs[0] >= Duration::from_secs(7) && runs[0] < Duration::from_millis(7_010),
        "{runs:?}"
    );
    let gap = runs[1] - runs[0];
    assert!(
        gap >= Duration::from_secs(14) && gap < Duration::from_millis(14_010),
        "{runs:?}"
    );
}

/// A record on another connection reaches a handle that listens: through
/// the file watch (SQLite) or LISTEN (PostgreSQL).
async fn another_connection_wakes(address: JournalAddress) {
    let worker = AnyJournal::open(&address, config(Duration::from_millis(1)))
        .await
        .unwrap();
    let _listener = worker.listen().await.unwrap().expect("a listener");
    let mut idle = worker.wake().unwrap().listen();
    let other = AnyJournal::open(&address, config(Duration::from_millis(1)))
        .await
        .unwrap();
    other.record(report("m"), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), idle.wait())
        .await
        .expect("woken by the other connection's record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_on_another_sqlite_connection_wakes_through_the_file_watch() {
    let dir = tempfile::tempdir().unwrap();
    another_connection_wakes(JournalAddress::Sqlite(dir.path().join("j.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_on_another_postgres_connection_wakes_through_listen() {
    let url = fresh_db("wake").await;
    another_connection_wakes(JournalAddress::Postgres(url)).await;
}

/// The pids of the LISTEN connections to `url`'s database.
async fn listeners(url: &str) -> Vec<String> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        pg::Pg::shared()
            .psql(
                &url,
                &format!(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = \
                     '{APPLICATION_NAME}' AND datname = current_database()"
                ),
            )
            .lines()
            .map(str::to_owned)
            .collect()
    })
    .await
    .unwrap()
}

/// The LISTEN connection terminated by an administrator: the listener
/// connects again (with backoff) and a record made after it is back wakes
/// the handle; one made while it was away wakes it too, when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listen_connection_reconnects_and_loses_nothing() {
    let url = fresh_db("relisten").await;
    let address = JournalAddress::Postgres(url.clone());
    let worker = AnyJournal::open(&address, config(Duration::from_millis(1)))
        .await
        .unwrap();
    let _listener = worker.listen().await.unwrap().expect("a listener");
    let before = listeners(&url).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let other = AnyJournal::open(&address, config(Duration::from_millis(1)))
        .await
        .unwrap();
    let mut idle = worker.wake().unwrap().listen();
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        pg::Pg::shared().psql(
            &u,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()"
            ),
        )
    })
    .await
    .unwrap();
    // Recorded while the listener may be away.
    other.record(report("while-away"), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), idle.wait())
        .await
        .expect("woken once the listener is back");
    // Back on a new connection.
    let start = Instant::now();
    loop {
        let now = listeners(&url).await;
        if now.len() == 1 && now != before {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    idle.mark_seen();
    other.record(report("after"), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), idle.wait())
        .await
        .expect("woken through the new LISTEN connection");
}

/// A clock that moves one millisecond each time it is read.
#[derive(Clone)]
struct TickingClock(Arc<std::sync::atomic::AtomicU64>);

impl Clock for TickingClock {
    fn now_ms(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

/// A recovery that becomes due in the millisecond between a claim that
/// found nothing and the worker's look for the next due time is still
/// waited for: the look starts from the claim's time. (It used to start
/// from the clock's next reading, missed the recovery, and waited the
/// whole poll interval: an hour here.)
#[tokio::test(start_paused = true)]
async fn a_recovery_due_between_the_claim_and_the_look_is_not_left_to_the_poll() {
    let journal = rebound_recovery::MemoryJournal::new(config(Duration::from_millis(1))).unwrap();
    // Due at 1_001; the worker's claim reads 1_000, its look 1_001.
    journal.record(report("m"), 1_000).await.unwrap();
    let clock = TickingClock(Arc::new(std::sync::atomic::AtomicU64::new(1_000)));
    let counter = Counter::default();
    let worker = RecoveryWorker::new(&journal, counter.clone(), counter)
        .with_clock(clock)
        .with_poll_interval(HOUR);
    let started = tokio::time::Instant::now();
    worker
        .run(async {
            while journal.get("m").await.unwrap().unwrap().state != RecoveryState::Succeeded {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "ran after {took:?}");
}
