//! rebound-init (under construction).
#![deny(missing_docs)]
