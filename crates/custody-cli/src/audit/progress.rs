//! A progress bar on stderr: redrawn in place when stderr is a terminal,
//! a plain line every few seconds otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// Redraws of the bar are at least this far apart.
const BAR_EVERY: Duration = Duration::from_millis(100);
/// Plain progress lines are at least this far apart.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Width of the bar in characters.
const WIDTH: usize = 30;

/// `Progress` tracks entries processed out of a total.
pub struct Progress {
    total: u64,
    done: u64,
    start: Instant,
    last: Instant,
    tty: bool,
    drawn: bool,
}

impl Progress {
    /// `new` starts tracking `total` entries.
    pub fn new(total: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            start: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// `add` records `n` more entries done, drawing when due.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        let every = if self.tty { BAR_EVERY } else { LINE_EVERY };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw();
        }
    }

    /// `rate` is entries per second so far.
    pub fn rate(&self) -> f64 {
        let s = self.start.elapsed().as_secs_f64();
        if s > 0.0 {
            self.done as f64 / s
        } else {
            0.0
        }
    }

    fn draw(&mut self) {
        let rate = self.rate();
        let frac = if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        };
        let eta = if rate > 0.0 {
            format!(
                "{:.0}s",
                (self.total.saturating_sub(self.done)) as f64 / rate
            )
        } else {
            "?".to_owned()
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let filled = ((frac * WIDTH as f64) as usize).min(WIDTH);
            let _ = write!(
                err,
                "\r[{}{}] {:>3.0}% {}/{} entries  {:.0} entries/s  ETA {eta}  ",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                frac * 100.0,
                self.done,
                self.total,
                rate
            );
            self.drawn = true;
        } else {
            let _ = writeln!(
                err,
                "audit: {}/{} entries ({:.0}%), {:.0} entries/s, ETA {eta}",
                self.done,
                self.total,
                frac * 100.0,
                rate
            );
        }
        let _ = err.flush();
    }

    /// `finish` clears the bar.
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(WIDTH + 70));
        }
    }
}
