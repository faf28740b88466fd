//! Helpers shared by the integration tests: real servers, example binaries, logged events.
#![allow(dead_code)]

#[cfg(feature = "tracing")]
pub mod events;
pub mod example;
pub mod pg;
pub mod proxy;
