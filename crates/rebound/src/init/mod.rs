//! The parts of `rebound init` around the library: progress display, the
//! workload run after the init, and zombie reaping when rebound is PID 1.

pub mod progress;
pub mod workload;
