//! One measured transfer and what a handful of them come to: medians per MiB, the spread of the
//! CPU time, and ratios to the read+write baseline, written as `name=value` fields.

use std::time::Instant;

use zcmatrix_protocol::Measure;

/// CPU time and context switches over an interval, of a thread or of the whole process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// The scheduler's precise runtime (CLOCK_THREAD_CPUTIME_ID or CLOCK_PROCESS_CPUTIME_ID).
    pub cpu_ns: u64,
    /// getrusage(2) user and system time: tick samples, see [`Usage`].
    pub ru_usr_ns: u64,
    pub ru_sys_ns: u64,
    /// Voluntary context switches (a thread slept: a full socket buffer, disk I/O).
    pub vcsw: u64,
    /// Involuntary context switches (the scheduler took the CPU away).
    pub ivcsw: u64,
}

impl Cost {
    /// This cost without `other`'s (the process without its receiving thread).
    pub fn minus(&self, other: &Cost) -> Cost {
        Cost {
            cpu_ns: self.cpu_ns.saturating_sub(other.cpu_ns),
            ru_usr_ns: self.ru_usr_ns.saturating_sub(other.ru_usr_ns),
            ru_sys_ns: self.ru_sys_ns.saturating_sub(other.ru_sys_ns),
            vcsw: self.vcsw.saturating_sub(other.vcsw),
            ivcsw: self.ivcsw.saturating_sub(other.ivcsw),
        }
    }
}

/// What one transfer of the whole file cost the sender (the process but its receiving thread:
/// the thread making the calls and the kernel's io_uring workers, which are threads of the
/// process since 5.12), and the receiver where there is one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub sender: Cost,
    pub wall_ns: u64,
    /// System calls the path made, counted by the path itself.
    pub calls: u64,
    /// CPU time of the receiving thread of a socket sink.
    pub rx_ns: Option<u64>,
}

/// CPU time, getrusage(2) and the clock at one instant, for the calling thread or the process.
///
/// The CPU total comes from clock_gettime(CLOCK_THREAD_CPUTIME_ID or CLOCK_PROCESS_CPUTIME_ID),
/// which brings the scheduler's runtime up to date (task_sched_runtime), so it is precise at any
/// size. getrusage's user and system times are that runtime split by tick samples
/// (task_cputime_adjusted; 250 Hz on Debian kernels): a split, not a clock. [`Summary`] splits
/// the precise total by the share of user ticks over all repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    cost: Cost,
    at: Instant,
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; both clocks exist since 2.6.12.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Usage {
    /// The calling thread's.
    pub fn thread() -> Usage {
        Self::of(
            nix::sys::resource::UsageWho::RUSAGE_THREAD,
            libc::CLOCK_THREAD_CPUTIME_ID,
        )
    }

    /// The whole process's: every thread, the io_uring workers among them.
    pub fn process() -> Usage {
        Self::of(
            nix::sys::resource::UsageWho::RUSAGE_SELF,
            libc::CLOCK_PROCESS_CPUTIME_ID,
        )
    }

    fn of(who: nix::sys::resource::UsageWho, clock: libc::clockid_t) -> Usage {
        let ns = |t: nix::sys::time::TimeVal| {
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000
        };
        // getrusage(2) fails only for a bad `who`; RUSAGE_THREAD exists since 2.6.26.
        let u = nix::sys::resource::getrusage(who).ok();
        Usage {
            cost: Cost {
                cpu_ns: clock_ns(clock),
                ru_usr_ns: u.map_or(0, |u| ns(u.user_time())),
                ru_sys_ns: u.map_or(0, |u| ns(u.system_time())),
                vcsw: u.map_or(0, |u| u.voluntary_context_switches() as u64),
                ivcsw: u.map_or(0, |u| u.involuntary_context_switches() as u64),
            },
            at: Instant::now(),
        }
    }

    /// What was spent since `start`, and the wall time in nanoseconds.
    pub fn since(&self, start: &Usage) -> (Cost, u64) {
        (
            self.cost.minus(&start.cost),
            self.at.duration_since(start.at).as_nanos() as u64,
        )
    }
}

/// How much tick-sampled CPU time the repetitions must have taken before their user/system split
/// is worth reporting: a dozen ticks at 250 Hz. Below that one tick more or less flips it.
pub const MIN_SAMPLED_NS: u64 = 50_000_000;

/// The median of some numbers (the mean of the middle two for an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `q`-quantile (0..=1) of some numbers, interpolated linearly between the two nearest
/// ranks (R's and numpy's default); 0 for none.
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let at = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

/// The one statistic the cost family judges and the report shows: each repetition of a path
/// against the read+write repetition interleaved with it (the same moment of the machine), in
/// percent, and the median and quartiles of those ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
}

impl Ratio {
    /// Pairs `path[i]` with `base[i]`; a pair whose baseline took no CPU time is left out.
    /// `None` when no pair is left.
    pub fn of(path: &[Sample], base: &[Sample]) -> Option<Ratio> {
        let r: Vec<f64> = path
            .iter()
            .zip(base)
            .filter(|(_, b)| b.sender.cpu_ns > 0)
            .map(|(p, b)| p.sender.cpu_ns as f64 / b.sender.cpu_ns as f64 * 100.0)
            .collect();
        (!r.is_empty()).then(|| Ratio {
            median: median(r.clone()),
            q1: quantile(r.clone(), 0.25),
            q3: quantile(r, 0.75),
        })
    }
}

/// Medians of every metric over repetitions, per MiB moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub cpu_us: f64,
    /// The CPU time split by the share of user-mode ticks over all repetitions; `None` when
    /// they took too little CPU for the ticks to tell ([`MIN_SAMPLED_NS`]).
    pub usr_us: Option<f64>,
    pub sys_us: Option<f64>,
    pub wall_us: f64,
    pub calls: f64,
    pub vcsw: f64,
    pub ivcsw: f64,
    pub rx_us: Option<f64>,
}

impl Summary {
    pub fn of(samples: &[Sample], mib: f64) -> Summary {
        let per = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect()) / mib;
        let us = 1e-3;
        let cpu_us = per(&|s| s.sender.cpu_ns as f64 * us);
        let ticks_usr: u64 = samples.iter().map(|s| s.sender.ru_usr_ns).sum();
        let ticks: u64 = ticks_usr + samples.iter().map(|s| s.sender.ru_sys_ns).sum::<u64>();
        let usr_share = (ticks >= MIN_SAMPLED_NS).then(|| ticks_usr as f64 / ticks as f64);
        Summary {
            cpu_us,
            usr_us: usr_share.map(|u| cpu_us * u),
            sys_us: usr_share.map(|u| cpu_us * (1.0 - u)),
            wall_us: per(&|s| s.wall_ns as f64 * us),
            calls: per(&|s| s.calls as f64),
            vcsw: per(&|s| s.sender.vcsw as f64),
            ivcsw: per(&|s| s.sender.ivcsw as f64),
            rx_us: samples
                .iter()
                .all(|s| s.rx_ns.is_some())
                .then(|| per(&|s| s.rx_ns.unwrap_or(0) as f64 * us)),
        }
    }

    /// `(name, value)` of every metric, in the order the fields are written.
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![("cpu", self.cpu_us)];
        if let (Some(u), Some(s)) = (self.usr_us, self.sys_us) {
            m.extend([("usr", u), ("sys", s)]);
        }
        m.extend([
            ("wall", self.wall_us),
            ("calls", self.calls),
            ("vcsw", self.vcsw),
            ("ivcsw", self.ivcsw),
        ]);
        if let Some(rx) = self.rx_us {
            m.push(("rx", rx));
        }
        m
    }

    /// `cpu_us=812 … cpu_pct=62 cpu_q1_pct=58 cpu_q3_pct=70 wall_pct=…`: [`Summary::measures`]
    /// as text, absolute values to two or three significant digits.
    pub fn fields(&self, base: &Summary, cpu: Option<Ratio>) -> String {
        self.measures(base, cpu)
            .iter()
            .map(|m| match m.unit.as_str() {
                // Percentages are whole already: what the premise judges is what is written.
                "%" => format!("{}={}", m.name, m.value),
                _ => format!("{}={}", m.name, short(m.value)),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Per-MiB medians (times in µs, calls and context switches in counts), then the CPU ratio
    /// to `base` (the read+write baseline measured alongside) as `cpu`, the median of the
    /// paired ratios with its interquartile range, and every other metric as the ratio of the
    /// medians; a ratio to a zero is left out. Percentages are rounded to whole ones: the
    /// premise judges the rounded median, and the report shows what was judged.
    pub fn measures(&self, base: &Summary, cpu: Option<Ratio>) -> Vec<Measure> {
        let mut out = Vec::new();
        for (name, v) in self.metrics() {
            let (suffix, unit) = match name {
                "calls" | "vcsw" | "ivcsw" => ("", "/MiB"),
                _ => ("_us", "us/MiB"),
            };
            out.push(Measure::new(format!("{name}{suffix}"), v, unit));
        }
        let base = base.metrics();
        for (name, v) in self.metrics() {
            if name == "cpu" {
                if let Some(r) = cpu {
                    out.extend([
                        Measure::new("cpu_pct", r.median.round(), "%"),
                        Measure::new("cpu_q1_pct", r.q1.round(), "%"),
                        Measure::new("cpu_q3_pct", r.q3.round(), "%"),
                    ]);
                }
                continue;
            }
            let Some(&(_, b)) = base.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            if b > 0.0 {
                out.push(Measure::new(
                    format!("{name}_pct"),
                    (v / b * 100.0).round(),
                    "%",
                ));
            }
        }
        out
    }
}

/// A number with two or three significant digits: `812`, `41.5`, `0.25`.
pub fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{}", v.round())
    } else if v.abs() >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_us: u64, calls: u64) -> Sample {
        Sample {
            sender: Cost {
                cpu_ns: cpu_us * 1000,
                ru_usr_ns: cpu_us * 10_000,
                ru_sys_ns: cpu_us * 90_000,
                vcsw: 1,
                ivcsw: 0,
            },
            wall_ns: cpu_us * 2000,
            calls,
            rx_ns: None,
        }
    }

    #[test]
    fn medians_are_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn quartiles_interpolate_between_ranks() {
        let v = vec![4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(v.clone(), 0.25), 2.0);
        assert_eq!(quantile(v.clone(), 0.5), 3.0);
        assert_eq!(quantile(v, 0.75), 4.0);
        assert_eq!(quantile(vec![1.0, 2.0], 0.25), 1.25);
        assert_eq!(quantile(vec![], 0.5), 0.0);
    }

    #[test]
    fn fields_are_per_mib_medians_and_percentages_of_the_baseline() {
        let base_s = [sample(1000, 32), sample(1200, 32), sample(900, 32)];
        let path_s = [sample(500, 1), sample(400, 1), sample(700, 1)];
        let base = Summary::of(&base_s, 2.0);
        let path = Summary::of(&path_s, 2.0);
        let f = path.fields(&base, Ratio::of(&path_s, &base_s));
        assert!(
            f.starts_with("cpu_us=250 usr_us=25.0 sys_us=225 wall_us=500 calls=0.50 "),
            "{f}"
        );
        // Paired: 500/1000, 400/1200, 700/900 = 50, 33, 78 %: the median 50, quartiles 42, 64.
        assert!(
            f.contains(" cpu_pct=50 cpu_q1_pct=42 cpu_q3_pct=64 "),
            "{f}"
        );
        assert!(f.contains(" calls_pct=3 "), "{f}");
        // One statistic: nothing else to judge or show for the CPU.
        assert!(!f.contains("cpu_min") && !f.contains("premise"), "{f}");
        // No involuntary switch in the baseline: no ratio to a zero.
        assert!(!f.contains("ivcsw_pct"), "{f}");
        assert!(!f.contains("rx_"), "{f}");
        // The same numbers typed, in the same order, the CPU unrounded.
        let ms = path.measures(&base, Ratio::of(&path_s, &base_s));
        let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
        let written: Vec<&str> = f.split(' ').map(|t| t.split('=').next().unwrap()).collect();
        assert_eq!(names, written);
        assert_eq!((ms[0].value, ms[0].unit.as_str()), (250.0, "us/MiB"));
        assert!(ms
            .iter()
            .any(|m| m.name == "cpu_pct" && m.value == 50.0 && m.unit == "%"));
        // Too few ticks for a split: the total alone.
        let mut few_ticks = sample(9, 1);
        few_ticks.sender.ru_usr_ns = 0;
        few_ticks.sender.ru_sys_ns = 4_000_000;
        let quick = Summary::of(&[few_ticks], 1.0);
        assert!(quick
            .fields(&base, None)
            .starts_with("cpu_us=9.00 wall_us=18.0 calls=1.00 "));
    }

    #[test]
    fn the_ratio_pairs_each_repetition_with_its_own_baseline() {
        // One baseline repetition that ran unusually short inflates a least-against-least
        // ratio; paired, it moves one ratio of five and the median stays put.
        let base: Vec<Sample> = [1000, 1000, 300, 1000, 1000].map(|c| sample(c, 1)).to_vec();
        let path: Vec<Sample> = [900, 950, 900, 1000, 1100].map(|c| sample(c, 1)).to_vec();
        let r = Ratio::of(&path, &base).unwrap();
        assert_eq!(r.median.round(), 100.0, "{r:?}");
        assert!(r.q1 <= r.median && r.median <= r.q3, "{r:?}");
        assert!(Ratio::of(&[], &[]).is_none());
    }

    #[test]
    fn usage_moves_forward() {
        let (t, p) = (Usage::thread(), Usage::process());
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let ((tc, tw), (pc, _)) = (Usage::thread().since(&t), Usage::process().since(&p));
        assert!(
            tw > 0 && tc.cpu_ns > 0 && pc.cpu_ns >= tc.cpu_ns,
            "{tc:?} {pc:?}"
        );
    }
}
