//! How an idle worker waits: until the journal's wake-up signal (a
//! change in this process, or one another process announced; see
//! [`journal::wake`](crate::journal::wake)), the earliest due time in the
//! journal, or the poll interval, whichever comes first.

use std::time::Duration;

use super::RecoveryWorker;
use crate::journal::{Journal, WakeListener};

impl<J: Journal, M, R, C> RecoveryWorker<J, M, R, C> {
    /// Waits after a claim that found nothing. The poll interval is the
    /// fallback for a journal without a signal, or a change no signal
    /// reported (a lost notification, a listener that is reconnecting).
    pub(super) async fn idle(&self, woken: Option<&mut WakeListener>) {
        let wait = self.idle_wait().await;
        match woken {
            Some(listener) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = listener.wait() => {}
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }

    /// The poll interval, or less when a recovery becomes due sooner (a
    /// millisecond after its due time, so that the claim then finds it
    /// due by the worker's millisecond clock).
    async fn idle_wait(&self) -> Duration {
        let now = self.clock.now_ms();
        match self.journal.next_due_after(now).await {
            Ok(Some(due)) => self.poll.min(Duration::from_millis(
                due.saturating_sub(now).saturating_add(1),
            )),
            Ok(None) => self.poll,
            Err(e) => {
                // The next claim meets the same journal and reports it.
                tracing::debug!(error = %e, "could not read the next due time; polling");
                self.poll
            }
        }
    }
}
