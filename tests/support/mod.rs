//! Helpers shared by the integration tests that talk to real servers.
#![allow(dead_code)]

pub mod example;
pub mod pg;
pub mod proxy;
