//! SQLite wake-ups across processes: inotify on the journal's files.
//!
//! A SQLite journal has no server to send notifications, but every commit
//! writes the `-wal` file (and a checkpoint the database file). The watch
//! follows the journal's directory (the `-wal` file comes and goes) with
//! the `notify` crate, keeps the modifications and creations of those two
//! files, and raises the journal handle's [`Wake`] once per burst: the
//! events of one commit arrive within a millisecond or two, so the watch
//! waits [`DEBOUNCE`] after the first one and takes the rest with it; it
//! raises the signal again a little later, for a commit that becomes
//! visible only after its fsync (see `RECHECKS`).
//!
//! A worker's own changes are seen too (they raise the same signal in
//! process anyway); that costs a few extra claims after the worker's own
//! writes, never a loop: a claim that finds nothing writes nothing, so an
//! idle worker makes no events of its own.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::wake::{ChangeListener, Wake};
use crate::error::JournalError;

/// How long the watch collects the events of one burst before it raises
/// the signal.
pub const DEBOUNCE: Duration = Duration::from_millis(2);

/// The pauses before each raise of the signal after a burst: the first
/// ([`DEBOUNCE`]) and more, growing. A commit's last write to the `-wal`
/// file comes before its fsync and before the shared-memory index that
/// makes it visible is updated (by `mmap`, which inotify does not see): a
/// reader woken at once may not see it yet, and no further event would
/// say when it can. So the signal is raised again after 3, 5, 10, 30, 50,
/// 150 and 250 ms (about 500 ms in all; restarted while more events
/// arrive), each a cheap look at the journal.
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
    let files: [OsString; 2] = [name, wal];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
            return;
        }
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| files.iter().any(|f| f == n)));
        if ours {
            let _ = tx.send(());
        }
    })
    .map_err(fail)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(fail)?;
    let task = tokio::spawn(async move {
        // Dropping the watcher (with the task) stops the inotify thread.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            let mut step = 0;
            while let Some(delay) = RECHECKS.get(step) {
                tokio::time::sleep(*delay).await;
                let mut more = false;
                while rx.try_recv().is_ok() {
                    more = true;
                }
                wake.signal();
                // Still being written: keep looking closely.
                step = if more { 1 } else { step + 1 };
            }
        }
    });
    Ok(ChangeListener::new(task, "inotify"))
}
