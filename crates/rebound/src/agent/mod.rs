//! `rebound agent` (server) and `rebound ensure` (its host-side client):
//! the agent config, the HTTP/1.1 JSON protocol, metrics.

pub mod addr;
pub mod client;
pub mod config;
pub mod events;
pub mod listener;
pub mod metrics;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod sse;
pub mod token;
