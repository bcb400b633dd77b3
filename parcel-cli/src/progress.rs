//! Progress bars on stderr for long byte-counting work (create, verify,
//! import), hidden when stderr is not a terminal or under `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::home::Context;

/// A bytes progress bar: label, bar, bytes done of total, rate and ETA.
/// When hidden every method is a cheap no-op, so callers never check.
pub struct Progress {
    bar: ProgressBar,
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
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Sets the bytes done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Changes the total, when it becomes known only during the work.
    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
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
