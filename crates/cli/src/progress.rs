//! The progress bar: drawn on a terminal, silent otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat_core::Progress;

/// A byte progress bar on stderr, hidden when stderr is not a terminal.
#[derive(Debug)]
pub struct TerminalBar {
    bar: ProgressBar,
}

impl TerminalBar {
    /// A bar labelled `what`; nothing is drawn before [`Progress::start`].
    pub fn new(what: &'static str) -> Self {
        let bar = ProgressBar::hidden();
        bar.set_message(what);
        Self { bar }
    }
}

impl Progress for TerminalBar {
    fn start(&self, expected: Option<u64>) {
        let template = match expected {
            Some(total) => {
                self.bar.set_length(total);
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
            }
            None => "{msg} {bytes} {binary_bytes_per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        if std::io::stderr().is_terminal() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
