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
    /// `claimed_at` is the clock reading the empty claim was made at:
    /// what became due after it was not looked for.
    pub(super) async fn idle(&self, claimed_at: u64, woken: Option<&mut WakeListener>) {
        let wait = self.idle_wait(claimed_at).await;
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
    ///
    /// Due times are looked for after `claimed_at`, not after the clock
    /// now: a recovery that became due between the empty claim and this
    /// look (in the same millisecond, typically) would otherwise be
    /// neither claimed nor waited for, and wait for the next poll.
    async fn idle_wait(&self, claimed_at: u64) -> Duration {
        match self.journal.next_due_after(claimed_at).await {
            Ok(Some(due)) => self.poll.min(Duration::from_millis(
                due.saturating_sub(self.clock.now_ms()).saturating_add(1),
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
