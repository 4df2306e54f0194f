//! The Ready fast path: the trusted Ready's answer, read with one atomic
//! load and a `OnceLock` read: no lock, no reference count, no allocation.
//!
//! Answers are kept in a fixed array of [`CAP`] write-once slots, filled in
//! order, and `current` names the slot of the trusted Ready (or none). A
//! reader's `&ReadyInfo` stays valid for as long as the [`FastPath`] lives,
//! without `unsafe`, because a filled slot is never emptied. Publishing an
//! answer equal to one already kept reuses its slot, so a runtime restarted
//! with the same answer (or flapping between a few) costs nothing. Beyond
//! [`CAP`] distinct answers, the fast path reports
//! [`overflowed`](FastPath::overflowed) and callers read the Ready from the
//! machine's snapshot instead (under its lock), so a start that reports a new
//! message every time cannot grow memory without bound.
//!
//! Why this and not the former `published.rs` (segments of doubling size
//! behind an `arc-swap` snapshot): its one caller, the agent's request
//! handler, copies the endpoint and the message at once, so lazily grown
//! segments bought little over one fixed array (about 1 KiB per runtime),
//! and loom could check neither `arc-swap` nor the segments. Every atomic
//! here comes from `crate::loom`, so `tests/loom.rs` checks the orderings
//! that production runs. The price: past the cap an owned answer takes the
//! machine's lock (short, never held across an await) instead of an
//! `arc-swap` load.

use std::sync::Arc;

use crate::ReadyInfo;
use crate::loom::sync::OnceLock;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Distinct answers that get a slot. Under loom, two: enough to model
/// reuse and overflow in a few transitions.
#[cfg(not(loom))]
pub(crate) const CAP: usize = 64;
#[cfg(loom)]
pub(crate) const CAP: usize = 2;

/// `current` when there is no trusted Ready.
const NONE: usize = 0;

/// `current` when the trusted Ready's answer has no slot (all [`CAP`] are
/// taken by other answers): the snapshot answers instead.
const OVERFLOW: usize = usize::MAX;

/// The trusted Ready's answer, readable without a lock.
pub(crate) struct FastPath {
    /// 1 + the slot of the trusted Ready's answer; [`NONE`] when not Ready
    /// (or being re-probed); [`OVERFLOW`] when Ready with an answer that
    /// has no slot. Stored with `Release` after the slot was filled, loaded
    /// with `Acquire` before the slot is read.
    current: AtomicUsize,
    /// Filled in order, each once; only the writer (under the machine's
    /// lock) fills them.
    slots: [OnceLock<Arc<ReadyInfo>>; CAP],
}

impl FastPath {
    pub(crate) fn new() -> Self {
        Self {
            current: AtomicUsize::new(NONE),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The trusted Ready's answer, if it has a slot.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Arc<ReadyInfo>> {
        // NONE wraps to usize::MAX and OVERFLOW to usize::MAX - 1: both
        // past the slots, so one bounds check covers them.
        let n = self.current.load(Ordering::Acquire);
        self.slots.get(n.wrapping_sub(1))?.get()
    }

    /// Whether the runtime is Ready with an answer that has no slot (the
    /// caller reads the snapshot then).
    #[inline]
    pub(crate) fn overflowed(&self) -> bool {
        self.current.load(Ordering::Acquire) == OVERFLOW
    }

    /// Makes `info` the fast path's answer. Writer only (machine lock held).
    pub(crate) fn set(&self, info: &Arc<ReadyInfo>) {
        for (k, slot) in self.slots.iter().enumerate() {
            let fresh = match slot.get() {
                // The same answer as one kept: reuse its slot.
                Some(kept) => **kept == **info,
                // The first free slot (the ones after it are free too).
                None => slot.set(Arc::clone(info)).is_ok(),
            };
            if fresh {
                self.current.store(k + 1, Ordering::Release);
                return;
            }
        }
        self.current.store(OVERFLOW, Ordering::Release);
    }

    /// No trusted Ready: the fast path answers `None`. Writer only.
    pub(crate) fn clear(&self) {
        self.current.store(NONE, Ordering::Release);
    }

    /// Whether a reader that finds a slot named in `current` also finds its
    /// answer there (the `Release`/`Acquire` pair above). For the loom
    /// checks.
    #[cfg(loom)]
    pub(crate) fn consistent(&self) -> bool {
        match self.current.load(Ordering::Acquire) {
            NONE | OVERFLOW => true,
            n => self.slots.get(n - 1).is_some_and(|s| s.get().is_some()),
        }
    }

    /// Slots filled.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.slots.iter().take_while(|s| s.get().is_some()).count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn same_answer_reuses_its_slot_and_references_stay_valid() {
        let p = FastPath::new();
        assert!(p.get().is_none());
        p.set(&Arc::new(ReadyInfo::new("e", "one")));
        let first: &ReadyInfo = p.get().unwrap();
        p.clear();
        assert!(p.get().is_none());
        p.set(&Arc::new(ReadyInfo::new("e", "one")));
        assert_eq!(p.used(), 1);
        for n in 0..20 {
            p.set(&Arc::new(ReadyInfo::new("e", format!("n{n}"))));
        }
        assert_eq!(p.used(), 21);
        assert_eq!(p.get().unwrap().message(), "n19");
        // The first answer is still readable through the old reference.
        assert_eq!(first.message(), "one");
        // Going back to an older answer reuses its slot, not a new one.
        p.set(&Arc::new(ReadyInfo::new("e", "n3")));
        assert_eq!(p.used(), 21);
        assert_eq!(p.get().unwrap().message(), "n3");
    }

    proptest::proptest! {
        /// Against a model (the distinct answers in first-seen order, at
        /// most CAP of them): any run of publishes and clears leaves the
        /// fast path answering the last published answer exactly when it
        /// has a slot, overflowed exactly when it has none.
        #[test]
        fn agrees_with_a_model_of_kept_answers(
            ops in proptest::collection::vec(proptest::option::of(0u8..80), 0..300),
        ) {
            let p = FastPath::new();
            let mut kept: Vec<String> = Vec::new();
            for op in ops {
                let expected = match op {
                    None => {
                        p.clear();
                        None
                    }
                    Some(n) => {
                        let message = format!("n{n}");
                        p.set(&Arc::new(ReadyInfo::new("e", message.clone())));
                        if !kept.contains(&message) && kept.len() < CAP {
                            kept.push(message.clone());
                        }
                        Some(message)
                    }
                };
                let served = expected.clone().filter(|m| kept.contains(m));
                proptest::prop_assert_eq!(p.get().map(|i| i.message().to_owned()), served.clone());
                proptest::prop_assert_eq!(p.overflowed(), expected.is_some() && served.is_none());
                proptest::prop_assert_eq!(p.used(), kept.len());
            }
        }
    }

    #[test]
    fn distinct_answers_beyond_the_cap_take_no_memory_and_overflow() {
        // Ensure::ready's documentation names this number.
        assert_eq!(CAP, 64);
        let p = FastPath::new();
        for n in 0..CAP {
            p.set(&Arc::new(ReadyInfo::new("e", format!("n{n}"))));
            assert!(!p.overflowed());
        }
        assert_eq!(p.used(), CAP);
        for n in CAP..CAP * 4 {
            p.set(&Arc::new(ReadyInfo::new("e", format!("n{n}"))));
            assert!(p.get().is_none(), "answer {n} has no slot");
            assert!(p.overflowed());
            p.clear();
            assert!(!p.overflowed());
        }
        assert_eq!(p.used(), CAP);
        // An answer that has a slot is still served by reference.
        p.set(&Arc::new(ReadyInfo::new("e", "n7")));
        assert!(!p.overflowed());
        assert_eq!(p.get().unwrap().message(), "n7");
    }
}
