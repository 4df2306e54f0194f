//! Losing the database: a PostgreSQL journal whose connection an
//! administrator ended answers the next call on a new one (and a change
//! that was in flight is gone, not half-applied); a worker rides out its
//! connection ended mid-run and a server stopped for a while, without
//! spinning; and, in virtual time, the worker's backoff schedule while the
//! journal is unavailable, and an outcome recorded once it is back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rebound_recovery::journal::Wake;
use rebound_recovery::model::{Admission, Attempt, Outcome, Recovery, TargetBreaker};
use rebound_recovery::worker::JournalOutage;
use rebound_recovery::{
    AnyJournal, AttemptResult, Claim, FailureKind, FailureReport, Job, Journal, JournalAddress,
    JournalError, JournalErrorKind, MemoryJournal, Migrator, PostgresJournal, RecoveryConfig,
    RecoveryState, RecoveryWorker, RollbackHandler, SystemClock,
};
use rebound_recovery::{Clock, journal::pg_listen::APPLICATION_NAME};

use crate::support::{Counter, fresh_db, pg, quick};

const HOUR: Duration = Duration::from_secs(3600);

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

/// Runs `sql` through psql on the shared cluster.
async fn psql(url: &str, sql: String) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || pg::Pg::shared().psql(&url, &sql))
        .await
        .unwrap()
}

/// Ends the backends of `url`'s database whose `application_name` is
/// `app` (as an administrator's `pg_terminate_backend`), and waits until
/// they are gone.
async fn terminate(url: &str, app: &str) {
    let ended = psql(
        url,
        format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{app}' AND datname = current_database()"
        ),
    )
    .await;
    assert_eq!(ended, "1", "one {app} backend to end");
    let start = Instant::now();
    while psql(
        url,
        format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
             AND datname = current_database()"
        ),
    )
    .await
        != "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{app} still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A change waiting for a row lock when its connection is ended: the call
/// says the journal is unavailable, nothing of the change is kept (the
/// server rolled its transaction back), and the next call answers on a new
/// connection, with its statements prepared again. (Before, the journal
/// kept its dead connection and every later call failed; and the ended
/// backend's 57P01 was a `Database` error.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_connection_is_replaced_and_the_change_in_flight_is_gone() {
    let url = fresh_db("reconnect").await;
    let app = "journal-under-test";
    let journal = Arc::new(
        PostgresJournal::connect(&format!("{url}?application_name={app}"), quick())
            .await
            .unwrap(),
    );
    journal.record(report("m"), 1_000).await.unwrap();
    let history = journal.history("m").await.unwrap().len();

    // Another session holds the recovery's row: the journal's cancel
    // waits inside its transaction.
    let (blocker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    blocker
        .batch_execute("BEGIN; SELECT 1 FROM recoveries WHERE migration = 'm' FOR UPDATE")
        .await
        .unwrap();
    let cancel = tokio::spawn({
        let journal = Arc::clone(&journal);
        async move { journal.cancel("m", "not needed", 2_000).await }
    });
    let start = Instant::now();
    while psql(
        &url,
        format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
             AND wait_event_type = 'Lock'"
        ),
    )
    .await
        != "1"
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cancel never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(&url, app).await;
    let err = cancel.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Unavailable, "{err}");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    // The next call answers, on a new connection; the cancel left nothing.
    let rec = journal.get("m").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Pending);
    assert_eq!(journal.history("m").await.unwrap().len(), history);
    // Changes go through again, with the statements prepared anew.
    let rec = journal.cancel("m", "not needed", 3_000).await.unwrap();
    assert_eq!(rec.state, RecoveryState::Cancelled);
    assert_eq!(journal.history("m").await.unwrap().len(), history + 1);
    journal.record(report("n"), 4_000).await.unwrap();
    let claims = journal
        .claim("w", 10_000, Duration::from_secs(30), 1)
        .await
        .unwrap();
    assert_eq!(claims[0].recovery.migration, "n");
    let done = journal
        .complete(&claims[0], Outcome::Migrated, 10_001)
        .await
        .unwrap();
    assert_eq!(done.state, RecoveryState::Succeeded);
}

/// The outages a worker reported, as text.
#[derive(Clone, Default)]
struct Outages(Arc<Mutex<Vec<String>>>);

impl Outages {
    fn on(&self) -> impl Fn(&JournalOutage<'_>) + Send + Sync + 'static {
        let seen = self.0.clone();
        move |outage| {
            let line = match outage {
                JournalOutage::Unavailable { retry_in, .. } => {
                    format!("unavailable {}", retry_in.as_micros())
                }
                JournalOutage::Back { .. } => "back".to_owned(),
                _ => "other".to_owned(),
            };
            seen.lock().unwrap().push(line);
        }
    }
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn unavailable(&self) -> usize {
        self.list()
            .iter()
            .filter(|l| l.starts_with("unavailable"))
            .count()
    }
}

/// The migrations a worker recorded an outcome for (its `with_notify`).
#[derive(Clone, Default)]
struct Done(Arc<Mutex<Vec<String>>>);

impl Done {
    fn on(&self) -> impl Fn(&Claim, &Recovery) + Send + Sync + 'static {
        let done = self.0.clone();
        move |claim, _| done.lock().unwrap().push(claim.recovery.migration.clone())
    }
    fn has(&self, id: &str) -> bool {
        self.0.lock().unwrap().iter().any(|d| d == id)
    }
}

/// Runs `worker` while `act` runs, then until `id` has succeeded and the
/// worker has counted it (within `within`), then stops it; the worker's
/// report.
async fn run_while<M, R, C>(
    worker: &RecoveryWorker<&AnyJournal, M, R, C>,
    done: &Done,
    watch: &AnyJournal,
    act: impl std::future::Future<Output = ()>,
    id: &str,
    within: Duration,
) -> rebound_recovery::WorkerReport
where
    M: Migrator,
    R: RollbackHandler,
    C: rebound_recovery::FailureClassifier<M::Error>,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = async {
        act.await;
        let start = Instant::now();
        loop {
            let state = watch.get(id).await.unwrap().map(|r| r.state);
            if state == Some(RecoveryState::Succeeded) && done.has(id) {
                break;
            }
            assert!(
                start.elapsed() < within,
                "{id} did not succeed within {within:?} (state {state:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(
        worker.run(async {
            let _ = stopped.await;
        }),
        watching
    );
    report.expect("run keeps running through the outage")
}

/// A worker polling once an hour, its connection ended mid-run: it keeps
/// running, and a recovery recorded afterwards on another connection
/// (heard through LISTEN) is claimed and completed over a new connection.
/// (Before, its claim failed on the dead connection and `run` ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_is_terminated_keeps_running() {
    let url = fresh_db("reworker").await;
    let app = "worker-under-test";
    let journal = AnyJournal::open(
        &JournalAddress::Postgres(format!("{url}?application_name={app}")),
        quick(),
    )
    .await
    .unwrap();
    let _listening = journal.listen().await.unwrap().expect("a listener");
    let other = AnyJournal::open(&JournalAddress::Postgres(url.clone()), quick())
        .await
        .unwrap();
    let counter = Counter::default();
    let done = Done::default();
    let worker = RecoveryWorker::new(&journal, counter.clone(), counter.clone())
        .with_owner("survivor")
        .with_poll_interval(HOUR)
        .with_notify(done.on());
    let act = async {
        // Idle by now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        terminate(&url, app).await;
        other
            .record(report("after"), SystemClock.now_ms())
            .await
            .unwrap();
    };
    let report = run_while(
        &worker,
        &done,
        &other,
        act,
        "after",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!((report.claimed, report.succeeded), (1, 1), "{report:?}");
    assert_eq!(counter.0.lock().unwrap().get("after"), Some(&1));
    // The LISTEN connection was not the one ended.
    assert_eq!(
        psql(
            &url,
            format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = \
                 '{APPLICATION_NAME}' AND datname = current_database()"
            )
        )
        .await,
        "1"
    );
}

/// The server stopped for a while under an idle worker (a private
/// cluster, started again on the same port): the worker keeps running,
/// tries again with backoff (a handful of tries in the seconds it is
/// down, not a spin, nor one per poll), says when the journal is back,
/// and carries out a recovery recorded after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rides_out_a_stopped_server() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| pg::Pg::start(&[]))
            .await
            .unwrap(),
    );
    let url = {
        let c = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || c.fresh_db("outage"))
            .await
            .unwrap()
    };
    let address = JournalAddress::Postgres(url.clone());
    let journal = AnyJournal::open(&address, quick()).await.unwrap();
    let _listening = journal.listen().await.unwrap().expect("a listener");
    let counter = Counter::default();
    let outages = Outages::default();
    let done = Done::default();
    // Polling every 250 ms: it looks at the journal while the server is
    // down (with an hour, it could sleep through the whole outage).
    let worker = RecoveryWorker::new(&journal, counter.clone(), counter.clone())
        .with_owner("patient")
        .with_poll_interval(Duration::from_millis(250))
        .with_on_outage(outages.on())
        .with_notify(done.on());
    let other = tokio::sync::OnceCell::new();
    let down_for = Duration::from_secs(3);
    let act = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || c.halt()).await.unwrap();
        tokio::time::sleep(down_for).await;
        let c = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || c.start_again())
            .await
            .unwrap();
        let o = AnyJournal::open(&address, quick()).await.unwrap();
        o.record(report("after-restart"), SystemClock.now_ms())
            .await
            .unwrap();
        other.set(o).ok();
    };
    // The watcher reads through the worker's own journal handle: it too
    // reconnects after the restart.
    let report = run_while(
        &worker,
        &done,
        &journal,
        act,
        "after-restart",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(counter.0.lock().unwrap().get("after-restart"), Some(&1));
    let seen = outages.list();
    // 3 s down (and the time to stop and start): waits of at least 50,
    // 100, 200, 400, 800, 1600, 3200 ms (equal jitter) cover it in about
    // seven tries, ten if the restart is slow. A worker that tried again
    // at each poll would have tried a dozen times or more, one that did
    // not wait at all, hundreds.
    let tries = outages.unavailable();
    assert!((1..=10).contains(&tries), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("back"), "{seen:?}");
    // Each wait was at least half of 100 ms doubled per try.
    for (n, us) in waits(&seen).into_iter().enumerate() {
        let full = 100_000u64 << n;
        assert!(us >= full / 2 && us <= full, "try {n}: {seen:?}");
    }
}

/// A journal whose calls fail as unavailable while `down` counts down:
/// a real [`MemoryJournal`] behind a switch, for the worker's schedule in
/// virtual time.
struct Flaky {
    inner: MemoryJournal,
    down: AtomicU32,
    /// When each claim was asked (virtual time since the start).
    claims: Mutex<Vec<Duration>>,
    start: tokio::time::Instant,
}

impl Flaky {
    fn new(config: RecoveryConfig) -> Self {
        Self {
            inner: MemoryJournal::new(config).unwrap(),
            down: AtomicU32::new(0),
            claims: Mutex::new(Vec::new()),
            start: tokio::time::Instant::now(),
        }
    }

    /// Fails the next `n` calls.
    fn fail_next(&self, n: u32) {
        self.down.store(n, Ordering::SeqCst);
    }

    fn gate(&self) -> Result<(), JournalError> {
        let failed = self
            .down
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(JournalError::Unavailable {
                journal: "flaky".into(),
                message: "connection refused".into(),
                source: None,
            });
        }
        Ok(())
    }
}

impl Journal for Flaky {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn config(&self) -> &RecoveryConfig {
        self.inner.config()
    }
    async fn record(&self, report: FailureReport, now_ms: u64) -> Result<Recovery, JournalError> {
        self.gate()?;
        self.inner.record(report, now_ms).await
    }
    async fn get(&self, migration: &str) -> Result<Option<Recovery>, JournalError> {
        self.gate()?;
        self.inner.get(migration).await
    }
    async fn history(&self, migration: &str) -> Result<Vec<Attempt>, JournalError> {
        self.gate()?;
        self.inner.history(migration).await
    }
    async fn list(&self, state: Option<RecoveryState>) -> Result<Vec<Recovery>, JournalError> {
        self.gate()?;
        self.inner.list(state).await
    }
    async fn due(&self, now_ms: u64) -> Result<Vec<Recovery>, JournalError> {
        self.gate()?;
        self.inner.due(now_ms).await
    }
    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, JournalError> {
        self.claims.lock().unwrap().push(self.start.elapsed());
        self.gate()?;
        self.inner.claim(owner, now_ms, lease, limit).await
    }
    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        self.gate()?;
        self.inner.renew(claim, now_ms, lease).await
    }
    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        self.gate()?;
        self.inner.release(claim, now_ms).await
    }
    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        self.gate()?;
        self.inner.complete(claim, outcome, now_ms).await
    }
    async fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        self.gate()?;
        self.inner.cancel(migration, reason, now_ms).await
    }
    async fn prune(&self, before_ms: u64, states: &[RecoveryState]) -> Result<u64, JournalError> {
        self.gate()?;
        self.inner.prune(before_ms, states).await
    }
    async fn targets(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        self.gate()?;
        self.inner.targets().await
    }
    async fn reset_target(&self, node: &str, now_ms: u64) -> Result<TargetBreaker, JournalError> {
        self.gate()?;
        self.inner.reset_target(node, now_ms).await
    }
    async fn admit_target(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold: Duration,
    ) -> Result<Admission, JournalError> {
        self.gate()?;
        self.inner.admit_target(node, migration, now_ms, hold).await
    }
    async fn next_due_after(&self, now_ms: u64) -> Result<Option<u64>, JournalError> {
        self.gate()?;
        self.inner.next_due_after(now_ms).await
    }
    fn wake(&self) -> Option<Wake> {
        self.inner.wake()
    }
}

/// A clock on tokio's (virtual) time.
#[derive(Clone)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        1_000_000 + u64::try_from(self.0.elapsed().as_millis()).unwrap()
    }
}

/// Waits until `id` has succeeded in `journal` (read past the switch).
async fn succeeded(journal: &Flaky, id: &str) {
    loop {
        if let Ok(Some(rec)) = journal.inner.get(id).await {
            if rec.state == RecoveryState::Succeeded {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The waits (µs) `seen` reported.
fn waits(seen: &[String]) -> Vec<u64> {
    seen.iter()
        .filter_map(|l| l.strip_prefix("unavailable "))
        .map(|ms| ms.parse().unwrap())
        .collect()
}

/// In virtual time: six claims in a row find the journal unavailable; the
/// worker waits 100 ms doubling per try (each wait between half and all
/// of it, equal jitter) and tries exactly when each wait ends, then runs
/// the recovery and says the journal is back. A later outage in the same
/// `run` starts the schedule over at 100 ms. (Before, `run` ended with the
/// first failure.)
#[tokio::test(start_paused = true)]
async fn in_virtual_time_the_worker_backs_off_then_starts_over() {
    let journal = Flaky::new(quick());
    let clock = TokioClock(tokio::time::Instant::now());
    journal
        .inner
        .record(report("m"), clock.now_ms() - 10)
        .await
        .unwrap();
    journal.fail_next(6);
    let counter = Counter::default();
    let outages = Outages::default();
    let worker = RecoveryWorker::new(&journal, counter.clone(), counter.clone())
        .with_clock(clock.clone())
        .with_poll_interval(HOUR)
        .with_on_outage(outages.on());
    let first = std::sync::OnceLock::new();
    let report = worker
        .run(async {
            succeeded(&journal, "m").await;
            first.set(outages.list()).unwrap();
            // Idle now; the record wakes it, and its next claims fail.
            journal
                .inner
                .record(report("n"), clock.now_ms() - 10)
                .await
                .unwrap();
            journal.fail_next(2);
            succeeded(&journal, "n").await;
        })
        .await
        .expect("run rides out the outages");
    assert_eq!((report.claimed, report.succeeded), (2, 2), "{report:?}");
    let seen = first.get().unwrap().clone();
    let first_waits = waits(&seen);
    assert_eq!(first_waits.len(), 6, "{seen:?}");
    for (n, &us) in first_waits.iter().enumerate() {
        let full = 100_000u64 << n;
        assert!(
            us >= full / 2 && us <= full,
            "wait {n} of {us} µs: {first_waits:?}"
        );
    }
    // The claims were asked at 0 and when each wait ended, not sooner.
    let claims = journal.claims.lock().unwrap().clone();
    let mut at = Duration::ZERO;
    for (n, &us) in first_waits.iter().enumerate() {
        at += Duration::from_micros(us);
        let asked = claims[n + 1];
        assert!(
            asked >= at && asked < at + Duration::from_millis(5),
            "claim {} at {asked:?}, expected {at:?}: {claims:?}",
            n + 1
        );
    }
    assert_eq!(seen.last().map(String::as_str), Some("back"), "{seen:?}");

    // The second outage: 100 ms again, then 200.
    let all = outages.list();
    let again = waits(&all[seen.len()..]);
    assert_eq!(again.len(), 2, "{all:?}");
    assert!((50_000..=100_000).contains(&again[0]), "{again:?}");
    assert!((100_000..=200_000).contains(&again[1]), "{again:?}");
    assert_eq!(all.last().map(String::as_str), Some("back"), "{all:?}");
}

/// Fails the journal's next `n` calls once the migrate command has run.
struct CutsTheJournal<'a> {
    journal: &'a Flaky,
    n: u32,
    runs: AtomicU32,
}

impl Migrator for &CutsTheJournal<'_> {
    type Error = std::io::Error;
    async fn migrate(&self, _: &Job) -> std::io::Result<()> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.journal.fail_next(self.n);
        Ok(())
    }
}

impl RollbackHandler for &CutsTheJournal<'_> {
    type Error = std::io::Error;
    async fn rollback(&self, _: &Job) -> std::io::Result<()> {
        Ok(())
    }
}

/// In virtual time: the journal becomes unavailable while an attempt runs;
/// its outcome is recorded once the journal is back (within the lease),
/// the attempt is not run again, and `run` goes on. (Before, `run` ended
/// with the error and the outcome was lost: the recovery was run again
/// once its lease ran out.)
#[tokio::test(start_paused = true)]
async fn in_virtual_time_an_outcome_is_recorded_once_the_journal_is_back() {
    let journal = Flaky::new(quick());
    let clock = TokioClock(tokio::time::Instant::now());
    journal
        .inner
        .record(report("m"), clock.now_ms() - 10)
        .await
        .unwrap();
    let migrator = CutsTheJournal {
        journal: &journal,
        n: 4,
        runs: AtomicU32::new(0),
    };
    let outages = Outages::default();
    let worker = RecoveryWorker::new(&journal, &migrator, &migrator)
        .with_clock(clock)
        .with_poll_interval(HOUR)
        .with_on_outage(outages.on());
    let report = worker
        .run(succeeded(&journal, "m"))
        .await
        .expect("run rides out the outage");
    assert_eq!((report.claimed, report.succeeded), (1, 1), "{report:?}");
    assert_eq!(migrator.runs.load(Ordering::SeqCst), 1);
    assert_eq!(outages.unavailable(), 4, "{:?}", outages.list());
    let history = journal.inner.history("m").await.unwrap();
    let results: Vec<_> = history.iter().map(|a| a.result).collect();
    assert_eq!(
        results,
        [AttemptResult::Failed, AttemptResult::Succeeded],
        "{history:?}"
    );
}

/// In virtual time: a stop while the worker waits out an unavailable
/// journal ends `run` at once, not when the wait would have ended.
#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_stop_during_a_wait_stops_at_once() {
    let journal = Flaky::new(quick());
    journal.fail_next(u32::MAX);
    let counter = Counter::default();
    let outages = Outages::default();
    let worker = RecoveryWorker::new(&journal, counter.clone(), counter)
        .with_poll_interval(HOUR)
        .with_on_outage(outages.on());
    let started = tokio::time::Instant::now();
    let stop_at = Duration::from_millis(2_500);
    let report = worker
        .run(tokio::time::sleep(stop_at))
        .await
        .expect("a stop is no error");
    assert_eq!(started.elapsed(), stop_at);
    assert_eq!(report.claimed, 0);
    // The wait under way when the stop came would have ended later.
    let planned: u64 = waits(&outages.list()).iter().sum();
    assert!(
        Duration::from_micros(planned) > stop_at,
        "{:?}",
        outages.list()
    );
}
