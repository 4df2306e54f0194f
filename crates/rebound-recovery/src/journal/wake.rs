//! Wake-ups without polling: the [`Wake`] signal a journal handle raises
//! when work may have become due, and what idle workers wait on.
//!
//! Each backend holds one [`Wake`] and raises it after every change that
//! can make work claimable (a record, a cancel, a completion, a release, a
//! claim that took something), so that a worker of the same process waits
//! for it instead of the next poll. Changes made by other processes reach
//! it through the backend's own listener: PostgreSQL's `LISTEN` (see
//! `PostgresJournal::listen`) and, for SQLite, a watch on the journal's
//! files (see `SqliteJournal::watch_files`). Handles opened separately
//! in one process share a signal through `with_wake`.
//!
//! The signal is a generation counter, not a one-shot event: a listener
//! that was busy when it was raised sees it the next time it waits, so a
//! record that lands between a worker's claim and its sleep is not lost.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::JournalError;

/// A wake-up signal shared by journal handles and their idle workers.
///
/// Cloning gives another handle on the same signal.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::journal::Wake;
/// let wake = Wake::new();
/// let mut idle = wake.listen();
/// wake.signal();
/// // Raised while nobody waited: the next wait returns at once.
/// idle.wait().await;
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Wake {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for Wake {
    fn default() -> Self {
        Self::new()
    }
}

impl Wake {
    /// A new signal nobody listens to yet.
    ///
    /// ```
    /// let wake = rebound_recovery::journal::Wake::new();
    /// assert_eq!(wake.raised(), 0);
    /// ```
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Raises the signal: every listener's next (or current) wait returns.
    ///
    /// ```
    /// let wake = rebound_recovery::journal::Wake::new();
    /// wake.signal();
    /// assert_eq!(wake.raised(), 1);
    /// ```
    pub fn signal(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// How many times the signal was raised.
    ///
    /// ```
    /// let wake = rebound_recovery::journal::Wake::new();
    /// wake.signal();
    /// wake.signal();
    /// assert_eq!(wake.raised(), 2);
    /// ```
    pub fn raised(&self) -> u64 {
        *self.tx.borrow()
    }

    /// A listener that has seen every signal raised so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let wake = rebound_recovery::journal::Wake::new();
    /// wake.signal();
    /// let mut idle = wake.listen();
    /// // Nothing new since it listened: the wait times out.
    /// assert!(tokio::time::timeout(Duration::from_millis(10), idle.wait()).await.is_err());
    /// # });
    /// ```
    pub fn listen(&self) -> WakeListener {
        WakeListener {
            rx: self.tx.subscribe(),
        }
    }

    /// Whether `other` is a handle on the same signal.
    ///
    /// ```
    /// use rebound_recovery::journal::Wake;
    /// let wake = Wake::new();
    /// assert!(wake.same_as(&wake.clone()));
    /// assert!(!wake.same_as(&Wake::new()));
    /// ```
    pub fn same_as(&self, other: &Wake) -> bool {
        Arc::ptr_eq(&self.tx, &other.tx)
    }
}

/// One waiter on a [`Wake`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let wake = rebound_recovery::journal::Wake::new();
/// let mut idle = wake.listen();
/// let raiser = wake.clone();
/// tokio::spawn(async move { raiser.signal() });
/// idle.wait().await;
/// # });
/// ```
#[derive(Debug)]
pub struct WakeListener {
    rx: watch::Receiver<u64>,
}

impl WakeListener {
    /// Forgets the signals raised so far: the next [`wait`](Self::wait)
    /// waits for a new one. A worker calls this before it claims.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let wake = rebound_recovery::journal::Wake::new();
    /// let mut idle = wake.listen();
    /// wake.signal();
    /// idle.mark_seen();
    /// assert!(tokio::time::timeout(Duration::from_millis(10), idle.wait()).await.is_err());
    /// # });
    /// ```
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Returns once the signal was raised since the last wait or
    /// [`mark_seen`](Self::mark_seen) (at once if it already was).
    /// Never returns when every [`Wake`] handle is gone.
    pub async fn wait(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What carries the changes other processes make to a journal handle's
/// [`Wake`]: PostgreSQL's `LISTEN` on a connection of its own, or a watch
/// on a SQLite journal's files. Stops when dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::{AnyJournal, JournalAddress};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = AnyJournal::open(&JournalAddress::Sqlite(dir.path().join("j.db")), Default::default()).await.unwrap();
/// let listener = journal.listen().await.unwrap().expect("SQLite journals are watched");
/// assert_eq!(listener.mechanism(), "inotify");
/// // The memory journal lives in this process: nothing to listen to.
/// assert!(AnyJournal::open(&JournalAddress::Memory, Default::default()).await.unwrap().listen().await.unwrap().is_none());
/// # });
/// ```
#[derive(Debug)]
pub struct ChangeListener {
    task: tokio::task::JoinHandle<()>,
    mechanism: &'static str,
}

impl ChangeListener {
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn new(task: tokio::task::JoinHandle<()>, mechanism: &'static str) -> Self {
        Self { task, mechanism }
    }

    /// How changes arrive: `"LISTEN"` (PostgreSQL) or `"inotify"`
    /// (SQLite).
    pub fn mechanism(&self) -> &'static str {
        self.mechanism
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl super::AnyJournal {
    /// Shares `wake` with other journal handles of this process (each
    /// raises it after its changes), so that one listener and one signal
    /// serve several workers, each with its own connection.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{AnyJournal, Journal, JournalAddress, journal::Wake};
    /// let shared = Wake::new();
    /// let journal = AnyJournal::open(&JournalAddress::Memory, Default::default()).await.unwrap();
    /// let journal = journal.with_wake(shared.clone());
    /// assert!(journal.wake().unwrap().same_as(&shared));
    /// # });
    /// ```
    #[must_use]
    pub fn with_wake(self, wake: Wake) -> Self {
        match self {
            Self::Memory(j) => Self::Memory(j.with_wake(wake)),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(j) => Self::Sqlite(j.with_wake(wake)),
            #[cfg(feature = "postgres")]
            Self::Postgres(j) => Self::Postgres(Box::new(j.with_wake(wake))),
        }
    }

    /// Starts carrying other processes' changes to this handle's
    /// [`Wake`]: `LISTEN` on PostgreSQL (see
    /// [`PostgresJournal::listen`](super::postgres::PostgresJournal::listen)),
    /// a file watch on SQLite (see
    /// [`SqliteJournal::watch_files`](super::sqlite::SqliteJournal::watch_files));
    /// `None` for the memory journal, which no other process reaches.
    pub async fn listen(&self) -> Result<Option<ChangeListener>, JournalError> {
        match self {
            Self::Memory(_) => Ok(None),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(j) => j.watch_files().map(Some),
            #[cfg(feature = "postgres")]
            Self::Postgres(j) => Ok(Some(j.listen().await)),
        }
    }
}

/// The earliest of the due times in `times` after `now_ms`: what
/// [`Journal::next_due_after`](super::Journal::next_due_after) answers,
/// from a recovery's `(state, next_attempt_ms, lease_expires_ms)`.
pub(crate) fn earliest_after(
    now_ms: u64,
    times: impl IntoIterator<Item = Option<u64>>,
) -> Option<u64> {
    times.into_iter().flatten().filter(|t| *t > now_ms).min()
}

/// When a recovery next becomes claimable by time alone: a pending one
/// when its delay ends, a running one when its lease runs out.
pub(crate) fn due_time(rec: &crate::model::Recovery) -> Option<u64> {
    use crate::model::RecoveryState;
    match rec.state {
        RecoveryState::Pending => rec.next_attempt_ms,
        RecoveryState::Running => rec.lease_expires_ms,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_after_skips_past_and_missing_times() {
        assert_eq!(
            earliest_after(100, [Some(50), None, Some(300), Some(200)]),
            Some(200)
        );
        assert_eq!(earliest_after(100, [Some(100), None]), None);
    }

    #[tokio::test]
    async fn a_signal_raised_before_the_wait_is_not_lost() {
        let wake = Wake::new();
        let mut a = wake.listen();
        let mut b = wake.listen();
        wake.signal();
        // Both see it, each once.
        a.wait().await;
        b.wait().await;
        let again = tokio::time::timeout(std::time::Duration::from_millis(5), a.wait()).await;
        assert!(again.is_err());
    }
}
