//! A feed of state changes: [`Ensure::subscribe`](crate::Ensure::subscribe).
//!
//! Every transition a watcher cares about (a start begins, it ends ready or
//! failed, a ready runtime is found dead) publishes the new [`StateView`] on
//! a bounded broadcast channel. Publishing never waits: a subscriber that
//! falls more than [`FEED_CAPACITY`] changes behind gets
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged)
//! and should read [`Ensure::state`](crate::Ensure::state) afresh.

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::machine::{Machine, Phase, Snapshot};
use crate::status::{StateKind, StateView};

/// How many changes a subscriber may fall behind before it lags.
pub const FEED_CAPACITY: usize = 32;

/// The sending side, one per [`Ensure`](crate::Ensure).
pub(crate) struct Feed {
    tx: broadcast::Sender<StateView>,
}

impl Feed {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StateView> {
        self.tx.subscribe()
    }

    /// Publishes the machine's state as it is now (nothing to do without
    /// subscribers; never waits).
    pub(crate) fn publish(&self, machine: &Machine) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(view(&machine.load(), Instant::now()));
        }
    }
}

/// The view of a snapshot at `now`.
pub(crate) fn view(snap: &Snapshot, now: Instant) -> StateView {
    let mut view = StateView {
        kind: StateKind::NotStarted,
        endpoint: None,
        message: None,
        for_time: now.saturating_duration_since(snap.since),
        failures: snap.failures,
        retry_after: None,
        verifying: false,
    };
    match &snap.phase {
        Phase::NotStarted { message } => {
            view.message = message.as_deref().map(str::to_owned);
        }
        Phase::Starting { previous } => {
            view.kind = StateKind::Starting;
            view.message = previous
                .as_deref()
                .map(|m| format!("the previous start failed: {m}"));
        }
        Phase::Ready { info, verifying } => {
            view.kind = StateKind::Ready;
            view.endpoint = Some(info.endpoint().to_owned());
            view.message = Some(info.message().to_owned());
            view.verifying = *verifying;
        }
        Phase::Failed { message, retry_at } => {
            view.kind = StateKind::Failed;
            view.message = Some(message.to_string());
            view.retry_after = Some(retry_at.saturating_duration_since(now));
        }
    }
    view
}
