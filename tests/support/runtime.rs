//! The runtime the race tests run on: two workers, as the CI machine has two cores.
//! Use it with `#[path = "support/runtime.rs"] mod runtime;`.

/// A multi-thread runtime with two workers and every driver.
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
