//! rebound-recovery (under construction).
#![deny(missing_docs)]
