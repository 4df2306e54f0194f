//! The polling loop the newer wait actions share (`init.wait_unix`,
//! `init.wait_exec`, ...): check, and while the target is not ready,
//! pause 1 ms, doubling up to 5 ms for the first minute and 20 ms after
//! (as `init.wait_tcp` does), keeping the last "not ready" reason for the
//! timeout message and for [`ActionContext::last_problem`].

use std::future::Future;
use std::time::Duration;

use super::{ActionContext, ActionError};

/// What one check found.
#[derive(Debug)]
pub(crate) enum Check {
    /// The condition holds.
    Ready,
    /// Not yet, for this reason (shown in the timeout message).
    NotYet(String),
    /// Will not hold by polling: the attempt fails with this error.
    Failed(ActionError),
}

/// The pauses between checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// The first pause.
    pub first: Duration,
    /// The longest pause during [`FAST_PHASE`].
    pub max: Duration,
    /// The longest pause after it.
    pub slow_max: Duration,
}

/// How long the fast polling lasts.
const FAST_PHASE: Duration = Duration::from_secs(60);

/// Cheap local checks (a connect to a socket, a file's metadata): 1 ms
/// doubling to 5 ms, 20 ms after the first minute.
pub(crate) const FAST: Pace = Pace {
    first: Duration::from_millis(1),
    max: Duration::from_millis(5),
    slow_max: Duration::from_millis(20),
};

/// Checks that cost a process or a round trip with a server (a command, a
/// database login): 1 ms doubling to 10 ms, 100 ms after the first minute.
pub(crate) const COSTLY: Pace = Pace {
    first: Duration::from_millis(1),
    max: Duration::from_millis(10),
    slow_max: Duration::from_millis(100),
};

/// Runs `check` until it is [`Check::Ready`] or [`Check::Failed`], or
/// `timeout` runs out: then the error is `"{what} not ready after
/// {timeout} ({last reason})"`.
pub(crate) async fn until<F, Fut>(
    ctx: &ActionContext,
    what: &str,
    timeout: Option<Duration>,
    pace: Pace,
    mut check: F,
) -> Result<(), ActionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check>,
{
    let mut last: Option<String> = None;
    let poll = async {
        let started = tokio::time::Instant::now();
        let mut delay = pace.first;
        loop {
            match check().await {
                Check::Ready => return Ok(()),
                Check::Failed(e) => return Err(e),
                Check::NotYet(reason) => {
                    ctx.last_problem.set(reason.as_str());
                    last = Some(reason);
                }
            }
            let cap = if started.elapsed() < FAST_PHASE {
                pace.max
            } else {
                pace.slow_max
            };
            tokio::time::sleep(delay.min(cap)).await;
            delay = (delay * 2).min(cap);
        }
    };
    within(timeout, poll).await.unwrap_or_else(|limit| {
        Err(ActionError::timed_out(format!(
            "{what} not ready after {}{}",
            humantime::format_duration(limit),
            last.map(|why| format!(" ({why})")).unwrap_or_default()
        )))
    })
}

/// `work`'s outcome, or `Err(limit)` when `timeout` (`Some(limit)`) runs
/// out first (`work` is then dropped).
pub(crate) async fn within<T>(
    timeout: Option<Duration>,
    work: impl Future<Output = T>,
) -> Result<T, Duration> {
    match timeout {
        None => Ok(work.await),
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_cap_and_the_last_reason_is_kept() {
        let ctx = quiet_ctx();
        let start = tokio::time::Instant::now();
        let mut seen = Vec::new();
        let err = until(&ctx, "thing", Some(Duration::from_millis(40)), FAST, || {
            seen.push(start.elapsed().as_millis());
            let n = seen.len();
            async move { Check::NotYet(format!("no {n}")) }
        })
        .await
        .unwrap_err();
        assert!(err.is_timeout());
        // 0, +1, +2, +4, +5, +5 ...
        assert_eq!(&seen[..6], &[0, 1, 3, 7, 12, 17]);
        let last = seen.len();
        assert_eq!(
            err.message(),
            format!("thing not ready after 40ms (no {last})")
        );
        assert_eq!(ctx.last_problem.get(), Some(format!("no {last}")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_ends_the_polling_at_once() {
        let mut n = 0;
        let err = until(&quiet_ctx(), "thing", None, FAST, || {
            n += 1;
            let k = n;
            async move {
                if k < 3 {
                    Check::NotYet("not yet".into())
                } else {
                    Check::Failed(ActionError::permanent("broken"))
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.message(), "broken");
        assert_eq!(n, 3);
    }
}
