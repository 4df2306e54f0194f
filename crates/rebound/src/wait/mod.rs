//! `rebound wait`: targets (`tcp://`, `http(s)://`, `file://`) parsed into
//! init actions, waited for in parallel.

pub mod target;
