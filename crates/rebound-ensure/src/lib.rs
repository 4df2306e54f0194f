//! rebound-ensure (under construction).
#![deny(missing_docs)]
