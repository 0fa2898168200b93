//! `report diff OLD NEW`: what changed between two runs, as a scheduled CI job wants to say it
//! ("behaviour changed since last week"): a kernel release that moved, cells or checks added or
//! gone, and every result whose observation or outcome changed, new failures and hazards first.
//! The same change on several cells is one line naming them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use zcmatrix_protocol::{CheckResult, Measure, Outcome, Scope, Tolerance};

use crate::model::{mark, Report};
use crate::text::{code, escape};

/// How a result changed; the order is the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Now `fail` or `error`, before not.
    NewFailure,
    /// Now `xfail` or `xpass`, before not.
    NewHazard,
    /// Before `fail` or `error`, now not.
    Fixed,
    /// Any other change of observed value or outcome.
    Changed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NewFailure => "new failure",
            Kind::NewHazard => "new hazard",
            Kind::Fixed => "no longer failing",
            Kind::Changed => "changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    pub kind: Kind,
    pub id: String,
    /// (outcome, observed) before and after.
    pub old: (Outcome, String),
    pub new: (Outcome, String),
    /// What the rule expects now.
    pub expected: String,
    /// `6.1 ext4/512`, or `6.1 (kernel)` for kernel-scope results.
    pub places: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// (kernel, old release, new release) where the release moved.
    pub releases: Vec<(String, String, String)>,
    pub cells_added: Vec<String>,
    pub cells_gone: Vec<String>,
    pub checks_added: Vec<String>,
    pub checks_gone: Vec<String>,
    pub changes: Vec<Changed>,
}

/// (kernel, target or "(kernel)", full id) → result: kernel-scope results once per kernel.
type Index<'a> = BTreeMap<(String, String, String), &'a CheckResult>;

fn index<'a>(r: &'a Report, rename: &dyn Fn(&str) -> Option<String>) -> (Index<'a>, Vec<String>) {
    let mut idx = Index::new();
    let mut cells = Vec::new();
    for c in &r.cells {
        let Some(k) = rename(&c.kernel_spec) else {
            continue;
        };
        cells.push(format!("{k} {}", c.target()));
        for res in &c.results {
            let at = match res.scope {
                Scope::Kernel => "(kernel)".to_string(),
                Scope::Fs => c.target(),
            };
            idx.entry((k.clone(), at, res.full_id())).or_insert(res);
        }
    }
    (idx, cells)
}

fn release_of(r: &Report, k: &str) -> Option<String> {
    r.cells
        .iter()
        .find(|c| c.kernel_spec == k)
        .map(|c| c.kernel_release.clone().unwrap_or_else(|| "?".into()))
}

fn is_failure(o: Outcome) -> bool {
    o.is_failure()
}

fn is_hazard(o: Outcome) -> bool {
    matches!(o, Outcome::Xfail | Outcome::Xpass)
}

/// Whether two observations are the same labelled numbers, each within `abs` or `pct` % of the
/// larger: what a check that declares [`Tolerance::Numbers`] forgives (the fault counts of a
/// cold scan move by a page or two between runs of one kernel). Nothing else is forgiven: a
/// count that is a fact (`default_pmds` 0 → 2, one more io_uring opcode) is a change.
/// Measures are paired by name; both sides must have the same names.
pub fn within(old: &[Measure], new: &[Measure], abs: f64, pct: f64) -> bool {
    !old.is_empty()
        && old.len() == new.len()
        && old.iter().all(|a| {
            new.iter().find(|b| b.name == a.name).is_some_and(|b| {
                let (x, y) = (a.value, b.value);
                (x - y).abs() <= f64::max(abs, pct / 100.0 * x.abs().max(y.abs()))
            })
        })
}

/// Whether `new` is the same observation as `old` under the tolerance the check declares (the
/// newer record's; a record from before tolerances were declared gets [`Tolerance::legacy`]).
fn same(old: &CheckResult, new: &CheckResult) -> bool {
    let tolerance = new
        .tolerance
        .or(old.tolerance)
        .unwrap_or_else(|| new.tolerance());
    old.observed == new.observed
        || match tolerance {
            Tolerance::Exact => false,
            Tolerance::Numbers { abs, pct } => within(&old.measures, &new.measures, abs, pct),
            Tolerance::OutcomeOnly => true,
        }
}

impl Diff {
    /// Compares cells of the same kernel spec and target.
    pub fn new(old: &Report, new: &Report) -> Diff {
        Diff::between(old, new, None, false)
    }

    /// With `kernels = Some((a, b))`, compares only kernel `a` of OLD with kernel `b` of NEW, as if
    /// they were one kernel (named `a`): "my production kernel vs Debian 6.12". Unless `exact`,
    /// numbers that moved within the tolerance their check declares (see [`same`]) are no
    /// change.
    pub fn between(old: &Report, new: &Report, kernels: Option<(&str, &str)>, exact: bool) -> Diff {
        let keep_old = |k: &str| match kernels {
            Some((a, _)) => (k == a).then(|| k.to_string()),
            None => Some(k.to_string()),
        };
        let keep_new = |k: &str| match kernels {
            Some((a, b)) => (k == b).then(|| a.to_string()),
            None => Some(k.to_string()),
        };
        let (oi, ocells) = index(old, &keep_old);
        let (ni, ncells) = index(new, &keep_new);
        let mut d = Diff {
            cells_added: ncells
                .iter()
                .filter(|c| !ocells.contains(c))
                .cloned()
                .collect(),
            cells_gone: ocells
                .iter()
                .filter(|c| !ncells.contains(c))
                .cloned()
                .collect(),
            ..Diff::default()
        };
        for k in new.kernels() {
            let Some(name) = keep_new(k) else { continue };
            let old_k = kernels.map(|(a, _)| a.to_string()).unwrap_or(name.clone());
            if let (Some(a), Some(b)) = (release_of(old, &old_k), release_of(new, k)) {
                if a != b {
                    d.releases.push((name, a, b));
                }
            }
        }
        let ids = |i: &Index| {
            i.keys()
                .map(|(_, _, id)| id.clone())
                .collect::<BTreeSet<_>>()
        };
        let (oids, nids) = (ids(&oi), ids(&ni));
        d.checks_added = nids.difference(&oids).cloned().collect();
        d.checks_gone = oids.difference(&nids).cloned().collect();
        for (key, n) in &ni {
            let Some(o) = oi.get(key) else { continue };
            let unchanged = if exact {
                o.observed == n.observed
            } else {
                same(o, n)
            };
            if o.outcome == n.outcome && unchanged {
                continue;
            }
            let kind = if is_failure(n.outcome) && !is_failure(o.outcome) {
                Kind::NewFailure
            } else if is_hazard(n.outcome) && !is_hazard(o.outcome) {
                Kind::NewHazard
            } else if is_failure(o.outcome) && !is_failure(n.outcome) {
                Kind::Fixed
            } else {
                Kind::Changed
            };
            let place = format!("{} {}", key.0, key.1);
            let (old_v, new_v) = (
                (o.outcome, o.observed.clone()),
                (n.outcome, n.observed.clone()),
            );
            match d
                .changes
                .iter_mut()
                .find(|c| c.id == key.2 && c.old == old_v && c.new == new_v)
            {
                Some(c) => c.places.push(place),
                None => d.changes.push(Changed {
                    kind,
                    id: key.2.clone(),
                    old: old_v,
                    new: new_v,
                    expected: n.expected.clone(),
                    places: vec![place],
                }),
            }
        }
        d.changes
            .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        d
    }

    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }

    fn count(&self) -> usize {
        self.releases.len()
            + self.cells_added.len()
            + self.cells_gone.len()
            + self.checks_added.len()
            + self.checks_gone.len()
            + self.changes.len()
    }

    /// For a terminal.
    pub fn text(&self) -> String {
        if self.is_empty() {
            return "no change\n".into();
        }
        let mut t = String::new();
        for (k, a, b) in &self.releases {
            let _ = writeln!(t, "kernel {k}: release {a} → {b}");
        }
        for c in &self.cells_added {
            let _ = writeln!(t, "cell added: {c}");
        }
        for c in &self.cells_gone {
            let _ = writeln!(t, "cell gone: {c}");
        }
        for c in &self.changes {
            let _ = writeln!(
                t,
                "{}: {} on {}: {} {} → {} {} (expected {})",
                c.kind.as_str(),
                c.id,
                c.places.join(", "),
                c.old.0.as_str(),
                c.old.1,
                c.new.0.as_str(),
                c.new.1,
                c.expected
            );
        }
        for id in &self.checks_added {
            let _ = writeln!(t, "check added: {id}");
        }
        for id in &self.checks_gone {
            let _ = writeln!(t, "check gone: {id}");
        }
        let _ = writeln!(t, "{} change(s)", self.count());
        t
    }

    /// For a job summary or an issue.
    pub fn markdown(&self) -> String {
        let mut md = String::from("## zcmatrix: what changed between the two runs\n\n");
        if self.is_empty() {
            md.push_str("No change.\n");
            return md;
        }
        for (k, a, b) in &self.releases {
            let _ = writeln!(
                md,
                "- kernel **{}**: release {} → **{}**",
                escape(k),
                escape(a),
                escape(b)
            );
        }
        for c in &self.cells_added {
            let _ = writeln!(md, "- cell added: {}", escape(c));
        }
        for c in &self.cells_gone {
            let _ = writeln!(md, "- cell gone: {}", escape(c));
        }
        if !self.changes.is_empty() {
            md.push_str("\n| change | check | where | before | now | expected |\n|---|---|---|---|---|---|\n");
            for c in &self.changes {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} {} | {} {} | {} |",
                    c.kind.as_str(),
                    code(&c.id),
                    escape(&c.places.join(", ")),
                    mark(c.old.0),
                    escape(&c.old.1),
                    mark(c.new.0),
                    escape(&c.new.1),
                    escape(&c.expected)
                );
            }
            md.push('\n');
        }
        for id in &self.checks_added {
            let _ = writeln!(md, "- check added: {}", code(id));
        }
        for id in &self.checks_gone {
            let _ = writeln!(md, "- check gone: {}", code(id));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixture::{self, result};

    #[test]
    fn the_same_report_has_no_change() {
        let r = fixture::two_kernels();
        let d = Diff::new(&r, &r);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.text(), "no change\n");
    }

    #[test]
    fn finds_a_changed_observation_a_new_failure_a_new_release_and_checks_added_or_gone() {
        let old = fixture::two_kernels();
        let mut new = old.clone();
        for c in new.cells.iter_mut().filter(|c| c.kernel_spec == "6.1") {
            c.kernel_release = Some("6.1.0-2-cloud-amd64".into());
            for r in &mut c.results {
                if r.check == "dio.align" && c.fs == "ext4" {
                    r.observed = "1".into();
                }
                if r.check == "dio.open" && c.fs == "tmpfs" {
                    r.outcome = Outcome::Fail;
                    r.observed = "EINVAL".into();
                }
                // A kernel-scope result copied into both cells is one change, not two.
                if r.full_id() == "cow.leak[thp]" {
                    r.outcome = Outcome::Xfail;
                    r.observed = "leak".into();
                }
            }
            c.results.retain(|r| r.full_id() != "cow.leak[base]");
            c.results
                .push(result("splice.new", None, Outcome::Pass, "ok"));
        }
        let d = Diff::new(&old, &new);
        assert_eq!(
            d.releases,
            [(
                "6.1".into(),
                "6.1.0-1-cloud-amd64".into(),
                "6.1.0-2-cloud-amd64".into()
            )]
        );
        let lines: Vec<(Kind, &str, Vec<String>)> = d
            .changes
            .iter()
            .map(|c| (c.kind, c.id.as_str(), c.places.clone()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (Kind::NewFailure, "dio.open", vec!["6.1 tmpfs".into()]),
                (
                    Kind::NewHazard,
                    "cow.leak[thp]",
                    vec!["6.1 (kernel)".into()]
                ),
                (Kind::Changed, "dio.align", vec!["6.1 ext4/4096".into()]),
            ]
        );
        assert_eq!(d.checks_added, ["splice.new"]);
        // Gone from 6.1 but still on 5.10: not gone from the report.
        assert!(d.checks_gone.is_empty());
        let t = d.text();
        assert!(
            t.contains("new failure: dio.open on 6.1 tmpfs: pass ok → fail EINVAL (expected ok)"),
            "{t}"
        );
        assert!(
            t.contains("kernel 6.1: release 6.1.0-1-cloud-amd64 → 6.1.0-2-cloud-amd64"),
            "{t}"
        );
        let md = d.markdown();
        assert!(
            md.contains("| new failure | `dio.open` | 6.1 tmpfs | ✅ ok | ❌ EINVAL | ok |"),
            "{md}"
        );
    }

    #[test]
    fn a_declared_tolerance_forgives_noise_and_nothing_else_does() {
        let ms = |v: &[(&str, f64)]| -> Vec<Measure> {
            v.iter().map(|&(n, x)| Measure::new(n, x, "")).collect()
        };
        let faults = ms(&[("major", 129.0), ("minor", 256.0)]);
        assert!(within(
            &faults,
            &ms(&[("minor", 255.0), ("major", 129.0)]),
            2.0,
            5.0
        ));
        assert!(!within(
            &faults,
            &ms(&[("major", 1.0), ("minor", 256.0)]),
            2.0,
            5.0
        ));
        assert!(!within(&faults, &ms(&[("major", 129.0)]), 2.0, 5.0));
        assert!(!within(&ms(&[("", 4096.0)]), &ms(&[("", 512.0)]), 2.0, 5.0));
        assert!(
            !within(&[], &[], 2.0, 5.0),
            "no numbers: nothing to forgive"
        );
        let mut old = fixture::two_kernels();
        for r in old.cells.iter_mut().flat_map(|c| &mut c.results) {
            if r.check == "dio.align" && r.observed == "512" {
                r.measures = ms(&[("", 512.0)]);
            }
        }
        let moved = |tolerance: Option<Tolerance>| {
            let mut new = old.clone();
            for r in new.cells.iter_mut().flat_map(|c| &mut c.results) {
                if r.check == "dio.align" && r.observed == "512" {
                    r.observed = "513".into();
                    r.measures = ms(&[("", 513.0)]);
                    r.tolerance = tolerance;
                }
            }
            new
        };
        // A fault count that declares its noise: no change, unless --exact.
        let noisy = moved(Some(Tolerance::Numbers { abs: 2.0, pct: 5.0 }));
        assert!(Diff::new(&old, &noisy).is_empty());
        assert_eq!(Diff::between(&old, &noisy, None, true).changes.len(), 1);
        // A fact, declared or from a record written before tolerances were: a change.
        for fact in [Some(Tolerance::Exact), None] {
            assert_eq!(Diff::new(&old, &moved(fact)).changes.len(), 1, "{fact:?}");
        }
    }

    /// Small real changes of facts: the whole file PMD-mapped now, one more io_uring opcode.
    /// Both are reported, whatever their size.
    #[test]
    fn small_changes_of_facts_are_changes() {
        let t = Some(("ext4", Some(4096)));
        let run = |pmds: &str, opcodes: &str| {
            let rs = vec![
                result("mmap.large_folio", t, Outcome::Info, pmds),
                result("uring.opcodes", None, Outcome::Info, opcodes),
            ];
            Report::new(None, vec![fixture::cell("6.12", "ext4", Some(4096), rs)])
        };
        let old = run(
            "default_pmds=0 huge_always_pmds=2",
            "supported=58 highest=57",
        );
        let new = run(
            "default_pmds=2 huge_always_pmds=2",
            "supported=59 highest=58",
        );
        let d = Diff::new(&old, &new);
        let ids: Vec<&str> = d.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["mmap.large_folio", "uring.opcodes"], "{d:?}");
    }

    #[test]
    fn one_kernel_can_be_compared_with_another() {
        let r = fixture::two_kernels();
        let d = Diff::between(&r, &r, Some(("5.10", "6.1")), false);
        assert_eq!(
            d.releases,
            [(
                "5.10".into(),
                "5.10.0-1-cloud-amd64".into(),
                "6.1.0-1-cloud-amd64".into()
            )]
        );
        let ids: Vec<&str> = d.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["cow.leak[thp]", "dio.align"]);
        assert!(d.cells_added.is_empty() && d.cells_gone.is_empty());
    }
}
