//! One folder per command. Each has an `Args` struct (clap derive) and a
//! `run` function that returns the exit code (or an error carrying one);
//! `crate::cli` lists them and the crate root dispatches. A command uses the
//! shared subsystems (`agent`, `child`, `signal`, `exit`, `output`,
//! `runtime`), never another command.

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "agent")]
pub mod ensure;
pub mod init;
#[cfg(feature = "recovery")]
pub mod recovery;
pub mod retry;
#[cfg(feature = "schema")]
pub mod schema;
pub mod wait;
