//! What the detection-latency benches of the waits share (benches/waits.rs,
//! benches/db_waits.rs): one measurement (a waiter starts, the dependency
//! is made ready after a delay, the latency is ready -> waiter done), the
//! fixed 1 s poller they compare with (wait4x's default) and its batched
//! runs, the counts read from the command line, and the table they print
//! (nearest-rank percentiles).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rebound_init::actions::{ActionContext, ActionSpec};

/// Baseline runs that run at once: each takes up to a second, and at a
/// 1 s poll period the millisecond the runtime needs to juggle them does
/// not show.
const BASELINE_BATCH: usize = 25;

/// The counts given on the command line (`-- RUNS BASELINE_RUNS`; cargo's
/// own `--bench` is no number), else the defaults 100 and 50.
pub fn counts() -> (usize, usize) {
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    (
        numbers.first().copied().unwrap_or(100),
        numbers.get(1).copied().unwrap_or(50),
    )
}

/// The runtime the benches run in (the shape `rebound` uses).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `uses:` with the parameters `with`, as a spec would read them.
pub fn spec(uses: &str, with: serde_json::Value) -> ActionSpec {
    ActionSpec::deserialize_params(uses, with).expect("bench parameters")
}

/// One measurement: `waiter` starts; after `after` ms `make_ready` makes
/// its dependency ready (what it returns is kept until the waiter is
/// done); returns the time from the instant `make_ready` finished to the
/// one `waiter` did.
pub async fn measure<K>(
    waiter: impl Future<Output = ()> + Send + 'static,
    after: u64,
    make_ready: impl Future<Output = K>,
) -> Duration {
    let task = tokio::spawn(async move {
        waiter.await;
        Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(after)).await;
    let keep = make_ready.await;
    let ready = Instant::now();
    let done = task.await.expect("waiter");
    drop(keep);
    done.saturating_duration_since(ready)
}

/// The waiter of rebound: one attempt of `action`, which must succeed.
pub async fn attempt(action: ActionSpec) {
    let ctx = ActionContext::new("bench", Arc::new(|_, _, _| {}));
    action.attempt(&ctx).await.expect("wait");
}

/// The waiter of wait4x style: `ready`, then a fixed second's sleep,
/// until it is.
pub async fn every_second<F, Fut>(mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    while !ready().await {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `runs` baseline measurements, `one(i)` each (the i-th run), in batches
/// that run at once.
pub async fn baseline<F, Fut>(runs: usize, mut one: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    let mut fixed = Vec::with_capacity(runs);
    while fixed.len() < runs {
        let batch = (runs - fixed.len()).min(BASELINE_BATCH);
        let base = fixed.len();
        let tasks: Vec<_> = (0..batch).map(|i| tokio::spawn(one(base + i))).collect();
        for t in tasks {
            fixed.push(t.await.expect("baseline"));
        }
    }
    fixed
}

/// Nearest-rank percentile `p` of `sorted`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the head of the table.
pub fn header() {
    println!("| wait | runs | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
}

/// Prints the row `name` of the measurements `v`; returns their p50.
pub fn row(name: &str, mut v: Vec<Duration>) -> Duration {
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

/// Prints whether the worst p50 of rebound's waits met the goal of 10 ms.
pub fn goal(worst: Duration) {
    println!(
        "\ngoal p50 <= 10 ms for every wait: {} (worst p50 {:.2} ms)",
        if worst <= Duration::from_millis(10) {
            "met"
        } else {
            "MISSED"
        },
        ms(worst)
    );
}
