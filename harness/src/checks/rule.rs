//! Rules: what a documented source says the kernel does, as typed predicates over the observed
//! value, per filesystem and kernel version, and which observed values are hazards.
//!
//! Judging (the only place an outcome is decided), after KTAP's XFAIL/XPASS:
//! observed ∈ expected → `pass`, or `xfail` when the value is a hazard;
//! observed ∉ expected → `fail`, or `xpass` when the rule expected a hazard here and the kernel
//! behaved well. A rule that is a measurement gives `info`.

use zcmatrix_protocol::Outcome;
pub use zcmatrix_protocol::Tolerance;

use crate::kver::KernelVersion;

/// What the kernel is expected to do, why we believe so, and which outcomes are hazards.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub expect: Expect,
    /// Observed values that are hazards for a user (`leak`, `unreliable`, `wrong-data`): when the
    /// rule predicts one, the result is `xfail`, never `pass`.
    pub hazards: &'static [&'static str],
    /// A man page section or a commit title: where a reader can verify the rule. For a
    /// measurement, what it measures and why it matters.
    pub evidence: &'static str,
    /// How far the observed value may move between runs of one kernel before `report diff`
    /// calls it a change: [`Tolerance::Exact`] (a fact) unless the check declares it noisy.
    pub tolerance: Tolerance,
    /// The least integer the probe can observe: 0 for a count (the default), 1 for pages
    /// mapped per fault. A value below it proves nothing about a rule: where every value the
    /// probe can produce satisfies the rule, the rule cannot fail and a result is `info`.
    pub least: i64,
}

impl Rule {
    pub const fn new(expect: Expect, evidence: &'static str) -> Rule {
        Rule {
            expect,
            hazards: &[],
            evidence,
            tolerance: Tolerance::Exact,
            least: 0,
        }
    }

    /// Declares the least integer the probe can observe (see [`Rule::least`]).
    pub const fn least(self, least: i64) -> Rule {
        Rule { least, ..self }
    }

    /// A value the probe could produce that `pred` rejects on `g`: the proof that the rule can
    /// fail there. `None` where it cannot.
    pub fn counterexample(&self, pred: &Pred, g: Geom) -> Option<String> {
        pred.counterexample_from(g, self.least)
    }

    /// Declares the value a noisy measurement (see [`Rule::tolerance`]).
    pub const fn tolerance(self, tolerance: Tolerance) -> Rule {
        Rule { tolerance, ..self }
    }

    /// A measurement with no verdict anywhere: `evidence` says what it measures and why.
    pub const fn measure(evidence: &'static str) -> Rule {
        Rule::new(Expect::Measure, evidence)
    }

    pub const fn hazards(self, hazards: &'static [&'static str]) -> Rule {
        Rule { hazards, ..self }
    }

    /// Judges `observed` on this kernel, filesystem and disk. Returns the outcome and the
    /// expectation in words (the `expected` field of a result).
    pub fn judge(&self, on: &Where, observed: &str) -> Verdict {
        let pred = match self.expect.resolve(on.kernel, on.fs) {
            None => {
                return Verdict {
                    outcome: Outcome::Info,
                    expected: "a measurement (no rule)".into(),
                }
            }
            Some(p) => p,
        };
        if pred.needs_lbs() && on.logical_block_size.is_none() {
            return Verdict {
                outcome: Outcome::Info,
                expected: format!(
                    "{} (the logical block size is unknown here, so no verdict)",
                    pred.describe(on.geom())
                ),
            };
        }
        let g = on.geom();
        let hazard_expected = self.expects_hazard(&pred, g);
        let is_hazard = self.hazards.contains(&observed);
        let outcome = match (pred.accepts(observed, g), is_hazard) {
            (true, true) => Outcome::Xfail,
            // A pass that could not have been a fail is no verdict: say why instead.
            (true, false) if self.counterexample(&pred, g).is_none() => {
                return Verdict {
                    outcome: Outcome::Info,
                    expected: format!(
                        "{} (cannot fail here: every value the probe can produce, {} or more, \
                         satisfies it with {}-byte pages)",
                        pred.describe(g),
                        self.least,
                        g.page_size
                    ),
                }
            }
            (true, false) => Outcome::Pass,
            // Good news only when what it did is what the rule calls right elsewhere.
            (false, false) if hazard_expected && self.safe_elsewhere(observed, g) => Outcome::Xpass,
            (false, _) => Outcome::Fail,
        };
        Verdict {
            outcome,
            expected: self.expectation(on),
        }
    }

    /// What the rule expects here, in the words of `observed`; hazards marked as such.
    pub fn expectation(&self, on: &Where) -> String {
        match self.expect.resolve(on.kernel, on.fs) {
            None => "a measurement (no rule)".into(),
            Some(pred) => {
                let g = on.geom();
                let mut text = pred.describe(g);
                if self.expects_hazard(&pred, g) {
                    text.push_str(" (a known hazard)");
                }
                text
            }
        }
    }

    fn expects_hazard(&self, pred: &Pred, g: Geom) -> bool {
        self.hazards.iter().any(|h| pred.accepts(h, g))
    }
}

impl Rule {
    /// Whether some case of this rule accepts `observed` as a safe value.
    fn safe_elsewhere(&self, observed: &str, g: Geom) -> bool {
        let mut preds = Vec::new();
        self.expect.leaves(&mut preds);
        preds
            .iter()
            .any(|p| p.accepts(observed, g) && !self.hazards.iter().any(|h| p.accepts(h, g)))
    }
}

/// What fault counts of a scan forgive between two runs of one kernel: a page or two (or 5 %)
/// of minor faults come and go with what else the guest had cached; `report diff` calls
/// anything more a change.
pub const FAULT_NOISE: Tolerance = Tolerance::Numbers { abs: 2.0, pct: 5.0 };

/// The machine a rule speaks about.
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    pub kernel: KernelVersion,
    pub fs: Option<&'a str>,
    pub logical_block_size: Option<u32>,
    /// The kernel's page size in bytes, as the harness reads it (`sysconf(_SC_PAGESIZE)`).
    pub page_size: u32,
}

impl Where<'_> {
    pub fn geom(&self) -> Geom {
        Geom {
            lbs: self.logical_block_size,
            page_size: self.page_size,
        }
    }
}

/// The sizes a predicate may be written in: the disk's logical block size (unknown on tmpfs)
/// and the kernel's page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub lbs: Option<u32>,
    pub page_size: u32,
}

impl Geom {
    pub const fn new(lbs: Option<u32>, page_size: u32) -> Geom {
        Geom { lbs, page_size }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub expected: String,
}

/// Accepted observations per kernel and filesystem. Written down before anything runs, never
/// derived from an observation.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// The same on every kernel and filesystem.
    Always(Pred),
    /// Changed in a kernel release (the mainline X.Y the change landed in).
    Since {
        version: KernelVersion,
        before: &'static Expect,
        since: &'static Expect,
    },
    /// Differs by filesystem; `otherwise` for those not listed.
    ByFs {
        cases: &'static [(&'static str, Expect)],
        otherwise: &'static Expect,
    },
    /// No rule: the value is a measurement (`info`).
    Measure,
}

impl Expect {
    pub const fn is(value: &'static str) -> Expect {
        Expect::Always(Pred::Is(value))
    }

    /// Whether any predicate, on any kernel or filesystem, names the logical block size.
    pub fn needs_lbs(&self) -> bool {
        match self {
            Expect::Always(p) => p.needs_lbs(),
            Expect::Since { before, since, .. } => before.needs_lbs() || since.needs_lbs(),
            Expect::ByFs { cases, otherwise } => {
                otherwise.needs_lbs() || cases.iter().any(|(_, e)| e.needs_lbs())
            }
            Expect::Measure => false,
        }
    }

    pub const fn since(
        major: u32,
        minor: u32,
        before: &'static Expect,
        since: &'static Expect,
    ) -> Expect {
        Expect::Since {
            version: KernelVersion::new(major, minor, 0),
            before,
            since,
        }
    }

    /// Changed in a stable point release (X.Y.Z, the first release of the X.Y line that carries a
    /// backport): kernels of that line before it are judged by `before`. A Debian kernel's real
    /// point release comes from /proc/version (see `KernelVersion::running`).
    pub const fn since_release(
        major: u32,
        minor: u32,
        patch: u32,
        before: &'static Expect,
        since: &'static Expect,
    ) -> Expect {
        Expect::Since {
            version: KernelVersion::new(major, minor, patch),
            before,
            since,
        }
    }

    /// The predicate in force on this kernel and filesystem; `None` for a measurement.
    pub fn resolve(&self, kernel: KernelVersion, fs: Option<&str>) -> Option<Pred> {
        match self {
            Expect::Always(p) => Some(*p),
            Expect::Since {
                version,
                before,
                since,
            } => {
                if kernel >= *version {
                    since.resolve(kernel, fs)
                } else {
                    before.resolve(kernel, fs)
                }
            }
            Expect::ByFs { cases, otherwise } => cases
                .iter()
                .find(|(name, _)| Some(*name) == fs)
                // An asynchronous DAX target is its DAX target but where a case says otherwise.
                .or_else(|| {
                    cases
                        .iter()
                        .find(|(name, _)| Some(*name) == fs.map(base_target))
                })
                .map_or(*otherwise, |(_, e)| e)
                .resolve(kernel, fs),
            Expect::Measure => None,
        }
    }

    /// Every predicate this expectation can resolve to.
    pub fn leaves(&self, out: &mut Vec<Pred>) {
        match self {
            Expect::Always(p) => out.push(*p),
            Expect::Since { before, since, .. } => {
                before.leaves(out);
                since.leaves(out);
            }
            Expect::ByFs { cases, otherwise } => {
                cases.iter().for_each(|(_, e)| e.leaves(out));
                otherwise.leaves(out);
            }
            Expect::Measure => {}
        }
    }

    /// Every kernel version at which this expectation changes, for tests that walk all cases.
    pub fn boundaries(&self, out: &mut Vec<KernelVersion>) {
        match self {
            Expect::Since {
                version,
                before,
                since,
            } => {
                out.push(*version);
                before.boundaries(out);
                since.boundaries(out);
            }
            Expect::ByFs { cases, otherwise } => {
                cases.iter().for_each(|(_, e)| e.boundaries(out));
                otherwise.boundaries(out);
            }
            Expect::Always(_) | Expect::Measure => {}
        }
    }
}

/// The target a refined one stands under: `ext4-dax-async` (a DAX file on a region that is not
/// synchronous, virtio-pmem) is `ext4-dax` for every rule that does not name it.
pub use zcmatrix_protocol::catalogue::base_target;

/// A typed predicate over an observed value.
#[derive(Clone, Copy, Debug)]
pub enum Pred {
    /// Exactly this value.
    Is(&'static str),
    /// One of these values.
    OneOf(&'static [&'static str]),
    /// An integer at least this large.
    AtLeast(i64),
    /// An integer in this inclusive range.
    Between(i64, i64),
    /// The disk's logical block size, as an integer.
    Lbs,
    /// A value of the form `name=value name=value`: each listed field is present and satisfies
    /// its predicate; fields not listed are measurements that ride along.
    Fields(&'static [(&'static str, Pred)]),
    /// The kernel's cap on one read, write or transfer, MAX_RW_COUNT = `INT_MAX & PAGE_MASK`:
    /// 0x7ffff000 with 4 KiB pages, 0x7fffc000 with 16 KiB, 0x7fff0000 with 64 KiB.
    MaxRwCount,
    /// Exactly this many pages, in bytes (a pipe's 16 default slots).
    Pages(i64),
    /// At least the pages a window of this many bytes covers, and at least one (the 65536-byte
    /// fault-around window: 16 pages of 4 KiB, 4 of 16 KiB, 1 of 64 KiB).
    AtLeastPagesOf(i64),
    /// This many bytes rounded up to whole pages (what a mapping of that length spans).
    PageRoundUp(i64),
    /// One value with 4 KiB pages and another with larger ones (an address or offset aligned
    /// to 4 KiB is page-aligned only there).
    ByPage {
        at_4k: &'static str,
        larger: &'static str,
    },
    /// One value with pages smaller than `limit` bytes and another from it up (a 64 KiB
    /// loopback segment holds whole 4 KiB and 16 KiB pages, never a whole 64 KiB one).
    PagesBelow {
        limit: u32,
        below: &'static str,
        from: &'static str,
    },
}

/// `bytes` rounded up to a multiple of `page_size`.
pub fn page_round_up(bytes: i64, page_size: u32) -> i64 {
    let p = i64::from(page_size);
    (bytes + p - 1) / p * p
}

fn by_page(page_size: u32, at_4k: &'static str, larger: &'static str) -> &'static str {
    pages_below(page_size, 4097, at_4k, larger)
}

fn pages_below(
    page_size: u32,
    limit: u32,
    below: &'static str,
    from: &'static str,
) -> &'static str {
    if page_size < limit {
        below
    } else {
        from
    }
}

/// MAX_RW_COUNT for a page size (include/linux/fs.h: `INT_MAX & PAGE_MASK`).
pub fn max_rw_count(page_size: u32) -> i64 {
    i64::from(i32::MAX) & !(i64::from(page_size) - 1)
}

/// The pages a window of `bytes` covers at `page_size`, at least one.
pub fn pages_of(bytes: i64, page_size: u32) -> i64 {
    (bytes / i64::from(page_size)).max(1)
}

impl Pred {
    pub fn accepts(&self, observed: &str, g: Geom) -> bool {
        let int = || observed.trim().parse::<i64>().ok();
        match self {
            Pred::Is(v) => observed == *v,
            Pred::OneOf(vs) => vs.contains(&observed),
            Pred::AtLeast(n) => int().is_some_and(|v| v >= *n),
            Pred::Between(lo, hi) => int().is_some_and(|v| (*lo..=*hi).contains(&v)),
            Pred::Lbs => g.lbs.is_some_and(|b| int() == Some(i64::from(b))),
            Pred::MaxRwCount => int() == Some(max_rw_count(g.page_size)),
            Pred::Pages(n) => int() == Some(n * i64::from(g.page_size)),
            Pred::AtLeastPagesOf(bytes) => {
                int().is_some_and(|v| v >= pages_of(*bytes, g.page_size))
            }
            Pred::PageRoundUp(bytes) => int() == Some(page_round_up(*bytes, g.page_size)),
            Pred::ByPage { at_4k, larger } => observed == by_page(g.page_size, at_4k, larger),
            Pred::PagesBelow { limit, below, from } => {
                observed == pages_below(g.page_size, *limit, below, from)
            }
            Pred::Fields(fields) => {
                let given = parse_fields(observed);
                !fields.is_empty()
                    && fields
                        .iter()
                        .all(|(name, p)| given.iter().any(|(n, v)| n == name && p.accepts(v, g)))
            }
        }
    }

    pub fn needs_lbs(&self) -> bool {
        match self {
            Pred::Lbs => true,
            Pred::Fields(fields) => fields.iter().any(|(_, p)| p.needs_lbs()),
            _ => false,
        }
    }

    /// The predicate in words, with the block size filled in when known.
    pub fn describe(&self, g: Geom) -> String {
        match self {
            Pred::Is(v) => (*v).to_string(),
            Pred::OneOf(vs) => vs.join(" or "),
            Pred::AtLeast(n) => format!(">= {n}"),
            Pred::Between(lo, hi) => format!("{lo}..={hi}"),
            Pred::Lbs => g
                .lbs
                .map_or("the logical block size".into(), |b| b.to_string()),
            Pred::MaxRwCount => format!(
                "{} (INT_MAX & PAGE_MASK, {}-byte pages)",
                max_rw_count(g.page_size),
                g.page_size
            ),
            Pred::Pages(n) => format!(
                "{} ({n} pages of {})",
                n * i64::from(g.page_size),
                g.page_size
            ),
            Pred::AtLeastPagesOf(bytes) => format!(
                ">= {} ({bytes} bytes in {}-byte pages, at least one)",
                pages_of(*bytes, g.page_size),
                g.page_size
            ),
            Pred::PageRoundUp(bytes) => format!(
                "{} ({bytes} rounded up to {}-byte pages)",
                page_round_up(*bytes, g.page_size),
                g.page_size
            ),
            Pred::ByPage { at_4k, larger } => format!(
                "{} ({}-byte pages)",
                by_page(g.page_size, at_4k, larger),
                g.page_size
            ),
            Pred::PagesBelow { limit, below, from } => format!(
                "{} ({}-byte pages; {below} below {limit}, {from} from it up)",
                pages_below(g.page_size, *limit, below, from),
                g.page_size
            ),
            Pred::Fields(fields) => fields
                .iter()
                .map(|(name, p)| match p {
                    Pred::AtLeast(_) | Pred::Between(..) => format!("{name} {}", p.describe(g)),
                    _ => format!("{name}={}", p.describe(g)),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// A value this predicate rejects, if there is one, among counts (integers of 0 or more)
    /// and words: see [`Pred::counterexample_from`].
    pub fn counterexample(&self, g: Geom) -> Option<String> {
        self.counterexample_from(g, 0)
    }

    /// A value this predicate rejects that a probe whose integers are `least` or more can
    /// produce: an integer where the predicate speaks of integers (a value of its own type),
    /// else a word. `None` where every such value is accepted.
    pub fn counterexample_from(&self, g: Geom, least: i64) -> Option<String> {
        const WORDS: [&str; 6] = ["ok", "EINVAL", "isolated", "leak", "none", "0"];
        let ints = |vs: &[&str]| -> Option<Vec<i64>> {
            vs.iter().map(|v| v.parse::<i64>().ok()).collect()
        };
        let int_cex = |vs: &[i64]| {
            (least..)
                .take(vs.len() + 1)
                .find(|v| !vs.contains(v))
                .map(|v| v.to_string())
        };
        let cex = match self {
            Pred::Is(v) => match ints(&[v]) {
                Some(n) => int_cex(&n),
                None => WORDS
                    .iter()
                    .find(|w| !self.accepts(w, g))
                    .map(|w| w.to_string()),
            },
            Pred::OneOf(vs) => match ints(vs) {
                Some(n) => int_cex(&n),
                None => WORDS
                    .iter()
                    .find(|w| !self.accepts(w, g))
                    .map(|w| w.to_string()),
            },
            Pred::AtLeast(n) => (*n > least).then(|| (n - 1).to_string()),
            Pred::Between(lo, hi) => Some(if *lo > least { lo - 1 } else { hi + 1 }.to_string()),
            Pred::Lbs => Some(g.lbs.map_or(0, |b| b + 1).to_string()),
            // The value of another page size is the interesting wrong answer.
            Pred::MaxRwCount => {
                Some(max_rw_count(if g.page_size == 4096 { 65536 } else { 4096 }).to_string())
            }
            Pred::Pages(n) => Some((n * i64::from(g.page_size) + 1).to_string()),
            Pred::AtLeastPagesOf(bytes) => {
                let below = pages_of(*bytes, g.page_size) - 1;
                (below >= least).then(|| below.to_string())
            }
            Pred::PageRoundUp(bytes) => Some(bytes.to_string()),
            Pred::ByPage { at_4k, larger } => {
                Some(if g.page_size <= 4096 { larger } else { at_4k }.to_string())
            }
            Pred::PagesBelow { limit, below, from } => {
                Some(pages_below(g.page_size, *limit, from, below).to_string())
            }
            Pred::Fields(fields) => fields.iter().find_map(|(name, p)| {
                p.counterexample_from(g, least).map(|v| {
                    let mut parts: Vec<String> = fields
                        .iter()
                        .filter(|(n, _)| n != name)
                        .filter_map(|(n, q)| Some(format!("{n}={}", q.example(g)?)))
                        .collect();
                    parts.push(format!("{name}={v}"));
                    parts.join(" ")
                })
            }),
        };
        cex.filter(|c| !self.accepts(c, g))
    }

    /// A value this predicate accepts, where one is easy to name.
    fn example(&self, g: Geom) -> Option<String> {
        match self {
            Pred::Is(v) => Some(v.to_string()),
            Pred::OneOf(vs) => vs.first().map(|v| v.to_string()),
            Pred::AtLeast(n) => Some(n.to_string()),
            Pred::Between(lo, _) => Some(lo.to_string()),
            Pred::Lbs => g.lbs.map(|b| b.to_string()),
            Pred::MaxRwCount => Some(max_rw_count(g.page_size).to_string()),
            Pred::Pages(n) => Some((n * i64::from(g.page_size)).to_string()),
            Pred::AtLeastPagesOf(bytes) => Some(pages_of(*bytes, g.page_size).to_string()),
            Pred::PageRoundUp(bytes) => Some(page_round_up(*bytes, g.page_size).to_string()),
            Pred::ByPage { at_4k, larger } => Some(by_page(g.page_size, at_4k, larger).to_string()),
            Pred::PagesBelow { limit, below, from } => {
                Some(pages_below(g.page_size, *limit, below, from).to_string())
            }
            Pred::Fields(_) => None,
        }
    }
}

/// `major=3 minor=12` → [("major", "3"), ("minor", "12")].
pub fn parse_fields(observed: &str) -> Vec<(&str, &str)> {
    observed
        .split_whitespace()
        .filter_map(|t| t.split_once('='))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const K5_10: KernelVersion = KernelVersion::new(5, 10, 0);
    const K6_1: KernelVersion = KernelVersion::new(6, 1, 0);

    const LEAK_BEFORE_5_18: Rule = Rule::new(
        Expect::since(5, 18, &Expect::is("leak"), &Expect::is("isolated")),
        "test",
    )
    .hazards(&["leak", "unreliable"]);

    fn on(kernel: KernelVersion, fs: Option<&str>, lbs: Option<u32>) -> Where<'_> {
        Where {
            kernel,
            fs,
            logical_block_size: lbs,
            page_size: 4096,
        }
    }

    #[test_case(K5_10, "leak", Outcome::Xfail; "the predicted hazard is xfail, not pass")]
    #[test_case(K5_10, "isolated", Outcome::Xpass; "a predicted hazard that did not happen is xpass")]
    #[test_case(K5_10, "wrong-data", Outcome::Fail; "neither the prediction nor safe is fail")]
    #[test_case(K6_1, "isolated", Outcome::Pass; "the safe value where it is expected is pass")]
    #[test_case(K6_1, "leak", Outcome::Fail; "a hazard where safety is expected is fail")]
    #[test_case(K6_1, "unreliable", Outcome::Fail; "another hazard where safety is expected is fail")]
    fn outcomes_follow_the_rule_and_its_hazards(k: KernelVersion, seen: &str, want: Outcome) {
        let v = LEAK_BEFORE_5_18.judge(&on(k, None, None), seen);
        assert_eq!(v.outcome, want, "{seen} on {k}: {v:?}");
    }

    #[test]
    fn expected_text_names_the_hazard_and_fills_in_the_block_size() {
        let v = LEAK_BEFORE_5_18.judge(&on(K5_10, None, None), "leak");
        assert_eq!(v.expected, "leak (a known hazard)");
        let r = Rule::new(
            Expect::Always(Pred::Fields(&[("offset", Pred::Lbs), ("len", Pred::Lbs)])),
            "t",
        );
        let v = r.judge(&on(K6_1, Some("ext4"), Some(4096)), "offset=4096 len=4096");
        assert_eq!(
            (v.outcome, v.expected.as_str()),
            (Outcome::Pass, "offset=4096 len=4096")
        );
        assert_eq!(
            r.judge(&on(K6_1, Some("ext4"), Some(4096)), "offset=512 len=4096")
                .outcome,
            Outcome::Fail
        );
        // Without a known block size there is nothing to judge against.
        assert_eq!(
            r.judge(&on(K6_1, Some("ext4"), None), "offset=512 len=512")
                .outcome,
            Outcome::Info
        );
    }

    #[test]
    fn a_measurement_is_info_whatever_it_saw() {
        let r = Rule::measure("fault counts");
        for seen in ["0", "major=1 minor=3", "anything"] {
            assert_eq!(
                r.judge(&on(K6_1, Some("xfs"), Some(512)), seen).outcome,
                Outcome::Info
            );
        }
    }

    #[test_case(Pred::Is("ok"), "ok", "EINVAL")]
    #[test_case(Pred::OneOf(&["EINVAL", "ok"]), "ok", "wrong-data")]
    #[test_case(Pred::AtLeast(16), "105", "15")]
    #[test_case(Pred::AtLeast(16), "16", "many")]
    #[test_case(Pred::Between(1, 4096), "512", "8192")]
    #[test_case(Pred::Lbs, "4096", "512")]
    #[test_case(Pred::Fields(&[("major", Pred::AtLeast(1))]), "major=3 minor=9", "major=0 minor=9")]
    #[test_case(Pred::Fields(&[("major", Pred::Is("0"))]), "minor=4 major=0", "minor=4")]
    fn predicates_accept_and_reject(p: Pred, yes: &str, no: &str) {
        let g = Geom::new(Some(4096), 4096);
        assert!(p.accepts(yes, g), "{p:?} rejects {yes}");
        assert!(!p.accepts(no, g), "{p:?} accepts {no}");
        let cex = p.counterexample(g).expect("a counterexample");
        assert!(!p.accepts(&cex, g), "{p:?}: {cex}");
    }

    /// What the kernel's page-size rules predict at 4, 16 and 64 KiB pages.
    #[test_case(4096, "2147479552", "262144", "16"; "4 KiB pages")]
    #[test_case(16384, "2147467264", "262144", "4"; "16 KiB pages")]
    #[test_case(65536, "2147418112", "1048576", "1"; "64 KiB pages")]
    fn page_size_rules_follow_the_page_size(page: u32, rw: &str, pipe: &str, window: &str) {
        let g = Geom::new(None, page);
        assert!(Pred::MaxRwCount.accepts(rw, g), "{rw} at {page}");
        assert_eq!(
            format!("{:#x}", rw.parse::<i64>().unwrap()),
            match page {
                4096 => "0x7ffff000",
                16384 => "0x7fffc000",
                _ => "0x7fff0000",
            }
        );
        // 16 slots of a pipe: 64 KiB, 256 KiB or 1 MiB.
        assert_eq!(Pred::Pages(16).accepts(pipe, g), page != 4096);
        assert!(Pred::Pages(16).accepts(&(16 * page).to_string(), g));
        let fault = Pred::AtLeastPagesOf(65536);
        assert!(fault.accepts(window, g));
        assert!(!fault.accepts(&(window.parse::<i64>().unwrap() - 1).to_string(), g));
        for p in [Pred::MaxRwCount, Pred::Pages(16), fault] {
            let cex = p.counterexample(g).unwrap();
            assert!(!p.accepts(&cex, g), "{p:?} at {page}: {cex}");
        }
        // Another page size's cap is a failure here: the rule can tell them apart.
        let other = if page == 4096 { 65536 } else { 4096 };
        assert!(!Pred::MaxRwCount.accepts(&max_rw_count(other).to_string(), g));
    }

    /// A pass that could not have been a fail is `info`: fault-around with 64 KiB pages is
    /// "at least one page a fault", which every fault maps. Counterexamples come from the
    /// probe's domain: integers where the rule speaks of integers, none below its least.
    #[test]
    fn a_rule_that_cannot_fail_here_gives_no_verdict() {
        let r = Rule::new(Expect::Always(Pred::AtLeastPagesOf(65536)), "t").least(1);
        let mut w = on(K6_1, Some("ext4"), Some(4096));
        assert_eq!(r.judge(&w, "16").outcome, Outcome::Pass);
        assert_eq!(r.judge(&w, "15").outcome, Outcome::Fail);
        w.page_size = 65536;
        let v = r.judge(&w, "1");
        assert_eq!(v.outcome, Outcome::Info, "{v:?}");
        assert!(v.expected.contains("cannot fail here"), "{v:?}");
        // A value outside what the rule accepts is still a failure.
        assert_eq!(r.judge(&w, "no-faults").outcome, Outcome::Fail);
        let g = Geom::new(None, 4096);
        assert_eq!(Pred::Is("0").counterexample(g).as_deref(), Some("1"));
        assert_eq!(Pred::Is("2").counterexample(g).as_deref(), Some("0"));
        assert_eq!(
            Pred::OneOf(&["0", "1"]).counterexample(g).as_deref(),
            Some("2")
        );
        assert_eq!(Pred::AtLeast(1).counterexample_from(g, 1), None);
        assert_eq!(
            Pred::Between(0, 150).counterexample(g).as_deref(),
            Some("151")
        );
    }

    #[test]
    fn alignment_to_4k_is_alignment_to_a_page_only_with_4k_pages() {
        let p = Pred::ByPage {
            at_4k: "ok",
            larger: "EINVAL",
        };
        for (page, yes, no) in [
            (4096, "ok", "EINVAL"),
            (16384, "EINVAL", "ok"),
            (65536, "EINVAL", "ok"),
        ] {
            let g = Geom::new(None, page);
            assert!(p.accepts(yes, g) && !p.accepts(no, g), "{page}");
            assert_eq!(p.counterexample(g).as_deref(), Some(no));
        }
        let r = Pred::PageRoundUp(5000);
        assert!(r.accepts("8192", Geom::new(None, 4096)));
        assert!(r.accepts("16384", Geom::new(None, 16384)));
        assert!(r.accepts("65536", Geom::new(None, 65536)));
        assert!(!r.accepts("8192", Geom::new(None, 65536)));
        assert!(!r.accepts("5000", Geom::new(None, 4096)));
    }

    #[test]
    fn a_page_size_rule_says_which_page_size_it_judged() {
        let r = Rule::new(Expect::Always(Pred::MaxRwCount), "t");
        let mut w = on(K6_1, Some("tmpfs"), None);
        w.page_size = 65536;
        let v = r.judge(&w, "2147418112");
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!(
            v.expected,
            "2147418112 (INT_MAX & PAGE_MASK, 65536-byte pages)"
        );
        assert_eq!(r.judge(&w, "2147479552").outcome, Outcome::Fail);
    }

    #[test]
    fn expectations_follow_version_and_fs() {
        const E: Expect = Expect::ByFs {
            cases: &[(
                "tmpfs",
                Expect::since(6, 6, &Expect::is("EINVAL"), &Expect::is("ok")),
            )],
            otherwise: &Expect::is("ok"),
        };
        let at = |k, fs| E.resolve(k, fs).unwrap().describe(Geom::new(None, 4096));
        assert_eq!(at(K6_1, Some("tmpfs")), "EINVAL");
        assert_eq!(at(KernelVersion::new(6, 12, 0), Some("tmpfs")), "ok");
        assert_eq!(at(K5_10, Some("ext4")), "ok");
        let mut b = Vec::new();
        E.boundaries(&mut b);
        assert_eq!(b, [KernelVersion::new(6, 6, 0)]);
    }
}
