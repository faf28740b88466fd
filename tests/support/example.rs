//! Finding the example binaries that `cargo test` builds before it runs the tests.

use std::path::{Path, PathBuf};

/// The path of example `name`, next to this test's own executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} not built: run through `cargo test`",
        binary.display()
    );
    binary
}
