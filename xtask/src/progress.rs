//! What the terminal shows while a matrix runs: an indicatif display on a terminal, plain lines
//! otherwise (CI logs).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use vm::guest::Status;
use zcmatrix_protocol::{Counts, Outcome, Record};

/// On a terminal: a line per running guest under an overall bar. Otherwise every line is
/// printed with its guest's `[label]` prefix, so parallel guests stay readable in a log.
pub struct Progress {
    live: Option<Live>,
    counts: BTreeMap<String, Counts>,
}

struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    guests: BTreeMap<String, ProgressBar>,
}

impl Progress {
    pub fn new(guests: usize) -> Progress {
        let live = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(guests as u64));
            overall.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] guests {pos}/{len}")
                    .expect("static template"),
            );
            overall.enable_steady_tick(Duration::from_millis(200));
            Live {
                multi,
                overall,
                guests: BTreeMap::new(),
            }
        });
        Progress {
            live,
            counts: BTreeMap::new(),
        }
    }

    /// A line that stays: on a terminal above the bars, else on stderr.
    pub fn say(&self, msg: &str) {
        match &self.live {
            Some(l) => {
                let _ = l.multi.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    fn status(&mut self, guest: &str, what: &str) {
        let counts = self.counts.entry(guest.to_string()).or_default().describe();
        if let Some(l) = &mut self.live {
            let bar = l.guests.entry(guest.to_string()).or_insert_with(|| {
                let b = l.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix:<8} {wide_msg}")
                        .expect("static template"),
                );
                b.set_prefix(guest.to_string());
                b.enable_steady_tick(Duration::from_millis(200));
                b
            });
            bar.set_message(format!("{what} | {counts}"));
        }
    }

    pub fn guest(&mut self, guest: &str, what: &str) {
        self.status(guest, what);
        if self.live.is_none() {
            eprintln!("[{guest}] {what}");
        }
    }

    pub fn record(&mut self, guest: &str, r: &Record) {
        if let Record::Result(c) = r {
            self.counts
                .entry(guest.to_string())
                .or_default()
                .add(c.outcome);
            self.status(guest, &c.full_id());
        }
        if let Record::Hello { kernel_release, .. } = r {
            self.status(guest, &format!("booted {kernel_release}"));
        }
        if let Some((line, loud)) = line_for(guest, r) {
            // With bars, only what a reader must not miss stays on screen; without (CI logs)
            // every line is printed.
            if loud {
                self.say(&line);
            } else if self.live.is_none() {
                eprintln!("{line}");
            }
        }
    }

    pub fn guest_done(&mut self, guest: &str, status: Status, detail: &str) {
        if status != Status::Completed {
            self.say(&format!("[{guest}] {}: {detail}", status.as_str()));
        }
        if let Some(l) = &mut self.live {
            if let Some(b) = l.guests.remove(guest) {
                b.finish_and_clear();
                l.multi.remove(&b);
            }
            l.overall.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(l) = &self.live {
            l.overall.finish_and_clear();
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
            tolerance: None,
            measures: Vec::new(),
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
