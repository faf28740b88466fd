//! Where the CSV files go: the directory given with `--out`, or a new temporary one. The
//! temporary one is kept after the run, since the summary tells the user to find the files
//! there.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub fn prepare(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(dir.to_path_buf())
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("hangfree-export-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            Ok(dir.keep())
        }
    }
}
