//! The Ready fast path: the trusted Ready's [`ReadyInfo`], readable by
//! reference with two atomic loads and no lock or reference count.
//!
//! Published values are kept in append-only storage (segments of doubling
//! size, each slot a `OnceLock`), so a reader's `&ReadyInfo` stays valid for
//! as long as the [`Published`] lives, without `unsafe`. Publishing an
//! answer equal to one already stored reuses its slot, so a runtime
//! restarted with the same answer (or flapping between a few) costs
//! nothing. Storage is bounded: at most [`CAP`] distinct answers get a slot.
//! Beyond that, the fast path reports [`Published::overflowed`] and callers
//! read the Ready from the machine's lock-free snapshot instead (an
//! `arc-swap` load), so a start that reports a new message every time
//! cannot grow memory without bound.

use std::sync::Arc;

use crate::ReadyInfo;

#[cfg(all(test, not(loom)))]
pub(crate) use self::imp::CAP;
#[cfg(not(loom))]
pub(crate) use self::imp::Published;

#[cfg(loom)]
pub(crate) use self::model::Published;

#[cfg(not(loom))]
mod imp {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Arc, ReadyInfo};

    /// Distinct answers that get a slot (a power of two): the inline one
    /// plus the segments'.
    pub(crate) const CAP: usize = 64;

    /// Segment `s` holds `2^s` slots (after the first slot, kept inline).
    const SEGMENTS: usize = CAP.trailing_zeros() as usize;

    /// `current` when the trusted Ready's answer has no slot (all [`CAP`]
    /// are taken by other answers): the snapshot answers instead.
    const OVERFLOW: usize = usize::MAX;

    /// One published answer: inline for [`Published::get`], shared for
    /// owned answers.
    pub(crate) struct Slot {
        pub(crate) info: ReadyInfo,
        pub(crate) shared: Arc<ReadyInfo>,
    }

    type Segment = Box<[OnceLock<Slot>]>;

    pub(crate) struct Published {
        /// 1 + the slot of the trusted Ready's info; 0 when not Ready;
        /// [`OVERFLOW`] when Ready with an answer that has no slot.
        current: AtomicUsize,
        /// Slot 0, inline: most runtimes only ever publish one answer.
        first: OnceLock<Slot>,
        segments: [OnceLock<Segment>; SEGMENTS],
        /// Slots used; only changed by the writer (under the machine lock).
        used: AtomicUsize,
    }

    /// Slot `k >= 1` lives in segment `floor(log2(k))` at `k - 2^segment`
    /// (slot 0 is inline); `None` for slot 0.
    pub(super) fn locate(slot: usize) -> Option<(usize, usize)> {
        let segment = slot.checked_ilog2()? as usize;
        Some((segment, slot - (1 << segment)))
    }

    impl Published {
        pub(crate) fn new() -> Self {
            Self {
                current: AtomicUsize::new(0),
                first: OnceLock::new(),
                segments: std::array::from_fn(|_| OnceLock::new()),
                used: AtomicUsize::new(0),
            }
        }

        #[inline]
        fn slot(&self, slot: usize) -> Option<&Slot> {
            let Some((segment, offset)) = locate(slot) else {
                return self.first.get();
            };
            self.segments.get(segment)?.get()?.get(offset)?.get()
        }

        /// The trusted Ready's answer, if it has a slot.
        #[inline]
        pub(crate) fn get(&self) -> Option<&Slot> {
            match self.current.load(Ordering::Acquire) {
                // The inline slot first: most runtimes only ever have it.
                1 => self.first.get(),
                0 | OVERFLOW => None,
                n => self.slot(n - 1),
            }
        }

        /// Whether the runtime is Ready with an answer that has no slot (the
        /// caller reads the snapshot then).
        #[inline]
        pub(crate) fn overflowed(&self) -> bool {
            self.current.load(Ordering::Acquire) == OVERFLOW
        }

        /// Makes `info` the fast path's answer. Writer only.
        pub(crate) fn set(&self, info: &Arc<ReadyInfo>) {
            let used = self.used.load(Ordering::Relaxed);
            // Reuse a slot holding the same answer (newest first).
            if let Some(same) = (0..used)
                .rev()
                .find(|&k| self.slot(k).is_some_and(|s| s.info == **info))
            {
                self.current.store(same + 1, Ordering::Release);
                return;
            }
            let cell = match locate(used) {
                None => Some(&self.first),
                Some((segment, offset)) => self.segments.get(segment).map(|cell| {
                    &cell.get_or_init(|| (0..1usize << segment).map(|_| OnceLock::new()).collect())
                        [offset]
                }),
            };
            let slot = Slot {
                info: ReadyInfo::clone(info),
                shared: Arc::clone(info),
            };
            // Out of slots (or, never, a taken one): the snapshot answers.
            match cell.map(|cell| cell.set(slot)) {
                Some(Ok(())) => {
                    self.used.store(used + 1, Ordering::Relaxed);
                    self.current.store(used + 1, Ordering::Release);
                }
                None | Some(Err(_)) => self.current.store(OVERFLOW, Ordering::Release),
            }
        }

        /// No trusted Ready: the fast path answers `None`. Writer only.
        pub(crate) fn clear(&self) {
            self.current.store(0, Ordering::Release);
        }

        #[cfg(test)]
        pub(crate) fn used(&self) -> usize {
            self.used.load(Ordering::Relaxed)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn slots_map_to_doubling_segments() {
            assert_eq!(locate(0), None);
            assert_eq!(locate(1), Some((0, 0)));
            assert_eq!(locate(2), Some((1, 0)));
            assert_eq!(locate(3), Some((1, 1)));
            assert_eq!(locate(4), Some((2, 0)));
            assert_eq!(locate(7), Some((2, 3)));
            assert_eq!(locate(8), Some((3, 0)));
        }

        proptest::proptest! {
            /// Every slot has exactly one place, inside its segment, for
            /// any `usize` (no overflow at the top).
            #[test]
            fn locate_is_a_bijection_onto_segment_places(slot in 1usize..) {
                let (segment, offset) = locate(slot).unwrap();
                proptest::prop_assert!(segment < usize::BITS as usize);
                proptest::prop_assert!(offset < 1usize << segment);
                proptest::prop_assert_eq!((1usize << segment) + offset, slot);
            }
        }

        #[test]
        fn same_answer_reuses_its_slot_and_references_stay_valid() {
            let p = Published::new();
            assert!(p.get().is_none());
            p.set(&Arc::new(ReadyInfo::new("e", "one")));
            let first: &ReadyInfo = &p.get().unwrap().info;
            p.clear();
            assert!(p.get().is_none());
            p.set(&Arc::new(ReadyInfo::new("e", "one")));
            assert_eq!(p.used(), 1);
            for n in 0..20 {
                p.set(&Arc::new(ReadyInfo::new("e", format!("n{n}"))));
            }
            assert_eq!(p.used(), 21);
            assert_eq!(p.get().unwrap().info.message(), "n19");
            assert_eq!(p.get().unwrap().shared.message(), "n19");
            // The first answer is still readable through the old reference.
            assert_eq!(first.message(), "one");
            // Going back to an older answer reuses its slot, not a new one.
            p.set(&Arc::new(ReadyInfo::new("e", "n3")));
            assert_eq!(p.used(), 21);
            assert_eq!(p.get().unwrap().info.message(), "n3");
        }

        #[test]
        fn distinct_answers_beyond_the_cap_take_no_memory_and_overflow() {
            // Ensure::ready's documentation names this number.
            assert_eq!(CAP, 64);
            let p = Published::new();
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
            assert_eq!(p.get().unwrap().info.message(), "n7");
        }
    }
}

#[cfg(loom)]
mod model {
    use loom::sync::Mutex;

    use super::{Arc, ReadyInfo};

    /// The loom model: a modelled lock around the current answer.
    pub(crate) struct Published {
        current: Mutex<Option<Arc<ReadyInfo>>>,
    }

    impl Published {
        pub(crate) fn new() -> Self {
            Self {
                current: Mutex::new(None),
            }
        }

        pub(crate) fn get(&self) -> Option<Arc<ReadyInfo>> {
            self.current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        }

        pub(crate) fn set(&self, info: &Arc<ReadyInfo>) {
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(info));
        }

        pub(crate) fn clear(&self) {
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
