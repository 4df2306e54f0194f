//! The synchronization primitives the crate is built on, in one place (the
//! pattern of tokio's `src/loom/`).
//!
//! Production code imports `crate::loom::sync::{Arc, Mutex, OnceLock}` and
//! `crate::loom::sync::atomic::*`: std's types normally, loom's models under
//! `--cfg loom`. So `tests/loom.rs` explores every interleaving of the very
//! code that runs in production (the machine's lock and the atomics of the
//! Ready fast path), not a stand-in.
//!
//! Loom has no `OnceLock`; [`mocked`]'s stands in for it under `--cfg loom`
//! (a loom atomic flag decides when the value becomes visible).

#[cfg(not(loom))]
mod std;
#[cfg(not(loom))]
pub(crate) use self::std::sync;

#[cfg(loom)]
mod mocked;
#[cfg(loom)]
pub(crate) use self::mocked::sync;
