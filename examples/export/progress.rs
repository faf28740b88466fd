//! Progress on stderr. On a terminal, indicatif draws a bar for the table being exported
//! and keeps it below the lines printed meanwhile; elsewhere (a pipe, a file, a test) the
//! bar is hidden and only plain lines are written, one per event.

use std::fmt::Display;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    /// Hidden when stderr is not a terminal: indicatif decides, as it does for `TERM=dumb`.
    bar: ProgressBar,
}

impl Progress {
    pub fn new() -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix:<12} [{bar:30}] {pos}/{len}")
            .expect("the template is valid")
            .progress_chars("#.");
        bar.set_style(style);
        // Nothing to draw until a table starts.
        bar.finish_and_clear();
        Progress { bar }
    }

    /// A table of `total` rows starts.
    pub fn start(&self, table: &str, total: u64) {
        if self.bar.is_hidden() {
            eprintln!("{table}: exporting {total} rows");
        }
        // Set while the bar is cleared, drawn from `reset` on.
        self.bar.set_prefix(table.to_string());
        self.bar.set_length(total);
        self.bar.reset();
    }

    pub fn advance(&self, rows: u64) {
        self.bar.inc(rows);
    }

    /// The table's rows are all in, or it has given up: the bar goes away.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// One line of its own: above the bar on a terminal, plain otherwise.
    /// (`ProgressBar::println` would print nothing once the bar is hidden.)
    pub fn line(&self, text: impl Display) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}
