//! Progress on stderr. On a terminal, indicatif draws a bar of messages handled and keeps
//! it below the lines printed meanwhile; elsewhere (a pipe, a file, a test) the bar is
//! hidden and only the plain lines are written, one per event.

use std::fmt::Display;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    /// Hidden when stderr is not a terminal: indicatif decides.
    bar: ProgressBar,
}

impl Progress {
    /// `total`: the messages this run publishes, if it knows.
    pub fn new(total: Option<u64>) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "handled [{bar:30}] {pos}/{len} {per_sec}"
        } else {
            "handled {pos} {per_sec}"
        };
        let style = ProgressStyle::with_template(template)
            .expect("the template is valid")
            .progress_chars("#.");
        bar.set_style(style);
        Progress { bar }
    }

    pub fn handled(&self) {
        self.bar.inc(1);
    }

    /// One line of its own: above the bar on a terminal, plain otherwise.
    pub fn line(&self, text: impl Display) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
