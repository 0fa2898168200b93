//! `report diff OLD NEW`: what changed between two runs, as a scheduled CI job wants to say it
//! ("behaviour changed since last week"): a kernel release that moved, cells or checks added or
//! gone, and every result whose observation or outcome changed, new failures and hazards first.
//! The same change on several cells is one line naming them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use zcmatrix_protocol::{CheckResult, Outcome, Scope};

use crate::markdown::{code, escape};
use crate::model::{mark, Report};

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

/// Whether two observations are the same labelled numbers, each within 2 or 5 % of the other:
/// the fault counts of a cold scan move by a page or two between runs of the same kernel, and a
/// weekly diff that always reports them would teach people to ignore it.
pub fn jitter(old: &str, new: &str) -> bool {
    let (a, b) = (crate::charts::numbers(old), crate::charts::numbers(new));
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(&b).all(|((la, x), (lb, y))| {
            la == lb && (x - y).abs() <= f64::max(2.0, 0.05 * x.abs().max(y.abs()))
        })
}

impl Diff {
    /// Compares cells of the same kernel spec and target.
    pub fn new(old: &Report, new: &Report) -> Diff {
        Diff::between(old, new, None, false)
    }

    /// With `kernels = Some((a, b))`, compares only kernel `a` of OLD with kernel `b` of NEW, as if
    /// they were one kernel (named `a`): "my production kernel vs Debian 6.12". Unless `exact`,
    /// numbers that moved by run-to-run noise (see [`jitter`]) are no change.
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
            // A timing (the cost family) moves with the machine's load: only its outcome counts.
            let noise = jitter(&o.observed, &n.observed) || crate::cost::is_cost(&key.2);
            if o.outcome == n.outcome && (o.observed == n.observed || !exact && noise) {
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
    fn a_page_or_two_of_fault_count_noise_is_no_change_unless_exact() {
        assert!(jitter("major=129 minor=256", "major=129 minor=255"));
        assert!(!jitter("major=129 minor=256", "major=1 minor=256"));
        assert!(!jitter("4096", "512") && !jitter("ok", "ok!"));
        let old = fixture::two_kernels();
        let mut new = old.clone();
        for r in new.cells.iter_mut().flat_map(|c| &mut c.results) {
            if r.check == "dio.align" && r.observed == "512" {
                r.observed = "513".into();
            }
        }
        assert!(Diff::new(&old, &new).is_empty());
        assert_eq!(Diff::between(&old, &new, None, true).changes.len(), 1);
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
