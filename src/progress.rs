//! The progress bar `convert` shows on stderr: only once a conversion has taken a second, only
//! when stderr is a terminal, never with `--quiet`. The stage shows as a message; writing the
//! weights shows bytes against the total.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use tf2torch::Progress;

/// How long a conversion runs before a bar appears (short ones never show one).
const DELAY: Duration = Duration::from_secs(1);

pub struct Bar {
    start: Instant,
    enabled: bool,
    bar: RefCell<Option<ProgressBar>>,
    stage: RefCell<&'static str>,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        Bar {
            start: Instant::now(),
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
            stage: RefCell::new(""),
        }
    }

    /// Shows `p` (creating the bar once the delay has passed).
    pub fn update(&self, p: Progress) {
        if !self.enabled {
            return;
        }
        if let Progress::Stage(s) = p {
            *self.stage.borrow_mut() = s;
        }
        let mut slot = self.bar.borrow_mut();
        if slot.is_none() && self.start.elapsed() < DELAY {
            return;
        }
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        match p {
            Progress::Stage(s) => bar.set_message(s),
            Progress::WeightBytes { written, total } => {
                if bar.length() != Some(total) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta} left)",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    bar.set_length(total);
                    bar.set_message(*self.stage.borrow());
                }
                bar.set_position(written);
            }
        }
    }

    /// Removes the bar (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
