//! A retry budget shared by many callers (gRPC retry throttling).

use std::sync::atomic::{AtomicU32, Ordering};

/// Token arithmetic is in thousandths, as gRPC specifies for `tokenRatio`.
const SCALE: u32 = 1000;

/// Caps retries across every caller that shares it, so that retries cannot
/// multiply the load on a dependency that is down.
///
/// gRPC retry-throttling semantics: the bucket starts full with
/// `max_tokens`; every failed attempt that would be retried takes one token,
/// every success gives back `token_ratio`; retries are refused while the
/// bucket holds `max_tokens / 2` or fewer. During an outage the bucket drains
/// after about `max_tokens / 2` failures and only first attempts go out;
/// successes refill it once the dependency is back.
///
/// Share it with `Arc` and pass it to each runner with `.budget(..)`.
///
/// ```
/// use rebound_retry::RetryBudget;
/// let budget = RetryBudget::new(4, 0.5)?;
/// assert!(budget.can_retry());
/// budget.record_failure(); // 3 left: still above half
/// assert!(budget.can_retry());
/// budget.record_failure(); // 2 left: at half, retries stop
/// assert!(!budget.can_retry());
/// budget.record_success(); // 2.5: above half again
/// assert!(budget.can_retry());
/// # Ok::<(), rebound_retry::BudgetError>(())
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    /// Capacity, in thousandths of a token.
    max: u32,
    /// Refund per success, in thousandths of a token.
    ratio: u32,
    /// Current level, in thousandths of a token.
    tokens: AtomicU32,
}

/// Invalid [`RetryBudget`] settings.
///
/// ```
/// use rebound_retry::{BudgetError, RetryBudget};
/// assert!(matches!(RetryBudget::new(0, 0.1), Err(BudgetError::MaxTokens { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// `max_tokens` outside 1..=1000 (gRPC's range).
    #[error("max tokens must be in 1..=1000, got {value}")]
    MaxTokens {
        /// The rejected value.
        value: u32,
    },
    /// `token_ratio` not a finite number in (0, max_tokens], or finer than
    /// a thousandth.
    #[error("token ratio must be a number in 0.001..=max tokens, got {value}")]
    TokenRatio {
        /// The rejected value.
        value: f64,
    },
}

impl Default for RetryBudget {
    /// 10 tokens, 0.1 refunded per success (the values of gRPC's example
    /// service config).
    fn default() -> Self {
        Self {
            max: 10 * SCALE,
            ratio: SCALE / 10,
            tokens: AtomicU32::new(10 * SCALE),
        }
    }
}

impl RetryBudget {
    /// A full bucket of `max_tokens` (1..=1000) refunding `token_ratio` per
    /// success (at least 0.001, at most `max_tokens`).
    ///
    /// # Errors
    ///
    /// [`BudgetError`] for values outside those ranges.
    ///
    /// ```
    /// # use rebound_retry::RetryBudget;
    /// assert!(RetryBudget::new(10, 0.1).is_ok());
    /// assert!(RetryBudget::new(10, f64::NAN).is_err());
    /// ```
    pub fn new(max_tokens: u32, token_ratio: f64) -> Result<Self, BudgetError> {
        if !(1..=1000).contains(&max_tokens) {
            return Err(BudgetError::MaxTokens { value: max_tokens });
        }
        let max = max_tokens * SCALE;
        let scaled = (token_ratio * f64::from(SCALE)).round();
        if !(token_ratio.is_finite() && scaled >= 1.0 && scaled <= f64::from(max)) {
            return Err(BudgetError::TokenRatio { value: token_ratio });
        }
        Ok(Self {
            max,
            // In 1..=max (checked above), so the cast is exact.
            ratio: scaled as u32,
            tokens: AtomicU32::new(max),
        })
    }

    /// Whether a retry may go out now: the bucket holds more than half.
    ///
    /// ```
    /// # use rebound_retry::RetryBudget;
    /// assert!(RetryBudget::default().can_retry());
    /// ```
    pub fn can_retry(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.max / 2
    }

    /// A retryable attempt failed: take one token (never below zero).
    ///
    /// ```
    /// # use rebound_retry::RetryBudget;
    /// let b = RetryBudget::new(1, 1.0)?;
    /// b.record_failure();
    /// b.record_failure();
    /// assert_eq!(b.tokens(), 0.0);
    /// # Ok::<(), rebound_retry::BudgetError>(())
    /// ```
    pub fn record_failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(SCALE))
            });
    }

    /// An attempt succeeded: give back `token_ratio` (never above the max).
    ///
    /// ```
    /// # use rebound_retry::RetryBudget;
    /// let b = RetryBudget::new(2, 0.25)?;
    /// b.record_success();
    /// assert_eq!(b.tokens(), 2.0);
    /// # Ok::<(), rebound_retry::BudgetError>(())
    /// ```
    pub fn record_success(&self) {
        let (max, ratio) = (self.max, self.ratio);
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ratio).min(max))
            });
    }

    /// The current level, in tokens.
    ///
    /// ```
    /// # use rebound_retry::RetryBudget;
    /// assert_eq!(RetryBudget::default().tokens(), 10.0);
    /// ```
    pub fn tokens(&self) -> f64 {
        f64::from(self.tokens.load(Ordering::Relaxed)) / f64::from(SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn rejects_out_of_range_settings() {
        assert_eq!(
            RetryBudget::new(1001, 0.1).unwrap_err(),
            BudgetError::MaxTokens { value: 1001 }
        );
        for bad in [0.0, -1.0, 0.0004, 11.0, f64::INFINITY, f64::NAN] {
            assert!(
                matches!(
                    RetryBudget::new(10, bad),
                    Err(BudgetError::TokenRatio { .. })
                ),
                "{bad}"
            );
        }
        assert!(RetryBudget::new(1000, 0.001).is_ok());
    }

    #[test]
    fn drains_to_half_then_refills_by_ratio() {
        let b = RetryBudget::new(10, 0.5).unwrap();
        for _ in 0..4 {
            b.record_failure();
        }
        assert!(b.can_retry(), "6 tokens > 5");
        b.record_failure();
        assert!(!b.can_retry(), "5 tokens is not above half");
        for _ in 0..100 {
            b.record_failure();
        }
        assert_eq!(b.tokens(), 0.0);
        for _ in 0..11 {
            b.record_success();
        }
        assert!(b.can_retry(), "5.5 tokens");
        for _ in 0..100 {
            b.record_success();
        }
        assert_eq!(b.tokens(), 10.0);
    }

    #[test]
    fn shared_between_threads() {
        let b = Arc::new(RetryBudget::new(1000, 1.0).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        b.record_failure();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(b.tokens(), 600.0);
    }
}
