//! The synchronization primitives the state machine is built on.
//!
//! Normally these are std's `Arc`/`Mutex` and an [`arc_swap::ArcSwap`] for the
//! lock-free snapshot; under `--cfg loom` they are loom's models, so that
//! `tests/loom.rs` can explore every interleaving of the transitions. Loom
//! cannot see inside `arc-swap`, so there the snapshot is a loom `Mutex`
//! around an `Arc`: the same load/store contract, modelled.

pub(crate) use self::imp::{Arc, Mutex, MutexGuard, Swap};

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

    /// An atomically replaceable `Arc<T>`: loads take no lock.
    pub(crate) struct Swap<T>(arc_swap::ArcSwap<T>);

    impl<T> Swap<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(arc_swap::ArcSwap::from_pointee(value))
        }

        /// Borrows the current value without touching its reference count.
        pub(crate) fn load(&self) -> arc_swap::Guard<std::sync::Arc<T>> {
            self.0.load()
        }

        pub(crate) fn store(&self, value: T) {
            self.0.store(std::sync::Arc::new(value));
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

    /// The loom model of the snapshot cell.
    pub(crate) struct Swap<T>(loom::sync::Mutex<std::sync::Arc<T>>);

    impl<T> Swap<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(std::sync::Arc::new(value)))
        }

        pub(crate) fn load(&self) -> std::sync::Arc<T> {
            std::sync::Arc::clone(&self.0.lock().unwrap_or_else(|e| e.into_inner()))
        }

        pub(crate) fn store(&self, value: T) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(value);
        }
    }
}
