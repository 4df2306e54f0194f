//! Shared helpers of the actions tests.
#![allow(dead_code)]

pub mod s3;
pub mod steps;
