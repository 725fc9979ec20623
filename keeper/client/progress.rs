//! Upload progress: an `indicatif` bar on a terminal, plain lines otherwise (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// How often plain progress lines are printed at most (besides every tenth of the work).
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar {
        bar: ProgressBar,
        bytes: u64,
        total_bytes: u64,
    },
    Plain {
        total: u64,
        total_bytes: u64,
        done: u64,
        bytes: u64,
        last_line: Instant,
        last_tenth: u64,
    },
}

impl Progress {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn new(total: u64, total_bytes: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar {
                bar,
                bytes: 0,
                total_bytes,
            }
        } else {
            Self::Plain {
                total,
                total_bytes,
                done: 0,
                bytes: 0,
                last_line: Instant::now(),
                last_tenth: 0,
            }
        }
    }

    /// One more file (of `size` bytes) is uploaded.
    pub fn file_done(&mut self, size: u64) {
        match self {
            Self::Bar {
                bar,
                bytes,
                total_bytes,
            } => {
                *bytes += size;
                bar.inc(1);
                bar.set_message(format!(
                    "{} of {}",
                    HumanBytes(*bytes),
                    HumanBytes(*total_bytes)
                ));
            }
            Self::Plain {
                total,
                total_bytes,
                done,
                bytes,
                last_line,
                last_tenth,
            } => {
                *done += 1;
                *bytes += size;
                let tenth = (*done * 10).checked_div(*total).unwrap_or(10);
                if tenth > *last_tenth || last_line.elapsed() >= PLAIN_INTERVAL || done == total {
                    *last_tenth = tenth;
                    *last_line = Instant::now();
                    eprintln!(
                        "keeper upload: {done}/{total} files, {} of {}",
                        HumanBytes(*bytes),
                        HumanBytes(*total_bytes)
                    );
                }
            }
        }
    }

    /// Prints lines without breaking the bar (for retries, from any task).
    pub fn notes(&self) -> Notes {
        match self {
            Self::Bar { bar, .. } => Notes(Some(bar.clone())),
            Self::Plain { .. } => Notes(None),
        }
    }

    pub fn finish(&self) {
        if let Self::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// Where notes go: above the bar, or to standard error.
#[derive(Clone)]
pub struct Notes(Option<ProgressBar>);

impl Notes {
    /// Notes straight to standard error (before the bar exists).
    pub fn stderr() -> Self {
        Self(None)
    }

    pub fn note(&self, message: &str) {
        match &self.0 {
            Some(bar) => bar.println(format!("keeper upload: {message}")),
            None => eprintln!("keeper upload: {message}"),
        }
    }
}
