//! What the tests share: a config with round numbers, a runtime whose starts
//! are counted and whose probe is switched by hand, and a clock helper.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};

pub(crate) const TTL: Duration = Duration::from_secs(10);

/// Starts time out after 90 s, a ready runtime is probed after [`TTL`], a
/// probe after 1 s; failed starts back off 2 s doubling to 60 s.
pub(crate) fn config() -> EnsureConfig {
    config_with_backoff(Duration::from_secs(2), Duration::from_secs(60))
}

/// [`config`] with failed starts backing off `initial` doubling to `max`.
pub(crate) fn config_with_backoff(initial: Duration, max: Duration) -> EnsureConfig {
    EnsureConfig::builder()
        .start_timeout(Duration::from_secs(90))
        .ready_ttl(TTL)
        .probe_timeout(Duration::from_secs(1))
        .backoff(
            rebound_retry::ExponentialBuilder::new()
                .with_initial_delay(initial)
                .with_max_delay(max)
                .without_jitter()
                .forever()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A start that counts its runs and takes `delay`, and a probe that
/// reports `up`.
pub(crate) struct Fixture {
    pub(crate) starts: Arc<AtomicU32>,
    pub(crate) up: Arc<AtomicBool>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self {
            starts: Arc::new(AtomicU32::new(0)),
            up: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn ensure(&self, delay: Duration) -> Ensure {
        let starts = Arc::clone(&self.starts);
        let up = Arc::clone(&self.up);
        let probe_up = Arc::clone(&self.up);
        Ensure::new(
            config(),
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
                let up = Arc::clone(&up);
                async move {
                    tokio::time::sleep(delay).await;
                    up.store(true, Ordering::SeqCst);
                    Ok::<_, StartError>(ReadyInfo::new(
                        "tcp://127.0.0.1:2375",
                        format!("start {n}"),
                    ))
                }
            },
            move || {
                let up = probe_up.load(Ordering::SeqCst);
                async move {
                    if up {
                        ProbeOutcome::Up(ReadyInfo::new("tcp://127.0.0.1:2375", "probe: up"))
                    } else {
                        ProbeOutcome::Down("connection refused".into())
                    }
                }
            },
        )
    }

    pub(crate) fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }
}

/// A runtime whose first start ends as `first` does (in the start task)
/// and whose later starts are ready with the message `then`; with the
/// count of starts run.
pub(crate) fn first_start_then(
    first: fn() -> Result<ReadyInfo, StartError>,
    then: &'static str,
) -> (Ensure, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let e = Ensure::new(
        config(),
        move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    first()
                } else {
                    Ok(ReadyInfo::new("e", then))
                }
            }
        },
        || async { ProbeOutcome::Down("down".into()) },
    );
    (e, runs)
}

/// Lets background tasks run for `d` of virtual time.
pub(crate) async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}
