//! Upload progress: bars (one per file and a total) on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sparkstage_api::size::format_size;

/// Where progress goes.
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    /// Bars when stderr is a terminal and not `quiet`; plain lines when it is not a terminal;
    /// nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi, quiet }
    }

    /// A progress line when there are no bars (stderr not a terminal).
    fn plain(&self, line: &str) {
        if !self.quiet {
            eprintln!("sparkstage: {line}");
        }
    }

    /// The total over `files` uploads of `bytes`.
    pub fn total(&self, files: usize, bytes: u64) -> Total {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(bytes));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{files} files"));
            bar
        });
        if bar.is_none() && files > 0 {
            self.plain(&format!("uploading {files} files, {}", format_size(bytes)));
        }
        Total { bar }
    }

    /// One file's bar under `total`.
    pub fn file(&self, total: &Total, name: &str, size: u64) -> FileBar {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.insert_from_back(1, ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(truncate(name, 12));
            bar
        });
        if bar.is_none() {
            self.plain(&format!("uploading {name} ({})", format_size(size)));
        }
        FileBar {
            quiet: self.quiet,
            bar,
            total: total.bar.clone(),
            name: name.to_owned(),
            size,
            last: Arc::new(AtomicU64::new(0)),
        }
    }
}

pub struct Total {
    bar: Option<ProgressBar>,
}

impl Total {
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[derive(Clone)]
pub struct FileBar {
    quiet: bool,
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    name: String,
    size: u64,
    last: Arc<AtomicU64>,
}

impl FileBar {
    /// `sent` bytes of this file are on their way.
    pub fn set(&self, sent: u64) {
        let before = self.last.swap(sent, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(sent);
        }
        if let Some(total) = &self.total {
            total.inc(sent.saturating_sub(before));
        }
    }

    pub fn finish(&self, elapsed: Duration) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if !self.quiet => eprintln!(
                "sparkstage: uploaded {} ({}) in {:.1} s",
                self.name,
                format_size(self.size),
                elapsed.as_secs_f64()
            ),
            None => {}
        }
    }
}

fn truncate(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        let tail: String = name
            .chars()
            .rev()
            .take(max - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}
