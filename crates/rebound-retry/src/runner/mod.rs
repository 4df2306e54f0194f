//! Running an operation under a policy: the blocking runner, the async
//! runner (feature `tokio`), their shared decisions (public as
//! [`RetryPolicy`] for hand-written loops and middleware), the error they return
//! and the retry budget.

mod blocking;
mod budget;
mod clock;
mod error;
#[cfg(feature = "tokio")]
mod future;
mod hooks;
mod manual;
mod policy;

pub use blocking::{BlockingRetry, BlockingRetryable};
pub use budget::{BudgetError, RetryBudget};
pub use error::{RetryError, StopReason};
#[cfg(feature = "tokio")]
pub use future::{Retry, Retryable};
pub use hooks::{NoNotify, Notify, RetryAll, When};
pub use manual::RetryPolicy;
