//! Progress bars on stderr for long byte-counting work (create, verify,
//! import), hidden when stderr is not a terminal or under `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::home::Context;

/// A bytes progress bar: label, bar, bytes done of total, rate and ETA.
/// When hidden every method is a cheap no-op, so callers never check.
pub struct Progress {
    bar: ProgressBar,
    /// Whether the bar is to be seen (not `--quiet`, stderr a terminal).
    shown: bool,
}

impl Progress {
    /// A bar for `total` bytes labelled `label` ("Creating", "Verifying"…),
    /// shown unless `--quiet` or stderr is not a terminal.
    pub fn bytes(ctx: &Context, label: &str, total: u64) -> Progress {
        Progress::bytes_unless(ctx.quiet, label, total)
    }

    /// Like [`Progress::bytes`] for commands without a [`Context`] (`demo`).
    pub fn bytes_unless(quiet: bool, label: &str, total: u64) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                shown: false,
            };
        }
        // A total not known yet (0) draws nothing until it is: a first
        // frame of "0 B/0 B" drew a full bar.
        let target = if total == 0 {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        // The bar takes the width the terminal leaves (a fixed one wrapped
        // the line on an 80-column terminal).
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar, shown: true }
    }

    /// Sets the bytes done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Changes the total, when it becomes known only during the work; a
    /// bar made before it was known is drawn from now on.
    pub fn set_total(&self, total: u64) {
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
        }
        if total > 0 && self.shown && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Removes the bar from the screen; the caller prints its own summary.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error path that never calls finish must not leave a stale bar
        // above the error message.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_progress_is_hidden_and_counts() {
        let progress = Progress::bytes_unless(true, "Testing", 100);
        assert!(progress.bar.is_hidden());
        progress.set(40);
        progress.set(60);
        assert_eq!(progress.bar.position(), 60);
        progress.finish();
    }
}
