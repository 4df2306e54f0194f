//! Model checks of the ensure state machine with loom: every interleaving of
//! the transitions is explored, on the code production runs (the crate's
//! `src/loom/` shim hands the machine loom's `Mutex`, atomics and a modelled
//! `OnceLock` under `--cfg loom`), including the orderings of the lock-free
//! Ready fast path. Under loom the fast path keeps 2 answers instead of 64,
//! so that its overflow is reached in a few transitions.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p rebound-ensure --release --test loom`
#![cfg(loom)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use rebound_ensure::ReadyInfo;
use rebound_ensure::machine::{Begin, Machine, Phase, StartTicket};
use tokio::time::Instant;

/// How a driver's start ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Ready,
    /// The start returned an error, or the supervisor's timeout fired.
    Fail,
    /// The start task was cancelled: the ticket is dropped unconsumed.
    Cancel,
    /// The start panicked: the ticket is dropped while unwinding.
    Panic,
}

fn machine(backoff: Duration) -> Arc<Machine> {
    Arc::new(Machine::new(Box::new(move |_| backoff)))
}

/// Counts live drivers; a second concurrent one is a bug.
struct Drivers {
    live: AtomicUsize,
    total: AtomicUsize,
}

impl Drivers {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        })
    }
}

/// One caller: `begin_start`, and if it drives, end the start as `end`.
fn caller(m: &Arc<Machine>, drivers: &Drivers, end: End) {
    let now = Instant::now();
    if let Begin::Drive(ticket) = Machine::begin_start(m, now) {
        let live = drivers.live.fetch_add(1, Ordering::SeqCst);
        assert_eq!(live, 0, "two starts ran at once");
        drivers.total.fetch_add(1, Ordering::SeqCst);
        drivers.live.fetch_sub(1, Ordering::SeqCst);
        finish(ticket, end, now);
    }
}

fn finish(ticket: StartTicket, end: End, now: Instant) {
    match end {
        End::Ready => ticket.succeed(ReadyInfo::new("endpoint", "up"), now),
        End::Fail => {
            ticket.fail("start timed out after 90s", now);
        }
        End::Cancel => drop(ticket),
        End::Panic => {
            let outcome = catch_unwind(AssertUnwindSafe(move || {
                let _owned = ticket;
                panic!("start panicked");
            }));
            assert!(outcome.is_err());
        }
    }
}

fn assert_settled(m: &Machine) {
    assert!(m.fast_path_consistent());
    let snap = m.load();
    // The lock-free fast path agrees with the snapshot.
    assert_eq!(
        m.ready().is_some(),
        matches!(
            snap.phase,
            Phase::Ready {
                verifying: false,
                ..
            }
        ),
        "fast path disagrees with {snap:?}"
    );
    assert!(
        !matches!(snap.phase, Phase::Starting { .. }),
        "stuck in Starting: {snap:?}"
    );
    assert!(
        !matches!(
            snap.phase,
            Phase::Ready {
                verifying: true,
                ..
            }
        ),
        "stuck verifying: {snap:?}"
    );
}

#[test]
fn concurrent_callers_start_exactly_once() {
    loom::model(|| {
        let m = machine(Duration::from_secs(60));
        let drivers = Drivers::new();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (m, drivers) = (Arc::clone(&m), Arc::clone(&drivers));
                thread::spawn(move || caller(&m, &drivers, End::Ready))
            })
            .collect();
        caller(&m, &drivers, End::Ready);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(drivers.total.load(Ordering::SeqCst), 1);
        assert!(matches!(m.load().phase, Phase::Ready { .. }));
        assert_eq!(
            m.ready().map(|i| i.endpoint().to_owned()).as_deref(),
            Some("endpoint")
        );
    });
}

/// Never stuck in Starting after a panic, a cancellation or a timeout, and
/// with a zero backoff a second caller may take over, but never alongside.
#[test]
fn failed_cancelled_or_panicked_start_never_stays_starting() {
    for end in [End::Fail, End::Cancel, End::Panic] {
        loom::model(move || {
            let m = machine(Duration::ZERO);
            let drivers = Drivers::new();
            let other = {
                let (m, drivers) = (Arc::clone(&m), Arc::clone(&drivers));
                thread::spawn(move || caller(&m, &drivers, End::Ready))
            };
            caller(&m, &drivers, end);
            other.join().unwrap();
            assert_settled(&m);
            let total = drivers.total.load(Ordering::SeqCst);
            assert!((1..=2).contains(&total));
        });
    }
}

/// With a backoff in force, a failed start is not restarted by a racing
/// caller: it gets the failure instead.
#[test]
fn failure_backoff_holds_against_racing_callers() {
    loom::model(|| {
        let m = machine(Duration::from_secs(60));
        let drivers = Drivers::new();
        let other = {
            let (m, drivers) = (Arc::clone(&m), Arc::clone(&drivers));
            thread::spawn(move || caller(&m, &drivers, End::Fail))
        };
        caller(&m, &drivers, End::Fail);
        other.join().unwrap();
        assert_eq!(drivers.total.load(Ordering::SeqCst), 1);
        assert!(matches!(m.load().phase, Phase::Failed { .. }));
    });
}

/// A TTL re-probe that finds the runtime dead races callers: they see Ready,
/// wait on Verifying, or start it again exactly once after it was marked
/// dead; nothing is left verifying or starting.
#[test]
fn ttl_reprobe_races_callers() {
    loom::model(|| {
        let m = machine(Duration::from_secs(60));
        let now = Instant::now();
        match Machine::begin_start(&m, now) {
            Begin::Drive(t) => t.succeed(ReadyInfo::new("endpoint", "up"), now),
            other => panic!("fresh machine must hand out the start: {other:?}"),
        }
        let drivers = Drivers::new();
        let prober = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                if let Some(ticket) = Machine::begin_verify(&m, 1) {
                    ticket.lost("connection refused", Instant::now());
                }
            })
        };
        let starter = {
            let (m, drivers) = (Arc::clone(&m), Arc::clone(&drivers));
            thread::spawn(move || caller(&m, &drivers, End::Ready))
        };
        // A fast-path reader never sees a Ready the prober has begun to doubt
        // as trusted after the prober marked it dead.
        assert!(m.fast_path_consistent());
        if let Some(info) = m.ready() {
            assert_eq!(info.endpoint(), "endpoint");
        }
        prober.join().unwrap();
        starter.join().unwrap();
        assert_settled(&m);
        assert!(drivers.total.load(Ordering::SeqCst) <= 1);
    });
}

/// A reader racing the start that publishes Ready finds, through the fast
/// path's atomics alone (no lock), either no answer or the whole answer:
/// the slot's value is visible whenever the index naming it is.
#[test]
fn fast_path_readers_see_the_whole_answer_or_none() {
    loom::model(|| {
        let m = machine(Duration::from_secs(60));
        let drivers = Drivers::new();
        let starter = {
            let (m, drivers) = (Arc::clone(&m), Arc::clone(&drivers));
            thread::spawn(move || caller(&m, &drivers, End::Ready))
        };
        assert!(m.fast_path_consistent());
        if let Some(info) = m.ready() {
            assert_eq!((info.endpoint(), info.message()), ("endpoint", "up"));
        }
        starter.join().unwrap();
        assert_settled(&m);
        assert_eq!(
            m.ready_owned().map(|i| i.message().to_owned()).as_deref(),
            Some("up")
        );
    });
}

/// Past the fast path's slots (a start that reports a new answer each
/// time), `ready()` has no answer and `ready_owned()` reads the snapshot
/// under the lock: racing a re-probe that finds it dead, it answers the
/// Ready or nothing, never a stale one.
#[test]
fn answers_past_the_slots_come_from_the_snapshot() {
    loom::model(|| {
        let m = machine(Duration::from_secs(60));
        let now = Instant::now();
        // Two answers fill the slots (two under loom); each runtime dies.
        for (generation, message) in [(1, "a"), (2, "b")] {
            match Machine::begin_start(&m, now) {
                Begin::Drive(t) => t.succeed(ReadyInfo::new("endpoint", message), now),
                other => panic!("expected to drive: {other:?}"),
            }
            assert_eq!(m.ready().map(|i| i.message()), Some(message));
            Machine::begin_verify(&m, generation)
                .expect("ready")
                .lost("gone", now);
            assert!(m.ready_owned().is_none());
        }
        match Machine::begin_start(&m, now) {
            Begin::Drive(t) => t.succeed(ReadyInfo::new("endpoint", "c"), now),
            other => panic!("expected to drive: {other:?}"),
        }
        assert!(m.ready().is_none(), "a third answer has no slot");
        let prober = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let ticket = Machine::begin_verify(&m, 3).expect("ready");
                ticket.lost("connection refused", Instant::now());
            })
        };
        let seen = m.ready_owned().map(|i| i.message().to_owned());
        assert!(matches!(seen.as_deref(), None | Some("c")), "{seen:?}");
        prober.join().unwrap();
        assert!(m.ready_owned().is_none());
        assert_settled(&m);
    });
}
