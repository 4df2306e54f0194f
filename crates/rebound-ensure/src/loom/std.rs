//! The shim in production: std's types.

pub(crate) mod sync {
    pub(crate) use ::std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    pub(crate) mod atomic {
        pub(crate) use ::std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    }
}
