//! Detection latency of `init.wait_tcp`: how long after a port starts
//! listening does the waiting step notice? Measured against a fixed 1 s
//! poller (the default of wait-for-it and wait4x) in the same run.
//!
//! Each run: a waiter starts on a closed loopback port; after a random
//! delay the port is bound (the moment it opens is taken right after
//! `bind` returns, when the kernel accepts connections); the latency is the
//! time from that moment until the waiter returns success.
//!
//! `cargo bench -p rebound-init --bench wait_tcp` (`-- RUNS BASELINE_RUNS`
//! to change the counts: default 300 and 20).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use rebound_init::actions::wait_tcp::WaitTcp;
use rebound_init::actions::{ActionContext, ActionSpec};

/// Baseline runs that run at once (see `main`).
const BASELINE_BATCH: usize = 25;

/// Where the ports waited for are taken from: below Linux's ephemeral
/// range (32768 and up by default). A port in that range can be handed to
/// a waiter's own connecting socket, which then connects to itself (TCP
/// simultaneous open) and blocks the later `bind`.
const FIRST_PORT: u16 = 20_000;
static NEXT_PORT: AtomicU16 = AtomicU16::new(FIRST_PORT);

/// A free port below the ephemeral range, never handed out twice.
fn free_port() -> u16 {
    loop {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_000, "ran out of ports below the ephemeral range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs one measurement: starts `waiter`, opens the port after a random
/// delay in `open_after`, returns open -> success.
async fn measure<F, Fut>(open_after: std::ops::Range<u64>, waiter: F) -> Duration
where
    F: FnOnce(u16) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let port = free_port();
    let wait = waiter(port);
    let task = tokio::spawn(async move {
        wait.await;
        Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(fastrand::u64(open_after))).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the waited-for port");
    let opened = Instant::now();
    let done = task.await.expect("waiter");
    drop(listener);
    done.saturating_duration_since(opened)
}

async fn rebound_waiter(port: u16) {
    let ctx = ActionContext::new("bench", Arc::new(|_, _, _| {}));
    let spec = ActionSpec::WaitTcp(WaitTcp {
        host: "127.0.0.1".into(),
        port,
        timeout: Some(Duration::from_secs(30)),
        state: None,
    });
    spec.attempt(&ctx).await.expect("wait_tcp");
}

/// wait-for-it / wait4x style: try, then sleep a fixed second.
async fn fixed_poller(port: u16) {
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest-rank percentile.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    runs: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        runs: v.len(),
        p50: percentile(&v, 50.0),
        p90: percentile(&v, 90.0),
        p99: percentile(&v, 99.0),
        max: *v.last().expect("at least one run"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; take the first two numbers given.
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(300);
    let baseline_runs = numbers.get(1).copied().unwrap_or(300);
    // The same runtime shape `rebound` uses.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ours = Vec::with_capacity(runs);
        for _ in 0..runs {
            ours.push(measure(5..50, rebound_waiter).await);
        }
        // The 1 s poller, measured the same way, as many runs as rebound
        // by default. Each run takes up to a second, so they go in batches
        // that run at once on separate ports: at a 1 s poll period the
        // millisecond the runtime needs to juggle them does not show.
        let mut fixed = Vec::with_capacity(baseline_runs);
        while fixed.len() < baseline_runs {
            let batch = (baseline_runs - fixed.len()).min(BASELINE_BATCH);
            let tasks: Vec<_> = (0..batch)
                // Open anywhere within the poller's 1 s period.
                .map(|_| tokio::spawn(measure(1..1000, fixed_poller)))
                .collect();
            for task in tasks {
                fixed.push(task.await.expect("baseline run"));
            }
        }
        // What the fast polling costs: one refused connect on loopback.
        let closed = free_port();
        let probes = 2000u32;
        let t = Instant::now();
        for _ in 0..probes {
            let _ = tokio::net::TcpStream::connect(("127.0.0.1", closed)).await;
        }
        let per_connect = t.elapsed() / probes;
        let ours = stats(ours);
        let fixed = stats(fixed);
        println!("| poller | runs | p50 | p90 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, s) in [
            ("rebound init.wait_tcp (1 ms doubling to 5 ms)", &ours),
            ("fixed 1 s poller (wait-for-it / wait4x default)", &fixed),
        ] {
            println!(
                "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                s.runs,
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        println!(
            "\np50 ratio (fixed 1 s / rebound): {:.0}x; p99 ratio: {:.0}x",
            ms(fixed.p50) / ms(ours.p50).max(0.001),
            ms(fixed.p99) / ms(ours.p99).max(0.001)
        );
        println!(
            "one refused loopback connect: {:.1} us wall; at the 5 ms cap (200/s) that is {:.2}% of one core at most",
            per_connect.as_secs_f64() * 1e6,
            per_connect.as_secs_f64() * 200.0 * 100.0
        );
        println!(
            "goal p50 <= 5 ms: {}; goal p99 <= 20 ms: {}",
            if ours.p50 <= Duration::from_millis(5) {
                "met"
            } else {
                "MISSED"
            },
            if ours.p99 <= Duration::from_millis(20) {
                "met"
            } else {
                "MISSED"
            }
        );
    });
}
