//! Rules: what a documented source says the kernel does, as typed predicates over the observed
//! value, per filesystem and kernel version, and which observed values are hazards.
//!
//! Judging (the only place an outcome is decided), after KTAP's XFAIL/XPASS:
//! observed ∈ expected → `pass`, or `xfail` when the value is a hazard;
//! observed ∉ expected → `fail`, or `xpass` when the rule expected a hazard here and the kernel
//! behaved well. A rule that is a measurement gives `info`.

use zcmatrix_protocol::Outcome;

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
}

impl Rule {
    pub const fn new(expect: Expect, evidence: &'static str) -> Rule {
        Rule {
            expect,
            hazards: &[],
            evidence,
        }
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
                    pred.describe(None)
                ),
            };
        }
        let lbs = on.logical_block_size;
        let hazard_expected = self.expects_hazard(&pred, lbs);
        let is_hazard = self.hazards.contains(&observed);
        let outcome = match (pred.accepts(observed, lbs), is_hazard) {
            (true, true) => Outcome::Xfail,
            (true, false) => Outcome::Pass,
            // Good news only when what it did is what the rule calls right elsewhere.
            (false, false) if hazard_expected && self.safe_elsewhere(observed, lbs) => {
                Outcome::Xpass
            }
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
                let lbs = on.logical_block_size;
                let mut text = pred.describe(lbs);
                if self.expects_hazard(&pred, lbs) {
                    text.push_str(" (a known hazard)");
                }
                text
            }
        }
    }

    fn expects_hazard(&self, pred: &Pred, lbs: Option<u32>) -> bool {
        self.hazards.iter().any(|h| pred.accepts(h, lbs))
    }
}

impl Rule {
    /// Whether some case of this rule accepts `observed` as a safe value.
    fn safe_elsewhere(&self, observed: &str, lbs: Option<u32>) -> bool {
        let mut preds = Vec::new();
        self.expect.leaves(&mut preds);
        preds
            .iter()
            .any(|p| p.accepts(observed, lbs) && !self.hazards.iter().any(|h| p.accepts(h, lbs)))
    }
}

/// The machine a rule speaks about.
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    pub kernel: KernelVersion,
    pub fs: Option<&'a str>,
    pub logical_block_size: Option<u32>,
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
}

impl Pred {
    pub fn accepts(&self, observed: &str, lbs: Option<u32>) -> bool {
        let int = || observed.trim().parse::<i64>().ok();
        match self {
            Pred::Is(v) => observed == *v,
            Pred::OneOf(vs) => vs.contains(&observed),
            Pred::AtLeast(n) => int().is_some_and(|v| v >= *n),
            Pred::Between(lo, hi) => int().is_some_and(|v| (*lo..=*hi).contains(&v)),
            Pred::Lbs => lbs.is_some_and(|b| int() == Some(i64::from(b))),
            Pred::Fields(fields) => {
                let given = parse_fields(observed);
                !fields.is_empty()
                    && fields
                        .iter()
                        .all(|(name, p)| given.iter().any(|(n, v)| n == name && p.accepts(v, lbs)))
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
    pub fn describe(&self, lbs: Option<u32>) -> String {
        match self {
            Pred::Is(v) => (*v).to_string(),
            Pred::OneOf(vs) => vs.join(" or "),
            Pred::AtLeast(n) => format!(">= {n}"),
            Pred::Between(lo, hi) => format!("{lo}..={hi}"),
            Pred::Lbs => lbs.map_or("the logical block size".into(), |b| b.to_string()),
            Pred::Fields(fields) => fields
                .iter()
                .map(|(name, p)| match p {
                    Pred::AtLeast(_) | Pred::Between(..) => format!("{name} {}", p.describe(lbs)),
                    _ => format!("{name}={}", p.describe(lbs)),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// A value this predicate rejects, if there is one: the proof that a rule can fail.
    pub fn counterexample(&self, lbs: Option<u32>) -> Option<String> {
        const WORDS: [&str; 6] = ["ok", "EINVAL", "isolated", "leak", "none", "0"];
        let cex = match self {
            Pred::Is(_) | Pred::OneOf(_) => WORDS
                .iter()
                .find(|w| !self.accepts(w, lbs))
                .map(|w| w.to_string()),
            Pred::AtLeast(n) => Some((n - 1).to_string()),
            Pred::Between(_, hi) => Some((hi + 1).to_string()),
            Pred::Lbs => Some(lbs.map_or(0, |b| b + 1).to_string()),
            Pred::Fields(fields) => fields.iter().find_map(|(name, p)| {
                p.counterexample(lbs).map(|v| {
                    let mut parts: Vec<String> = fields
                        .iter()
                        .filter(|(n, _)| n != name)
                        .filter_map(|(n, q)| Some(format!("{n}={}", q.example(lbs)?)))
                        .collect();
                    parts.push(format!("{name}={v}"));
                    parts.join(" ")
                })
            }),
        };
        cex.filter(|c| !self.accepts(c, lbs))
    }

    /// A value this predicate accepts, where one is easy to name.
    fn example(&self, lbs: Option<u32>) -> Option<String> {
        match self {
            Pred::Is(v) => Some(v.to_string()),
            Pred::OneOf(vs) => vs.first().map(|v| v.to_string()),
            Pred::AtLeast(n) => Some(n.to_string()),
            Pred::Between(lo, _) => Some(lo.to_string()),
            Pred::Lbs => lbs.map(|b| b.to_string()),
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
        assert!(p.accepts(yes, Some(4096)), "{p:?} rejects {yes}");
        assert!(!p.accepts(no, Some(4096)), "{p:?} accepts {no}");
        let cex = p.counterexample(Some(4096)).expect("a counterexample");
        assert!(!p.accepts(&cex, Some(4096)), "{p:?}: {cex}");
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
        let at = |k, fs| E.resolve(k, fs).unwrap().describe(None);
        assert_eq!(at(K6_1, Some("tmpfs")), "EINVAL");
        assert_eq!(at(KernelVersion::new(6, 12, 0), Some("tmpfs")), "ok");
        assert_eq!(at(K5_10, Some("ext4")), "ok");
        let mut b = Vec::new();
        E.boundaries(&mut b);
        assert_eq!(b, [KernelVersion::new(6, 6, 0)]);
    }
}
