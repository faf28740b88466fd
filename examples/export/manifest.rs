//! The export's manifest: which tables are complete, with their row counts. Written to a
//! temporary file and renamed after every table, so that a job killed at any moment
//! leaves either the old manifest or the new one, never half of one. A run with the same
//! output directory skips the tables the manifest lists whose files are still there.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const FILE: &str = "manifest.tsv";

#[derive(Debug, Default)]
pub struct Manifest {
    path: PathBuf,
    done: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn load(dir: &Path) -> io::Result<Manifest> {
        let path = dir.join(FILE);
        let mut done = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    if line.starts_with('#') || line.trim().is_empty() {
                        continue;
                    }
                    let mut fields = line.split('\t');
                    match (
                        fields.next(),
                        fields.next().map(str::parse::<u64>),
                        fields.next(),
                    ) {
                        (Some(table), Some(Ok(rows)), Some("done")) => {
                            done.insert(table.to_string(), rows);
                        }
                        _ => {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "{}:{}: not a manifest line: {line:?}",
                                    path.display(),
                                    n + 1
                                ),
                            ));
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Manifest { path, done })
    }

    /// Rows of `table` if a previous run completed it and its file is still there.
    pub fn completed(&self, table: &str, csv: &Path) -> Option<u64> {
        self.done.get(table).copied().filter(|_| csv.is_file())
    }

    pub fn mark_done(&mut self, table: &str, rows: u64) -> io::Result<()> {
        self.done.insert(table.to_string(), rows);
        let mut text = String::from("# table\trows\tstatus\n");
        for (table, rows) in &self.done {
            text.push_str(&format!("{table}\t{rows}\tdone\n"));
        }
        let tmp = self.path.with_extension("tsv.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}
