//! Where `elapsed` starts when no deadline needs the precise clock.
//!
//! The blocking runner marks the first failed attempt so that
//! [`RetryError::elapsed`](crate::RetryError::elapsed) can be reported if
//! the call stops. On Linux the mark is read from `CLOCK_MONOTONIC_COARSE`
//! (the kernel's time at its last tick: a few loads from the vDSO page,
//! through glibc; no TSC read, which costs about 20 ns on a virtual
//! machine); the stop reads the
//! precise `CLOCK_MONOTONIC`, which shares its time base. The coarse mark
//! is never later than the moment it stands for and at most one tick
//! (1-10 ms, `CONFIG_HZ`) earlier, so `elapsed` may be that much longer
//! than the time measured from the precise clock. Elsewhere both are
//! [`Instant`](std::time::Instant).

use std::time::Duration;

/// A mark on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(
    #[cfg(target_os = "linux")] Duration,
    #[cfg(not(target_os = "linux"))] std::time::Instant,
);

#[cfg(target_os = "linux")]
fn read(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    // The monotonic clocks never go below zero.
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

impl Mark {
    /// Now, from the cheap clock.
    #[inline]
    pub(crate) fn coarse() -> Self {
        #[cfg(target_os = "linux")]
        return Self(read(rustix::time::ClockId::MonotonicCoarse));
        #[cfg(not(target_os = "linux"))]
        return Self(std::time::Instant::now());
    }

    /// Time since the mark, from the precise clock.
    pub(crate) fn elapsed(self) -> Duration {
        #[cfg(target_os = "linux")]
        return read(rustix::time::ClockId::Monotonic).saturating_sub(self.0);
        #[cfg(not(target_os = "linux"))]
        return self.0.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_grows_and_is_never_short_of_the_precise_clock() {
        let mark = Mark::coarse();
        let precise = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        // The precise end first: the coarse one then ends no earlier.
        let exact = precise.elapsed();
        let coarse = mark.elapsed();
        assert!(coarse >= exact, "{coarse:?} < {exact:?}");
        // About one tick more at most (10 ms at CONFIG_HZ=100), with room
        // for a loaded machine between the two reads.
        assert!(
            coarse <= exact + Duration::from_millis(50),
            "{coarse:?} vs {exact:?}"
        );
    }
}
