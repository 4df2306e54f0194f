//! The TTL task: keeps a Ready honest by re-probing it each time its TTL
//! runs out.

use std::sync::Weak;

use tokio::time::Instant;

use super::stats::Counters;
use super::{Shared, probe};
use crate::ProbeOutcome;
use crate::machine::Machine;

/// Re-probes a Ready of `generation` each time its TTL runs out, until the
/// machine moves on, the runtime is found dead, or the
/// [`Ensure`](crate::Ensure) is gone (the task holds only a weak reference).
pub(super) async fn watch(weak: Weak<Shared>, generation: u64) {
    loop {
        let Some(ttl) = weak.upgrade().and_then(|s| s.config.ready_ttl()) else {
            return;
        };
        tokio::time::sleep(ttl).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let Some(ticket) = Machine::begin_verify(&shared.machine, generation) else {
            return;
        };
        let outcome = probe::run(&shared).await;
        let now = Instant::now();
        let alive = match outcome {
            ProbeOutcome::Up(_) => {
                ticket.confirm(now);
                true
            }
            ProbeOutcome::Down(found) => {
                tracing::warn!(%found, "ready runtime no longer answers its probe");
                ticket.lost(&format!("runtime stopped answering: {found}"), now);
                Counters::bump(&shared.counters.lost);
                shared.feed.publish(&shared.machine);
                false
            }
        };
        shared.changed.notify_waiters();
        if !alive {
            return;
        }
    }
}
