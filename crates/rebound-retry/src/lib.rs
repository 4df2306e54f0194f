//! rebound-retry (under construction).
#![deny(missing_docs)]
