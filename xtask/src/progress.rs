//! What the terminal shows while a matrix runs: an indicatif display on a terminal, plain lines
//! otherwise (CI logs).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use zcmatrix_protocol::{Counts, Outcome, Record};

pub struct Progress {
    bar: Option<ProgressBar>,
    counts: Counts,
    guest: String,
}

impl Progress {
    pub fn new(guests: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(guests as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] guests {pos}/{len} {wide_msg}",
                )
                .expect("static template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            counts: Counts::default(),
            guest: String::new(),
        }
    }

    /// A line that stays: on a terminal above the bar, else on stderr.
    pub fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn status(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{} {what} | {}",
                self.guest,
                self.counts.describe()
            ));
        }
    }

    pub fn guest(&mut self, label: &str, what: &str) {
        self.guest = label.to_string();
        self.status(what);
        if self.bar.is_none() {
            eprintln!("[{label}] {what}");
        }
    }

    pub fn record(&mut self, r: &Record) {
        match r {
            Record::Hello { kernel_release, .. } => {
                let m = format!("booted {kernel_release}");
                self.status(&m);
                if self.bar.is_none() {
                    eprintln!("[{}] {m}", self.guest);
                }
            }
            Record::Mount(m) if !m.ok => self.say(&format!(
                "[{}] {} could not be mounted: {}",
                self.guest, m.fs, m.detail
            )),
            Record::Module {
                name,
                ok: false,
                detail,
            } => self.say(&format!("[{}] module {name}: {detail}", self.guest)),
            Record::Result(c) => {
                self.counts.add(c.outcome);
                let line = format!(
                    "[{}] {} {}: {:?} ({})",
                    self.guest,
                    c.fs.as_deref().unwrap_or("kernel"),
                    c.full_id(),
                    c.outcome,
                    c.observed
                );
                self.status(&c.full_id());
                if self.bar.is_none()
                    || matches!(c.outcome, Outcome::Fail | Outcome::Error | Outcome::Xpass)
                {
                    self.say(&line);
                }
            }
            Record::Error { message } => self.say(&format!("[{}] harness: {message}", self.guest)),
            _ => {}
        }
    }

    pub fn guest_done(&mut self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
