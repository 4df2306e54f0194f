//! The start task: spawns one start, bounds it by the start timeout,
//! catches its panic, and publishes the outcome.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use super::stats::Counters;
use super::{Shared, panic_message, ttl};
use crate::error::StartError;
use crate::fmt_duration;
use crate::machine::StartTicket;
use crate::status::ReadyInfo;

/// Why a start could not even be spawned.
pub(super) const NO_RUNTIME: &str = "no tokio runtime to run the start in";

/// Spawns the start of `ticket` on the current tokio runtime. Without one,
/// the start fails at once (the machine goes to Failed) and the wait before
/// the next start is returned as the error.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    ticket: StartTicket,
) -> Result<(), Option<std::time::Duration>> {
    Counters::bump(&shared.counters.starts);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            shared.feed.publish(&shared.machine);
            // The caller's span (an agent's `runtime{name}`) follows the
            // start, its log lines and the TTL probes after it.
            handle.spawn(supervise(Arc::clone(shared), ticket).in_current_span());
            Ok(())
        }
        Err(_) => {
            let retry_after = ticket.fail(NO_RUNTIME, Instant::now());
            Counters::bump(&shared.counters.failures);
            shared.changed.notify_waiters();
            shared.feed.publish(&shared.machine);
            Err(retry_after)
        }
    }
}

/// Runs one start in its own task (so a panic is caught as a `JoinError`),
/// bounded by the start timeout, publishes the outcome, and then keeps the
/// Ready honest by re-probing it every TTL.
async fn supervise(shared: Arc<Shared>, ticket: StartTicket) {
    let begun = Instant::now();
    let generation = ticket.generation();
    let task = tokio::spawn(
        {
            let shared = Arc::clone(&shared);
            async move { shared.start.start().await }
        }
        .in_current_span(),
    );
    let abort = task.abort_handle();
    let limit = shared.config.start_timeout();
    let outcome = tokio::time::timeout(limit, task).await;
    let now = Instant::now();
    let c = &shared.counters;
    let mut caused_by = None;
    let result: Result<ReadyInfo, String> = match outcome {
        Ok(Ok(Ok(info))) => Ok(info),
        Ok(Ok(Err(err))) => {
            caused_by = cause_chain(&err);
            Err(err.message().to_owned())
        }
        Ok(Err(join)) if join.is_panic() => {
            Counters::bump(&c.panics);
            Err(format!(
                "runtime start panicked: {}",
                panic_message(join.into_panic())
            ))
        }
        Ok(Err(_)) => Err("runtime start was cancelled".to_owned()),
        Err(_) => {
            abort.abort();
            Counters::bump(&c.timeouts);
            Err(format!("start timed out after {}", fmt_duration(limit)))
        }
    };
    let ready = result.is_ok();
    match result {
        Ok(info) => {
            tracing::info!(endpoint = info.endpoint(), "runtime ready");
            ticket.succeed(info, now);
            Counters::bump(&c.ready);
        }
        Err(message) => {
            Counters::bump(&c.failures);
            let wait = ticket.fail(&message, now);
            tracing::warn!(
                %message,
                caused_by,
                retry_after_ms = wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
                "runtime start failed"
            );
        }
    }
    c.finished(now.duration_since(begun));
    shared.changed.notify_waiters();
    shared.feed.publish(&shared.machine);
    if ready {
        let weak = Arc::downgrade(&shared);
        drop(shared);
        ttl::watch(weak, generation).await;
    }
}

/// The causes under a start's error, outermost first, joined by `: `;
/// `None` when it has no source. Logged beside the message, which callers
/// see alone.
fn cause_chain(err: &StartError) -> Option<String> {
    let mut cause = std::error::Error::source(err);
    let mut chain = Vec::new();
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    (!chain.is_empty()).then(|| chain.join(": "))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("mount failed")]
    struct Mount(#[source] std::io::Error);

    #[test]
    fn the_whole_chain_under_a_start_error_is_logged() {
        assert_eq!(cause_chain(&StartError::new("plain")), None);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "/dev/kvm");
        let err = StartError::with_source("vm did not boot", Mount(io));
        assert_eq!(cause_chain(&err).as_deref(), Some("mount failed: /dev/kvm"));
    }
}
