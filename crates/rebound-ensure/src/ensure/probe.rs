//! Running the caller's probe: once, bounded by the probe timeout, in its
//! own task so that a panic counts as down.

use std::pin::pin;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use super::{Ensure, Shared, panic_message};
use crate::machine::Phase;
use crate::status::{Response, Status};
use crate::{ProbeOutcome, fmt_duration};

impl Ensure {
    /// The answer of `ensure(false)`: a trusted Ready, or what the probe
    /// finds (after waiting out a re-probe that is running), told against
    /// the state the machine is in. Changes nothing.
    pub(super) async fn probe_only(&self) -> Response {
        loop {
            if let Some(ready) = self.try_ready() {
                return ready;
            }
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            let verifying = matches!(
                self.shared.machine.load().phase,
                Phase::Ready {
                    verifying: true,
                    ..
                }
            );
            if !verifying {
                break;
            }
            self.wait_verified(changed).await;
        }
        match run(&self.shared).await {
            ProbeOutcome::Up(info) => Response::ready(Status::Reused, Arc::new(info)),
            ProbeOutcome::Down(found) => {
                let snap = self.shared.machine.load();
                match &snap.phase {
                    Phase::Starting { .. } => Response::not_ready(Status::Starting, found, None),
                    Phase::Failed { message, retry_at } => Response::not_ready(
                        Status::Failed,
                        Arc::clone(message),
                        Some(retry_at.saturating_duration_since(Instant::now())),
                    ),
                    Phase::NotStarted { .. } | Phase::Ready { .. } => {
                        Response::not_ready(Status::NotStarted, found, None)
                    }
                }
            }
        }
    }
}

/// One probe in its own task, bounded by the probe timeout; a panic or a
/// timeout counts as down.
pub(super) async fn run(shared: &Arc<Shared>) -> ProbeOutcome {
    let limit = shared.config.probe_timeout();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return ProbeOutcome::Down("no tokio runtime to run the probe in".to_owned());
    };
    let task = handle.spawn(shared.probe.probe().in_current_span());
    let abort = task.abort_handle();
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => ProbeOutcome::Down(format!(
            "probe panicked: {}",
            panic_message(join.into_panic())
        )),
        Ok(Err(_)) => ProbeOutcome::Down("probe was cancelled".to_owned()),
        Err(_) => {
            abort.abort();
            ProbeOutcome::Down(format!("probe timed out after {}", fmt_duration(limit)))
        }
    }
}
