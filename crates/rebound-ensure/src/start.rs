//! What the caller supplies: how to start the runtime and how to probe it.

use std::future::Future;
use std::pin::Pin;

use crate::ReadyInfo;
use crate::error::StartError;

/// A boxed, sendable future, as returned by [`Start`] and [`Probe`].
///
/// ```
/// use rebound_ensure::{BoxFuture, ProbeOutcome};
/// let probe: BoxFuture<ProbeOutcome> = Box::pin(async { ProbeOutcome::Down("no".into()) });
/// # drop(probe);
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Starts the runtime: one call per start attempt.
///
/// Any `Fn() -> impl Future<Output = Result<ReadyInfo, StartError>>` closure
/// is a `Start`. The future runs in its own task; it may be dropped (start
/// timeout), so it must clean up on drop.
///
/// ```
/// use rebound_ensure::{ReadyInfo, Start, StartError};
/// fn takes(_: impl Start) {}
/// takes(|| async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) });
/// ```
pub trait Start: Send + Sync + 'static {
    /// Begins one start attempt.
    fn start(&self) -> BoxFuture<Result<ReadyInfo, StartError>>;
}

impl<F, Fut> Start for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ReadyInfo, StartError>> + Send + 'static,
{
    fn start(&self) -> BoxFuture<Result<ReadyInfo, StartError>> {
        Box::pin(self())
    }
}

/// What a probe found.
///
/// ```
/// use rebound_ensure::{ProbeOutcome, ReadyInfo};
/// let up = ProbeOutcome::Up(ReadyInfo::new("tcp://127.0.0.1:2375", "answers"));
/// assert!(up.is_up());
/// assert!(!ProbeOutcome::Down("connection refused".into()).is_up());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// The runtime answers.
    Up(ReadyInfo),
    /// It does not; the text says why.
    Down(String),
}

impl ProbeOutcome {
    /// Whether the runtime answered.
    ///
    /// ```
    /// use rebound_ensure::ProbeOutcome;
    /// assert!(!ProbeOutcome::Down("refused".into()).is_up());
    /// ```
    pub fn is_up(&self) -> bool {
        matches!(self, ProbeOutcome::Up(_))
    }
}

/// Checks whether the runtime is up, without changing anything.
///
/// Any `Fn() -> impl Future<Output = ProbeOutcome>` closure is a `Probe`.
///
/// ```
/// use rebound_ensure::{Probe, ProbeOutcome};
/// fn takes(_: impl Probe) {}
/// takes(|| async { ProbeOutcome::Down("not yet".into()) });
/// ```
pub trait Probe: Send + Sync + 'static {
    /// Runs one probe.
    fn probe(&self) -> BoxFuture<ProbeOutcome>;
}

impl<F, Fut> Probe for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ProbeOutcome> + Send + 'static,
{
    fn probe(&self) -> BoxFuture<ProbeOutcome> {
        Box::pin(self())
    }
}
