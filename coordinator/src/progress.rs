//! What the person running the scenario watches: on a terminal, an
//! indicatif bar per phase (time through the phase) whose message is the
//! merged second (connections held/target, connects/s, errors, msgs/s,
//! p50/p99 per latency kind) and a line of agent health; elsewhere (CI,
//! logs) one plain line every few seconds.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use loadgen::printer;
use loadgen::stats::Interval;

/// When there is no terminal, a plain line every this many seconds.
const PLAIN_EVERY_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines, every second.
    Plain,
    Never,
}

pub struct Progress {
    mode: Mode,
    fancy: bool,
    multi: MultiProgress,
    bars: std::sync::Mutex<Option<(ProgressBar, ProgressBar)>>,
    header: std::sync::Mutex<String>,
    seconds: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let fancy = mode == Mode::Auto && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let multi = MultiProgress::with_draw_target(if fancy {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress {
            mode,
            fancy,
            multi,
            bars: std::sync::Mutex::new(None),
            header: std::sync::Mutex::new(String::new()),
            seconds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A line above the bars (or on stderr).
    pub fn println(&self, line: &str) {
        if self.mode == Mode::Never {
            return;
        }
        if self.fancy {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn phase_started(
        &self,
        index: usize,
        phases: usize,
        name: &str,
        duration: Duration,
        target: u64,
    ) {
        let header = format!("phase {}/{phases} {name}", index + 1);
        self.println(&format!(
            "{header}: {} connections for {}",
            printer::int(target),
            humantime::format_duration(duration)
        ));
        *self.header.lock().unwrap_or_else(|e| e.into_inner()) = header.clone();
        self.seconds.store(0, std::sync::atomic::Ordering::Relaxed);
        if !self.fancy {
            return;
        }
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:24.cyan/blue}] {pos:>3}/{len}s {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(duration.as_secs().max(1)));
        bar.set_style(style);
        bar.set_prefix(header);
        bar.set_message("waiting for the first second…");
        let agents = self.multi.add(ProgressBar::new_spinner());
        agents.set_style(
            ProgressStyle::with_template("  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        *self.bars.lock().unwrap_or_else(|e| e.into_inner()) = Some((bar, agents));
    }

    /// One merged second of the running phase.
    pub fn second(&self, iv: &Interval, target: u64, elapsed: Duration, health: &str) {
        let line = printer::progress_line(iv, target, elapsed);
        // progress_line starts with the elapsed seconds, which the bar shows.
        let figures = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
        if self.fancy {
            if let Some((bar, agents)) = &*self.bars.lock().unwrap_or_else(|e| e.into_inner()) {
                // Drain and close come after the planned duration.
                bar.set_position(elapsed.as_secs().min(bar.length().unwrap_or(u64::MAX)));
                bar.set_message(figures.to_string());
                agents.set_message(health.to_string());
            }
            return;
        }
        let every = if self.mode == Mode::Plain {
            1
        } else {
            PLAIN_EVERY_SECS
        };
        let n = self
            .seconds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if self.mode != Mode::Never && n.is_multiple_of(every) {
            let header = self
                .header
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            eprintln!("[{header}] {line} | {health}");
        }
    }

    pub fn phase_done(&self) {
        if let Some((bar, agents)) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish();
            agents.finish_and_clear();
        }
    }
}
