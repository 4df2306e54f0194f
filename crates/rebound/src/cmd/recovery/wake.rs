//! `rebound recovery run` and `list --watch`: hearing of other processes'
//! changes (LISTEN on PostgreSQL, a watch on the SQLite files).

use rebound_recovery::AnyJournal;
use rebound_recovery::journal::ChangeListener;

use crate::output::err;

/// Starts listening for other processes' changes to `journal`; when that
/// cannot start, says so and returns `None`: the poll interval serves.
pub(super) async fn listen(journal: &AnyJournal) -> Option<ChangeListener> {
    match journal.listen().await {
        Ok(listener) => {
            tracing::debug!(
                mechanism = listener.as_ref().map(|l| l.mechanism()),
                "listening for changes"
            );
            listener
        }
        Err(e) => {
            err!("rebound: cannot listen for changes to the journal, polling instead: {e}");
            None
        }
    }
}
