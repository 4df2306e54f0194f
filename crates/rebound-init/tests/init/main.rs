//! Integration tests of rebound-init: spec errors (insta snapshots),
//! the orchestrator with real actions (real commands, real sockets, real
//! files), policies in virtual time.

mod orchestrator;
mod spec_errors;
mod spec_forms;
mod spec_yaml;
