//! SQLite wake-ups across processes: inotify on the journal's files.
//!
//! A SQLite journal has no server to send notifications, so its writers
//! announce their commits on the file system and its idle readers watch
//! for that with the `notify` crate (on the journal's directory: the
//! `-wal` file comes and goes).
//!
//! - **Announced commits.** After each commit that wrote something, a
//!   rebound writer opens the `-wal` file for reading and closes it again
//!   (`announce`): an inotify `IN_OPEN` that changes nothing, seen by
//!   every watcher once the commit can be read. The watch raises the
//!   journal handle's [`Wake`] at once.
//! - **Other commits** (an operator's `sqlite3`, a rebound of before the
//!   announcements) show only as writes to the `-wal` or database file,
//!   and those come before the commit's fsync and before the
//!   shared-memory index that makes it visible is updated (by `mmap`,
//!   which inotify does not see): a reader woken at once may not see it
//!   yet. For them the watch raises the signal [`DEBOUNCE`] after the
//!   first write and again after growing pauses (see `RECHECKS`); a
//!   write that comes meanwhile brings the next raise forward, never
//!   later, and an announcement ends the rechecks.
//!
//! A worker's own changes are seen too (they raise the same signal in
//! process anyway); that costs a claim after the worker's own writes,
//! never a loop: a claim that finds nothing writes and announces nothing,
//! so idle workers of several processes do not wake each other.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use notify::event::AccessKind;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::wake::{ChangeListener, Wake};
use crate::error::JournalError;

/// How long the watch collects the events of one burst before it raises
/// the signal.
pub const DEBOUNCE: Duration = Duration::from_millis(2);

/// The pauses before each raise of the signal after a write that was not
/// announced: the first ([`DEBOUNCE`]) and more, growing, since no
/// further event says when the commit became visible. So the signal is
/// raised again after 3, 5, 10, 30, 50, 150 and 250 ms (about 500 ms in
/// all; restarted by more writes), each a cheap look at the journal.
const RECHECKS: [Duration; 8] = [
    DEBOUNCE,
    Duration::from_millis(3),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(30),
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(250),
];

/// Starts watching the files of the journal at `path`, raising `wake` on
/// their changes, until the returned listener is dropped.
pub(crate) fn watch(path: &Path, wake: Wake) -> Result<ChangeListener, JournalError> {
    let fail = |e: notify::Error| JournalError::Unavailable {
        journal: format!("sqlite:{}", path.display()),
        message: format!("cannot watch the journal's files for changes: {e}"),
        source: Some(Box::new(e)),
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let Some(name) = absolute.file_name().map(|n| n.to_os_string()) else {
        return Err(JournalError::Invalid(format!(
            "journal sqlite:{}: not a file name",
            path.display()
        )));
    };
    let mut wal = name.clone();
    wal.push("-wal");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let named = |file: &OsString| {
            event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == file))
        };
        let seen = match event.kind {
            EventKind::Access(AccessKind::Open(_)) if named(&wal) => Seen::Announced,
            EventKind::Modify(_) | EventKind::Create(_) if named(&name) || named(&wal) => {
                Seen::Written
            }
            _ => return,
        };
        let _ = tx.send(seen);
    })
    .map_err(fail)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(fail)?;
    let task = tokio::spawn(async move {
        // Dropping the watcher (with the task) stops the inotify thread.
        let _watcher = watcher;
        follow(rx, wake).await;
    });
    Ok(ChangeListener::new(task, "inotify"))
}

/// Tells the processes that watch the journal's files that a commit can
/// be read now: opens its `-wal` file for reading and closes it, an
/// inotify `IN_OPEN` that changes nothing. SQLite takes no lock on the
/// `-wal` file (its locks are on the database and `-shm` files), so the
/// close releases none of this process's. Does nothing when the file
/// cannot be opened: the watchers' rechecks and the poll cover that.
pub(crate) fn announce(wal: &Path) {
    let _ = std::fs::File::open(wal);
}

/// What the watch saw of the journal's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A write to the database or its `-wal`: a commit is on its way,
    /// maybe not yet visible.
    Written,
    /// A rebound writer announced a commit that can be read now.
    Announced,
}

/// Raises `wake` for what `seen` reports until the watch ends: at once for
/// an announcement (which ends the rechecks), on the `RECHECKS` schedule
/// after writes.
async fn follow(mut seen: UnboundedReceiver<Seen>, wake: Wake) {
    // The next recheck while a write is unannounced: when, and which.
    let mut next: Option<(Instant, usize)> = None;
    loop {
        let event = match next {
            None => seen.recv().await,
            Some((at, step)) => tokio::select! {
                event = seen.recv() => event,
                () = tokio::time::sleep_until(at) => {
                    wake.signal();
                    next = RECHECKS.get(step + 1).map(|pause| (Instant::now() + *pause, step + 1));
                    continue;
                }
            },
        };
        match event {
            None => return,
            Some(Seen::Announced) => {
                wake.signal();
                next = None;
            }
            Some(Seen::Written) => {
                // Sooner, never later: a steady stream of writes does not
                // hold the raise back.
                let soon = Instant::now() + DEBOUNCE;
                let at = next.map_or(soon, |(at, _)| at.min(soon));
                next = Some((at, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn raised_after(wake: &Wake, seen: u64) -> bool {
        wake.raised() > seen
    }

    #[tokio::test(start_paused = true)]
    async fn an_announcement_raises_at_once_and_ends_the_rechecks() {
        let wake = Wake::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(follow(rx, wake.clone()));
        tx.send(Seen::Written).unwrap();
        tx.send(Seen::Announced).unwrap();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(
            wake.raised(),
            1,
            "raised by the announcement, before any pause"
        );
        // No recheck follows an announced write.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(wake.raised(), 1);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unannounced_write_is_rechecked_on_the_schedule() {
        let wake = Wake::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(follow(rx, wake.clone()));
        tx.send(Seen::Written).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(wake.raised(), RECHECKS.len() as u64);
        task.abort();
    }

    /// A write that comes while the watch waits out a long recheck pause
    /// is looked at DEBOUNCE later, not when the pause ends. (It used to
    /// wait for the pause: up to 250 ms.)
    #[tokio::test(start_paused = true)]
    async fn a_write_during_a_long_pause_brings_the_next_raise_forward() {
        let wake = Wake::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(follow(rx, wake.clone()));
        tx.send(Seen::Written).unwrap();
        // Into the last, 250 ms pause of the schedule.
        let before_last: Duration = RECHECKS[..RECHECKS.len() - 1].iter().sum();
        tokio::time::sleep(before_last + Duration::from_millis(20)).await;
        let seen = wake.raised();
        tx.send(Seen::Written).unwrap();
        tokio::time::sleep(DEBOUNCE + Duration::from_millis(1)).await;
        assert!(
            raised_after(&wake, seen),
            "the new write waited for the old pause"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_writes_does_not_hold_the_raise_back() {
        let wake = Wake::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(follow(rx, wake.clone()));
        for _ in 0..20 {
            tx.send(Seen::Written).unwrap();
            tokio::time::sleep(DEBOUNCE / 2).await;
        }
        // 20 writes a millisecond apart: raised every DEBOUNCE or so.
        assert!(wake.raised() >= 5, "raised {} times", wake.raised());
        task.abort();
    }

    /// An announcement is an open of the `-wal` file that a watch on its
    /// directory sees, and it leaves the file as it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn announce_is_an_open_of_the_wal_file_a_watch_sees() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("j.db-wal");
        std::fs::write(&wal, b"").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            if let Ok(e) = e {
                let _ = tx.send(e.kind);
            }
        })
        .unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();
        announce(&wal);
        let kind = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event")
            .unwrap();
        assert!(
            matches!(kind, EventKind::Access(AccessKind::Open(_))),
            "{kind:?}"
        );
        assert_eq!(
            std::fs::read(&wal).unwrap(),
            b"",
            "announce changed the file"
        );
    }
}
