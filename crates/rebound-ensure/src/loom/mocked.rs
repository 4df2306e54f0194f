//! The shim under `--cfg loom`: loom's models.

pub(crate) mod sync {
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

    pub(crate) use self::once_lock::OnceLock;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    }

    mod once_lock {
        use loom::sync::atomic::{AtomicBool, Ordering};

        /// std's `OnceLock` as loom sees it: the value becomes visible to
        /// another thread only once that thread's acquire load of a loom
        /// flag reads the setter's release store, as std's `OnceLock`
        /// promises. The std cell inside only holds the value (loom runs
        /// its threads one at a time, so it never races).
        pub(crate) struct OnceLock<T> {
            set: AtomicBool,
            value: std::sync::OnceLock<T>,
        }

        impl<T> OnceLock<T> {
            pub(crate) fn new() -> Self {
                Self {
                    set: AtomicBool::new(false),
                    value: std::sync::OnceLock::new(),
                }
            }

            pub(crate) fn get(&self) -> Option<&T> {
                if self.set.load(Ordering::Acquire) {
                    self.value.get()
                } else {
                    None
                }
            }

            pub(crate) fn set(&self, value: T) -> Result<(), T> {
                self.value.set(value)?;
                self.set.store(true, Ordering::Release);
                Ok(())
            }
        }
    }
}
