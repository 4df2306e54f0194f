//! The synchronous core of the state machine: states, transitions, and the
//! tickets that own a running start or re-probe.
//!
//! No async and no I/O here, so that loom can check it (`tests/loom.rs`).
//! [`crate::Ensure`] drives it from tokio tasks.

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Duration;

use tokio::time::Instant;

use crate::ReadyInfo;
use crate::fast_path::FastPath;
use crate::loom::sync::{Arc, Mutex, MutexGuard};

/// Computes the wait after the `n`th failed start in a row (`n >= 1`).
pub type BackoffFn = Box<dyn Fn(u32) -> Duration + Send + Sync>;

// Invariants the machine depends on:
//
// 1. Every transition happens with `state` locked, and replaces the whole
//    `Snapshot` (an `Arc`, so readers clone a pointer under the lock and
//    read it after). A reader therefore sees either the state before a
//    transition or the one after. The lock is never held across an await.
// 2. `Phase::Starting` with generation `g` exists only while the one
//    `StartTicket` for `g` is alive. The ticket leaves Starting when it is
//    consumed (`succeed`/`fail`) or dropped (a panic unwinding through the
//    start task, its cancellation, or a timeout that dropped it), so the
//    machine can never stay in Starting with nobody driving it.
// 3. A ticket is only handed out from NotStarted, or from Failed once its
//    backoff has passed, and only by the caller that moved the phase to
//    Starting under the lock: at most one start runs at a time.
// 4. `Ready { verifying: true }` exists only while the one `VerifyTicket` for
//    that generation is alive, by the same argument as 2.
// 5. `fast` (the Ready fast path, read without the lock) is updated right
//    after the snapshot, under the same lock: it holds the info exactly when
//    the snapshot is a Ready that is not being verified, unless that answer
//    found no slot (more than `fast_path::CAP` distinct answers): then it is
//    marked overflowed and `ready_owned` reads the snapshot instead.

/// The machine: the state under a small lock, plus the lock-free Ready fast
/// path.
pub struct Machine {
    state: Mutex<State>,
    fast: FastPath,
    backoff: BackoffFn,
}

/// What the lock guards.
struct State {
    /// The next generation to hand out.
    next_generation: u64,
    /// The published state.
    snapshot: StdArc<Snapshot>,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine").finish_non_exhaustive()
    }
}

/// The published state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Bumped by every start; tickets of older generations change nothing.
    pub generation: u64,
    /// When this phase began.
    pub since: Instant,
    /// Failed starts in a row.
    pub failures: u32,
    /// The phase.
    pub phase: Phase,
}

/// The phases of [`Snapshot`].
#[derive(Debug, Clone)]
pub enum Phase {
    /// Not running; `message` says why when it was found dead.
    NotStarted {
        /// Why it is not running, when known.
        message: Option<StdArc<str>>,
    },
    /// A start is running.
    Starting {
        /// Why the start before it failed, when it did (a retry after a
        /// backoff): answers during this start still say why.
        previous: Option<StdArc<str>>,
    },
    /// Ready with this endpoint.
    Ready {
        /// What the start (or last probe) reported.
        info: StdArc<ReadyInfo>,
        /// The TTL ran out and a probe is checking it.
        verifying: bool,
    },
    /// The last start failed; the next may begin at `retry_at`.
    Failed {
        /// Why.
        message: StdArc<str>,
        /// When the next start may begin.
        retry_at: Instant,
    },
}

/// What [`Machine::begin_start`] decided for its caller.
#[derive(Debug)]
pub enum Begin {
    /// Ready and trusted.
    Ready(StdArc<ReadyInfo>),
    /// Ready, but being re-probed: wait for the result.
    Verifying,
    /// Another caller's start is running.
    Starting {
        /// Why the start before it failed, when it did.
        previous: Option<StdArc<str>>,
    },
    /// Failed, and the backoff has not passed.
    Backoff {
        /// Why the last start failed.
        message: StdArc<str>,
        /// Time left.
        retry_after: Duration,
    },
    /// This caller moved the machine to Starting and must drive the start.
    Drive(StartTicket),
}

impl Machine {
    /// A machine in NotStarted.
    pub fn new(backoff: BackoffFn) -> Self {
        Self {
            state: Mutex::new(State {
                next_generation: 1,
                snapshot: StdArc::new(Snapshot {
                    generation: 0,
                    since: Instant::now(),
                    failures: 0,
                    phase: Phase::NotStarted { message: None },
                }),
            }),
            fast: FastPath::new(),
            backoff,
        }
    }

    /// The current state (a pointer cloned under the lock).
    pub fn load(&self) -> StdArc<Snapshot> {
        StdArc::clone(&self.lock().snapshot)
    }

    /// The Ready fast path: the trusted Ready's info, by reference, without
    /// a lock or a reference count; `None` also when the answer found no
    /// slot (see `fast_path.rs`).
    #[inline]
    pub fn ready(&self) -> Option<&ReadyInfo> {
        self.fast.get().map(|info| &**info)
    }

    /// The trusted Ready's info as a shared, owned value (one reference
    /// count): from the fast path without a lock, or, when the answer found
    /// no slot there, from the snapshot under the lock.
    #[inline]
    pub fn ready_owned(&self) -> Option<StdArc<ReadyInfo>> {
        if let Some(info) = self.fast.get() {
            return Some(StdArc::clone(info));
        }
        if !self.fast.overflowed() {
            return None;
        }
        match &self.load().phase {
            Phase::Ready {
                info,
                verifying: false,
            } => Some(StdArc::clone(info)),
            _ => None,
        }
    }

    /// Whether the fast path's index and its slots agree for a reader that
    /// loads them now (the loom checks call it from racing threads).
    #[cfg(loom)]
    pub fn fast_path_consistent(&self) -> bool {
        self.fast.consistent()
    }

    /// Publishes a new state: the snapshot, then the fast path.
    fn publish(&self, state: &mut State, next: Snapshot) {
        let trusted = match &next.phase {
            Phase::Ready {
                info,
                verifying: false,
            } => Some(StdArc::clone(info)),
            _ => None,
        };
        state.snapshot = StdArc::new(next);
        match trusted {
            Some(info) => self.fast.set(&info),
            None => self.fast.clear(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what a `start_if_needed` caller does; the caller that gets
    /// [`Begin::Drive`] owns the start.
    pub fn begin_start(this: &Arc<Self>, now: Instant) -> Begin {
        let mut state = this.lock();
        let snap = StdArc::clone(&state.snapshot);
        match &snap.phase {
            Phase::Ready {
                info,
                verifying: false,
            } => return Begin::Ready(StdArc::clone(info)),
            Phase::Ready {
                verifying: true, ..
            } => return Begin::Verifying,
            Phase::Starting { previous } => {
                return Begin::Starting {
                    previous: previous.clone(),
                };
            }
            Phase::Failed { message, retry_at } if now < *retry_at => {
                return Begin::Backoff {
                    message: StdArc::clone(message),
                    retry_after: *retry_at - now,
                };
            }
            Phase::Failed { .. } | Phase::NotStarted { .. } => {}
        }
        let previous = match &snap.phase {
            Phase::Failed { message, .. } => Some(StdArc::clone(message)),
            _ => None,
        };
        let generation = state.next_generation;
        state.next_generation += 1;
        this.publish(
            &mut state,
            Snapshot {
                generation,
                since: now,
                failures: snap.failures,
                phase: Phase::Starting {
                    previous: previous.clone(),
                },
            },
        );
        Begin::Drive(StartTicket {
            machine: Arc::clone(this),
            generation,
            previous,
            done: false,
        })
    }

    /// Starts re-probing a Ready of `generation` whose TTL ran out; `None`
    /// when the machine moved on (or another probe runs).
    pub fn begin_verify(this: &Arc<Self>, generation: u64) -> Option<VerifyTicket> {
        let mut state = this.lock();
        let snap = StdArc::clone(&state.snapshot);
        let Phase::Ready {
            info,
            verifying: false,
        } = &snap.phase
        else {
            return None;
        };
        if snap.generation != generation {
            return None;
        }
        this.publish(
            &mut state,
            Snapshot {
                phase: Phase::Ready {
                    info: StdArc::clone(info),
                    verifying: true,
                },
                ..Snapshot::clone(&snap)
            },
        );
        Some(VerifyTicket {
            machine: Arc::clone(this),
            generation,
            done: false,
        })
    }

    /// Replaces the phase if the snapshot is still `generation` and `from`
    /// accepts its phase. Returns whether it did.
    fn transition(
        &self,
        generation: u64,
        from: impl Fn(&Phase) -> bool,
        to: impl FnOnce(&Snapshot) -> Snapshot,
    ) -> bool {
        let mut state = self.lock();
        let snap = &state.snapshot;
        if snap.generation != generation || !from(&snap.phase) {
            return false;
        }
        let next = to(snap);
        self.publish(&mut state, next);
        true
    }

    fn fail_start(&self, generation: u64, message: StdArc<str>, now: Instant) -> Option<Duration> {
        let mut retry_after = None;
        self.transition(
            generation,
            |p| matches!(p, Phase::Starting { .. }),
            |snap| {
                let failures = snap.failures.saturating_add(1);
                let wait = (self.backoff)(failures);
                retry_after = Some(wait);
                Snapshot {
                    generation,
                    since: now,
                    failures,
                    phase: Phase::Failed {
                        message,
                        retry_at: now + wait,
                    },
                }
            },
        );
        retry_after
    }
}

/// Ownership of one running start. Consume it with [`succeed`](Self::succeed)
/// or [`fail`](Self::fail); dropping it marks the start failed ("cancelled").
#[derive(Debug)]
pub struct StartTicket {
    machine: Arc<Machine>,
    generation: u64,
    /// Why the start before this one failed, when it did.
    previous: Option<StdArc<str>>,
    done: bool,
}

impl StartTicket {
    /// The generation this start runs as.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Why the start before this one failed, when this start retries a
    /// failed one.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }

    /// Publishes Ready.
    pub fn succeed(mut self, info: ReadyInfo, now: Instant) {
        self.done = true;
        let generation = self.generation;
        self.machine.transition(
            generation,
            |p| matches!(p, Phase::Starting { .. }),
            |_| Snapshot {
                generation,
                since: now,
                failures: 0,
                phase: Phase::Ready {
                    info: StdArc::new(info),
                    verifying: false,
                },
            },
        );
    }

    /// Publishes Failed with the backoff; returns the wait before the next
    /// start may begin.
    pub fn fail(mut self, message: &str, now: Instant) -> Option<Duration> {
        self.done = true;
        self.machine
            .fail_start(self.generation, StdArc::from(message), now)
    }
}

impl Drop for StartTicket {
    fn drop(&mut self) {
        if !self.done {
            self.machine.fail_start(
                self.generation,
                StdArc::from("runtime start was cancelled before it finished"),
                Instant::now(),
            );
        }
    }
}

/// Ownership of one re-probe of a Ready whose TTL ran out. Dropping it
/// counts as "found dead".
#[derive(Debug)]
pub struct VerifyTicket {
    machine: Arc<Machine>,
    generation: u64,
    done: bool,
}

impl VerifyTicket {
    /// The probe found it up: Ready again with the same answer, trusted
    /// for another TTL.
    pub fn confirm(mut self, now: Instant) {
        self.done = true;
        let verifying = |p: &Phase| {
            matches!(
                p,
                Phase::Ready {
                    verifying: true,
                    ..
                }
            )
        };
        self.machine
            .transition(self.generation, verifying, |snap| Snapshot {
                since: now,
                phase: match &snap.phase {
                    Phase::Ready { info, .. } => Phase::Ready {
                        info: StdArc::clone(info),
                        verifying: false,
                    },
                    other => other.clone(),
                },
                ..Snapshot::clone(snap)
            });
    }

    /// The probe found it down: NotStarted, so the next caller starts it.
    pub fn lost(mut self, message: &str, now: Instant) {
        self.done = true;
        self.mark_lost(StdArc::from(message), now);
    }

    fn mark_lost(&self, message: StdArc<str>, now: Instant) {
        self.machine.transition(
            self.generation,
            |p| {
                matches!(
                    p,
                    Phase::Ready {
                        verifying: true,
                        ..
                    }
                )
            },
            |snap| Snapshot {
                since: now,
                phase: Phase::NotStarted {
                    message: Some(message),
                },
                ..Snapshot::clone(snap)
            },
        );
    }
}

impl Drop for VerifyTicket {
    fn drop(&mut self) {
        if !self.done {
            self.mark_lost(
                StdArc::from("the readiness probe was cancelled"),
                Instant::now(),
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn machine(backoff_secs: u64) -> Arc<Machine> {
        Arc::new(Machine::new(Box::new(move |n| {
            Duration::from_secs(backoff_secs * u64::from(n))
        })))
    }

    fn drive(m: &Arc<Machine>, now: Instant) -> StartTicket {
        match Machine::begin_start(m, now) {
            Begin::Drive(t) => t,
            other => panic!("expected to drive, got {other:?}"),
        }
    }

    #[test]
    fn only_the_first_caller_drives() {
        let m = machine(1);
        let now = Instant::now();
        let ticket = drive(&m, now);
        assert!(matches!(
            Machine::begin_start(&m, now),
            Begin::Starting { previous: None }
        ));
        assert!(m.ready().is_none());
        ticket.succeed(ReadyInfo::new("e", "m"), now);
        assert!(matches!(Machine::begin_start(&m, now), Begin::Ready(i) if i.endpoint() == "e"));
        assert_eq!(m.ready().map(|i| i.message()), Some("m"));
    }

    #[test]
    fn dropped_ticket_fails_with_backoff() {
        let m = machine(3);
        let now = Instant::now();
        drop(drive(&m, now));
        let snap = m.load();
        assert!(
            matches!(&snap.phase, Phase::Failed { message, .. } if message.contains("cancelled"))
        );
        assert_eq!(snap.failures, 1);
        match Machine::begin_start(&m, now + Duration::from_secs(1)) {
            // The drop stamped the failure with the real clock, a moment
            // after `now`: 3 s of backoff minus the 1 s already passed.
            Begin::Backoff { retry_after, .. } => {
                assert!(retry_after >= Duration::from_secs(2));
                assert!(retry_after < Duration::from_millis(2500));
            }
            other => panic!("expected backoff, got {other:?}"),
        }
        // After the backoff a new start (a new generation) may begin.
        let again = drive(&m, now + Duration::from_secs(4));
        assert_eq!(again.generation(), 2);
    }

    #[test]
    fn consecutive_failures_grow_the_backoff_and_success_resets_it() {
        let m = machine(1);
        let mut now = Instant::now();
        for n in 1..=3u64 {
            let wait = drive(&m, now).fail("boom", now);
            assert_eq!(wait, Some(Duration::from_secs(n)));
            now += Duration::from_secs(n);
        }
        drive(&m, now).succeed(ReadyInfo::new("e", ""), now);
        assert_eq!(m.load().failures, 0);
    }

    #[test]
    fn verify_of_an_old_generation_changes_nothing() {
        let m = machine(1);
        let now = Instant::now();
        drive(&m, now).succeed(ReadyInfo::new("e", ""), now);
        assert!(Machine::begin_verify(&m, 99).is_none());
        let t = Machine::begin_verify(&m, 1).expect("generation 1 is ready");
        assert!(matches!(Machine::begin_start(&m, now), Begin::Verifying));
        // A second verify while one runs is refused.
        assert!(Machine::begin_verify(&m, 1).is_none());
        t.lost("connection refused", now);
        assert!(
            matches!(&m.load().phase, Phase::NotStarted { message: Some(msg) } if &**msg == "connection refused")
        );
        assert_eq!(drive(&m, now).generation(), 2);
    }

    #[test]
    fn confirmed_verify_keeps_the_generation() {
        let m = machine(1);
        let now = Instant::now();
        drive(&m, now).succeed(ReadyInfo::new("e", ""), now);
        let verify = Machine::begin_verify(&m, 1).expect("ready");
        assert!(m.ready().is_none(), "a Ready being verified is not trusted");
        verify.confirm(now);
        let snap = m.load();
        assert_eq!(snap.generation, 1);
        assert!(
            matches!(&snap.phase, Phase::Ready { verifying: false, info } if info.endpoint() == "e")
        );
        assert_eq!(m.ready().map(|i| i.endpoint()), Some("e"));
    }

    /// A start that reports a new message every time: memory stays bounded
    /// and the answer still comes, from the snapshot under the lock.
    #[test]
    fn a_new_answer_on_every_start_is_served_beyond_the_slot_cap() {
        let m = machine(1);
        let now = Instant::now();
        let restarts = crate::fast_path::CAP + 10;
        for n in 0..restarts {
            let ticket = drive(&m, now);
            let generation = ticket.generation();
            ticket.succeed(ReadyInfo::new("e", format!("pid {n}")), now);
            let owned = m.ready_owned().expect("ready");
            assert_eq!(owned.message(), format!("pid {n}"));
            assert_eq!(
                m.ready().map(|i| i.message().to_owned()),
                (n < crate::fast_path::CAP).then(|| format!("pid {n}"))
            );
            Machine::begin_verify(&m, generation)
                .expect("ready")
                .lost("gone", now);
            assert!(m.ready_owned().is_none(), "not ready after it was lost");
        }
        assert_eq!(m.fast.used(), crate::fast_path::CAP);
    }
}
