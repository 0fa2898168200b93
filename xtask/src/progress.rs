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
        if let Record::Result(c) = r {
            self.counts.add(c.outcome);
        }
        if let Record::Hello { kernel_release, .. } = r {
            self.status(&format!("booted {kernel_release}"));
        }
        if let Record::Result(c) = r {
            self.status(&c.full_id());
        }
        if let Some((line, loud)) = line_for(&self.guest, r) {
            // With a bar, only what a reader must not miss stays on screen; without one (CI
            // logs) every line is printed.
            if loud {
                self.say(&line);
            } else if self.bar.is_none() {
                eprintln!("{line}");
            }
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

/// The line a record is worth on the terminal, and whether it must stay visible above a bar:
/// news (`fail`, `error`, `xpass`) and anything that went wrong outside a check.
fn line_for(guest: &str, r: &Record) -> Option<(String, bool)> {
    Some(match r {
        Record::Hello { kernel_release, .. } => {
            (format!("[{guest}] booted {kernel_release}"), false)
        }
        Record::Mount(m) if !m.ok => (
            format!("[{guest}] {} could not be mounted: {}", m.fs, m.detail),
            true,
        ),
        Record::Module {
            name,
            ok: false,
            detail,
        } => (format!("[{guest}] module {name}: {detail}"), true),
        Record::Result(c) => (
            format!(
                "[{guest}] {} {}: {} ({})",
                c.fs.as_deref().unwrap_or("kernel"),
                c.full_id(),
                c.outcome.as_str(),
                // A skip or an error observed nothing: its reason is what a reader wants.
                match c.outcome {
                    Outcome::Skip | Outcome::Error => &c.detail,
                    _ => &c.observed,
                }
            ),
            matches!(c.outcome, Outcome::Fail | Outcome::Error | Outcome::Xpass),
        ),
        Record::Error { message } => (format!("[{guest}] harness: {message}"), true),
        Record::Summary {
            counts,
            duration_ms,
        } => (
            format!(
                "[{guest}] harness done in {:.1} s: {}",
                *duration_ms as f64 / 1000.0,
                counts.describe()
            ),
            true,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcmatrix_protocol::{CheckResult, Scope};

    fn result(outcome: Outcome) -> Record {
        Record::Result(CheckResult {
            check: "cow.vmsplice_unmap_child".into(),
            variant: Some("thp".into()),
            scope: Scope::Kernel,
            fs: None,
            logical_block_size: None,
            outcome,
            observed: "leak".into(),
            expected: "leak".into(),
            evidence: "e".into(),
            detail: "leak".into(),
            duration_ms: 1,
        })
    }

    #[test]
    fn news_stays_above_the_bar_and_routine_results_do_not() {
        for (o, loud) in [
            (Outcome::Pass, false),
            (Outcome::Xfail, false),
            (Outcome::Skip, false),
            (Outcome::Info, false),
            (Outcome::Fail, true),
            (Outcome::Error, true),
            (Outcome::Xpass, true),
        ] {
            let (line, l) = line_for("5.10", &result(o)).unwrap();
            assert_eq!(l, loud, "{o:?}");
            assert_eq!(
                line,
                format!(
                    "[5.10] kernel cow.vmsplice_unmap_child[thp]: {} (leak)",
                    o.as_str()
                )
            );
        }
        let e = Record::Error {
            message: "swap: no disk".into(),
        };
        assert!(line_for("5.10", &e).unwrap().1);
    }
}
