//! Declarative init steps that really retry.
//!
//! rebound-init reads ZLayer's init format (`init.steps[]` with `id`,
//! `uses`, `with`, `timeout`, `retry`, `on_failure`, and
//! `errors.on_init_failure`), rejects anything invalid before a step runs
//! ([`spec`]), and runs the steps ([`orchestrator`]): per-step retries with
//! backoff from rebound-retry, step timeouts that cover the retries, warn
//! and continue policies, and init restarts that resume at the failed step.
//! Progress is reported as [`events::Event`]s.
//!
//! ```
//! use rebound_init::{orchestrator::Runner, spec::Spec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = Spec::from_yaml(
//!     r#"
//! init:
//!   steps:
//!     - id: config
//!       uses: init.run
//!       with: { command: ["true"] }
//!       retry: 2
//! "#,
//!     "inline.yaml",
//!     None,
//! )?;
//! let summary = Runner::new(&spec).run().await?;
//! assert_eq!(summary.steps[0].attempts, 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod actions;
pub mod events;
pub mod orchestrator;
pub mod spec;

/// The formatter of an error's source chain, shared with the other rebound
/// crates.
pub use rebound_retry::error_chain;
