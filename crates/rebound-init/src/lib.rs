//! Declarative init steps that really retry.
#![deny(missing_docs)]

pub mod actions;
