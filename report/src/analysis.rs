//! What a reader needs first, computed once from the model for every format: what changes
//! between kernels and filesystems, the hazards and deviations, skips by reason, and the
//! per-family grids with each row's usual value.

use std::collections::{BTreeMap, BTreeSet};

use zcmatrix_protocol::{CheckResult, Outcome, Scope};

use crate::model::{family, Cell, Report, Status};

/// Along which axis a check's observation differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    /// Same filesystem and geometry (or kernel scope), different kernels.
    Kernels,
    /// Same kernel, different filesystems or geometries.
    Filesystems,
    /// Same series and target, kernels of different page sizes or architectures (`7.2` on
    /// x86_64 against `7.2-arm64-16k`).
    PageSizes,
}

/// One line of "What changes".
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `family.name[variant]`, or `family.name[v1, v2]` when several variants change alike.
    pub id: String,
    /// The full ids this line stands for (one, or each variant merged into it).
    pub ids: Vec<String>,
    pub family: String,
    pub axis: Axis,
    /// Where the same sequence of values was seen: targets (`ext4/4096`, or `kernel` for
    /// kernel-scope checks) for [`Axis::Kernels`], kernels for [`Axis::Filesystems`].
    pub places: Vec<String>,
    /// The values in order, each with where it holds: kernels in run order (consecutive equal
    /// values merged) for [`Axis::Kernels`], targets grouped by value for the other axis.
    pub values: Vec<(Vec<String>, String)>,
    /// Whether a result involved is a `fail`, `xfail` or `xpass`: such lines come first.
    pub hazard: bool,
    /// The evidence of the rules that judged these results, each once.
    pub evidence: Vec<String>,
    /// Whether every result involved is a measurement (`info`): listed after the verdicts.
    pub measurement: bool,
    /// Whether every result involved passed its rule (or was the hazard it predicts): the
    /// difference is the one the rules predict, such as a limit written in pages.
    pub predicted: bool,
}

impl Change {
    /// `changed between 5.10 and 6.1`, once per step (kernel axis only).
    pub fn transitions(&self) -> Vec<String> {
        if self.axis != Axis::Kernels {
            return Vec::new();
        }
        self.values
            .windows(2)
            .map(|w| {
                format!(
                    "changed between {} and {}",
                    w[0].0.last().expect("a value holds somewhere"),
                    w[1].0[0]
                )
            })
            .collect()
    }

    /// `4096 (5.10) → 512 (6.1, 6.12)` or `512 (ext4/512, xfs/512) · EINVAL (tmpfs)`.
    pub fn values_text(&self) -> String {
        let sep = match self.axis {
            Axis::Kernels => " → ",
            Axis::Filesystems | Axis::PageSizes => " · ",
        };
        self.values
            .iter()
            .map(|(at, v)| format!("{v} ({})", at.join(", ")))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// `on ext4/4096, xfs/4096` or `on 6.1, 6.12`.
    pub fn where_text(&self) -> String {
        match self.axis {
            Axis::Kernels => format!("on {}", self.places.join(", ")),
            Axis::Filesystems => format!("between filesystems on {}", self.places.join(", ")),
            Axis::PageSizes => format!(
                "between page sizes on {}{}",
                self.places.join(", "),
                if self.predicted && !self.measurement {
                    ", as the rule predicts for each"
                } else {
                    ""
                }
            ),
        }
    }
}

/// One row of "Hazards and deviations": the same finding on several cells is one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub outcome: Outcome,
    pub id: String,
    pub observed: String,
    pub expected: String,
    pub evidence: String,
    /// Cells (`6.1 ext4/4096`), or `6.1 (kernel)` for kernel-scope results, in run order.
    pub places: Vec<String>,
    /// Index of the first cell it was seen in (for the console log link).
    pub first_cell: usize,
}

/// Skips that share a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipGroup {
    pub reason: String,
    /// Check id → where it skipped for this reason.
    pub checks: Vec<(String, Vec<String>)>,
}

impl SkipGroup {
    /// The checks of this group as few lines as names allow: checks that skipped in the same
    /// places are one line, variants of a check are one `check[a, b]`, and checks with the same
    /// variants are one `{check, other}[a, b]`. Each line is (checks, places).
    pub fn lines(&self) -> Vec<(String, String)> {
        let mut by_places: Vec<(String, Vec<&str>)> = Vec::new();
        for (id, places) in &self.checks {
            let p = places.join(", ");
            match by_places.iter_mut().find(|(q, _)| *q == p) {
                Some((_, ids)) => ids.push(id),
                None => by_places.push((p, vec![id])),
            }
        }
        by_places
            .into_iter()
            .map(|(places, ids)| (compact_ids(&ids), places))
            .collect()
    }
}

/// `a[x] a[y] b[x] b[y] c` → `{a, b}[x, y]; c`.
fn compact_ids(ids: &[&str]) -> String {
    // base → its variants, in first-seen order.
    let mut bases: Vec<(&str, Vec<&str>)> = Vec::new();
    for id in ids {
        let (base, variant) = match id.split_once('[') {
            Some((b, v)) => (b, Some(v.trim_end_matches(']'))),
            None => (*id, None),
        };
        let entry = match bases.iter_mut().position(|(b, _)| *b == base) {
            Some(i) => &mut bases[i].1,
            None => {
                bases.push((base, Vec::new()));
                &mut bases.last_mut().expect("just pushed").1
            }
        };
        entry.extend(variant);
    }
    // variant list → the bases that have exactly it.
    let mut by_variants: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for (base, variants) in bases {
        match by_variants.iter_mut().find(|(v, _)| *v == variants) {
            Some((_, bs)) => bs.push(base),
            None => by_variants.push((variants, vec![base])),
        }
    }
    by_variants
        .into_iter()
        .map(|(variants, bases)| {
            let head = if bases.len() == 1 {
                bases[0].to_string()
            } else {
                format!("{{{}}}", bases.join(", "))
            };
            if variants.is_empty() {
                head
            } else {
                format!("{head}[{}]", variants.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A column of a grid: a cell (or a variant of one kernel's cell).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub label: String,
    /// The cell whose console log explains this column.
    pub cell: usize,
    pub kernel: String,
    /// The filesystem target (`ext4/4096`), or `None` for kernel-scope columns.
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GridRow<'a> {
    pub id: String,
    pub cells: Vec<Option<&'a CheckResult>>,
    /// The value most cells of the row show; cells showing it are quiet.
    pub usual: Option<String>,
    /// Whether this check changes anywhere in the report (what "differences only" keeps).
    pub changes: bool,
}

impl GridRow<'_> {
    /// Whether this entry of the row stands out (differs from the row's usual value, or is not
    /// a plain pass or measurement).
    pub fn stands_out(&self, i: usize) -> bool {
        match self.cells[i] {
            Some(r) => {
                Some(value(r)) != self.usual || !matches!(r.outcome, Outcome::Pass | Outcome::Info)
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Grid<'a> {
    pub title: String,
    /// The kernel the grid belongs to, for the kernel filter; `None` when it spans kernels.
    pub kernel: Option<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<GridRow<'a>>,
}

/// A rule as the results state it: what was expected, on which kernels, and the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub expected: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Family<'a> {
    pub name: String,
    pub grids: Vec<Grid<'a>>,
    pub rules: Vec<Rule>,
}

pub struct Analysis<'a> {
    pub report: &'a Report,
    pub kernels: Vec<String>,
    pub changes: Vec<Change>,
    pub findings: Vec<Finding>,
    pub skips: Vec<SkipGroup>,
    pub families: Vec<Family<'a>>,
    /// Cells that did not finish cleanly.
    pub unclean: Vec<usize>,
    /// Kernel splats (kind, excerpt, kernels it was seen on), each once.
    pub splats: Vec<(String, String, Vec<String>)>,
}

/// The value a result is compared by: what the kernel did, or that it could not be measured.
pub fn value(r: &CheckResult) -> String {
    match r.outcome {
        Outcome::Skip => "skip".into(),
        Outcome::Error => "error".into(),
        _ => r.observed.clone(),
    }
}

/// The order "Hazards and deviations" lists outcomes in: contradictions first, then what could
/// not be measured, good news, and the known hazards.
pub const FINDING_ORDER: [Outcome; 4] = [
    Outcome::Fail,
    Outcome::Error,
    Outcome::Xpass,
    Outcome::Xfail,
];

fn is_hazard(o: Outcome) -> bool {
    matches!(o, Outcome::Fail | Outcome::Xfail | Outcome::Xpass)
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Where a result sits for "a kernel-scope result once per kernel".
fn place(c: &Cell, r: &CheckResult) -> String {
    match r.scope {
        Scope::Kernel => format!("{} (kernel)", c.kernel_spec),
        Scope::Fs => c.label(),
    }
}

impl Analysis<'_> {
    /// `ext4/512, xfs/512 on every kernel; tmpfs on 6.12, 7.2` for places such as `6.1
    /// ext4/512` and `6.1 (kernel)`: targets that share their kernels are named together.
    pub fn places_text(&self, places: &[String]) -> String {
        let all_targets: Vec<String> = {
            let mut t: Vec<String> = Vec::new();
            for c in &self.report.cells {
                push_unique(&mut t, &c.target());
            }
            t
        };
        // target → kernels, in first-seen order of targets.
        let mut by_target: Vec<(String, Vec<String>)> = Vec::new();
        for p in places {
            let (k, t) = p.split_once(' ').unwrap_or((p.as_str(), ""));
            match by_target.iter_mut().find(|(x, _)| x == t) {
                Some((_, ks)) => push_unique(ks, k),
                None => by_target.push((t.to_string(), vec![k.to_string()])),
            }
        }
        let mut groups: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for (t, ks) in by_target {
            match groups.iter_mut().find(|(x, _)| *x == ks) {
                Some((_, ts)) => ts.push(t),
                None => groups.push((ks, vec![t])),
            }
        }
        groups
            .into_iter()
            .map(|(ks, ts)| {
                let on = if ks.len() == self.kernels.len() && self.kernels.len() > 1 {
                    "every kernel".to_string()
                } else {
                    ks.join(", ")
                };
                let every_target = ts.len() == all_targets.len() && all_targets.len() > 1;
                match ts.as_slice() {
                    [t] if t == "(kernel)" => format!("{on} (kernel)"),
                    _ if every_target => format!("every filesystem on {on}"),
                    _ => format!("{} on {on}", ts.join(", ")),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl<'a> Analysis<'a> {
    pub fn new(report: &'a Report) -> Analysis<'a> {
        let kernels: Vec<String> = report.kernels().iter().map(|s| s.to_string()).collect();
        let changes = changes(report, &kernels);
        let changed: BTreeSet<&str> = changes
            .iter()
            .flat_map(|c| &c.ids)
            .map(String::as_str)
            .collect();
        let families = families(report, &kernels, &changed);
        Analysis {
            report,
            changes,
            findings: findings(report),
            skips: skips(report),
            families,
            splats: splats(report),
            unclean: (0..report.cells.len())
                .filter(|&i| report.cells[i].status != Status::Completed)
                .collect(),
            kernels,
        }
    }

    /// Ids of checks that change somewhere.
    pub fn changed_ids(&self) -> BTreeSet<&str> {
        self.changes
            .iter()
            .flat_map(|c| &c.ids)
            .map(String::as_str)
            .collect()
    }
}

/// Every check whose observation differs between kernels (same target) or between targets (same
/// kernel). Equal sequences are merged into one line naming every place they hold.
fn changes(report: &Report, kernels: &[String]) -> Vec<Change> {
    // id → target ("kernel" for kernel scope) → kernel → result. The first cell of a kernel
    // speaks for its kernel-scope results (they are copies).
    type ByTarget<'r> = BTreeMap<String, BTreeMap<String, &'r CheckResult>>;
    let mut by_id: BTreeMap<String, ByTarget> = BTreeMap::new();
    let mut target_order: Vec<String> = Vec::new();
    for c in &report.cells {
        push_unique(&mut target_order, &c.target());
        // Timings move from run to run and between cells: the cost section shows them.
        for r in c
            .results
            .iter()
            .filter(|r| !crate::section::has_own_section(&r.check))
        {
            let target = match r.scope {
                Scope::Kernel => "kernel".to_string(),
                Scope::Fs => c.target(),
            };
            by_id
                .entry(r.full_id())
                .or_default()
                .entry(target)
                .or_default()
                .entry(c.kernel_spec.clone())
                .or_insert(r);
        }
    }
    // Kernels of one machine (architecture, page size), in run order; and the series (`7.2`)
    // with kernels of more than one machine.
    let mut machine_groups: Vec<Vec<String>> = Vec::new();
    let mut group_keys: Vec<(Option<String>, Option<u32>)> = Vec::new();
    let mut series: Vec<(String, Vec<String>)> = Vec::new();
    for k in kernels {
        let Some(c) = report.cells.iter().find(|c| c.kernel_spec == *k) else {
            continue;
        };
        let key = (c.arch.clone(), c.page_size);
        match group_keys.iter().position(|g| *g == key) {
            Some(i) => machine_groups[i].push(k.clone()),
            None => {
                group_keys.push(key);
                machine_groups.push(vec![k.clone()]);
            }
        }
        if let Some(s) = c.kernel_release.as_deref().and_then(series_of) {
            match series.iter_mut().find(|(x, _)| *x == s) {
                Some((_, ks)) => ks.push(k.clone()),
                None => series.push((s, vec![k.clone()])),
            }
        }
    }
    series.retain(|(_, ks)| {
        let mut machines: Vec<(Option<&str>, Option<u32>)> = ks
            .iter()
            .filter_map(|k| report.cells.iter().find(|c| c.kernel_spec == *k))
            .map(|c| (c.arch.as_deref(), c.page_size))
            .collect();
        machines.sort_unstable();
        machines.dedup();
        machines.len() > 1
    });
    let mut out: Vec<Change> = Vec::new();
    for (id, targets) in &by_id {
        let mut merge =
            |axis: Axis, place: &str, values: Vec<(Vec<String>, String)>, rs: Vec<&CheckResult>| {
                let same = out
                    .iter_mut()
                    .find(|c| c.id == *id && c.axis == axis && c.values == values);
                let change = match same {
                    Some(c) => c,
                    None => {
                        out.push(Change {
                            id: id.clone(),
                            ids: vec![id.clone()],
                            family: family(id).to_string(),
                            axis,
                            places: Vec::new(),
                            values,
                            hazard: false,
                            evidence: Vec::new(),
                            measurement: true,
                            predicted: true,
                        });
                        out.last_mut().expect("just pushed")
                    }
                };
                push_unique(&mut change.places, place);
                for r in rs {
                    change.hazard |= is_hazard(r.outcome);
                    change.measurement &= r.outcome == Outcome::Info;
                    change.predicted &= matches!(r.outcome, Outcome::Pass | Outcome::Xfail);
                    push_unique(&mut change.evidence, &r.evidence);
                }
            };
        // Between kernels, per target, in run order of kernels; consecutive equal values merge.
        // Only kernels of one architecture and page size form a sequence: 7.2 on arm64 with
        // 16 KiB pages is no step after 7.2 on x86_64 (that is the page-size axis below).
        for target in target_order.iter().map(String::as_str).chain(["kernel"]) {
            let Some(per_kernel) = targets.get(target) else {
                continue;
            };
            for group in &machine_groups {
                let mut values: Vec<(Vec<String>, String)> = Vec::new();
                for k in kernels.iter().filter(|k| group.contains(k)) {
                    let Some(r) = per_kernel.get(k) else { continue };
                    let v = value(r);
                    match values.last_mut() {
                        Some((at, last)) if *last == v => at.push(k.clone()),
                        _ => values.push((vec![k.clone()], v)),
                    }
                }
                if measured_differently(&values) {
                    merge(
                        Axis::Kernels,
                        target,
                        values,
                        per_kernel
                            .iter()
                            .filter(|(k, _)| group.contains(k))
                            .map(|(_, r)| *r)
                            .collect(),
                    );
                }
            }
        }
        // Between page sizes (and architectures), per target and series: the kernels of one
        // series grouped by value, each named with its machine.
        for target in target_order.iter().map(String::as_str).chain(["kernel"]) {
            let Some(per_kernel) = targets.get(target) else {
                continue;
            };
            for (_, ks) in &series {
                let mut values: Vec<(Vec<String>, String)> = Vec::new();
                let mut rs = Vec::new();
                for k in ks {
                    let Some(r) = per_kernel.get(k) else { continue };
                    let v = value(r);
                    let at = format!("{k}: {}", machine_label(report, k));
                    match values.iter_mut().find(|(_, x)| *x == v) {
                        Some((ats, _)) => ats.push(at),
                        None => values.push((vec![at], v)),
                    }
                    rs.push(*r);
                }
                if measured_differently(&values) {
                    merge(Axis::PageSizes, target, values, rs);
                }
            }
        }
        // Between targets, per kernel; targets grouped by value.
        for k in kernels {
            let mut values: Vec<(Vec<String>, String)> = Vec::new();
            let mut rs = Vec::new();
            for target in &target_order {
                let Some(r) = targets.get(target).and_then(|m| m.get(k)) else {
                    continue;
                };
                let v = value(r);
                match values.iter_mut().find(|(_, x)| *x == v) {
                    Some((at, _)) => at.push(target.clone()),
                    None => values.push((vec![target.clone()], v)),
                }
                rs.push(*r);
            }
            if measured_differently(&values) {
                merge(Axis::Filesystems, k, values, rs);
            }
        }
    }
    let mut out = merge_variants(out);
    // Hazards first, verdicts before measurements, then by family and id (BTreeMap order).
    // Then changes between kernels before differences between filesystems: what a kernel
    // upgrade changes is the news a reader looks for first.
    out.sort_by_key(|c| {
        (
            !c.hazard,
            c.measurement,
            c.axis != Axis::Kernels,
            c.family.clone(),
        )
    });
    out
}

/// `7.2` of a release such as `7.2.13+deb14-arm64-16k`: the series its kernels share.
fn series_of(release: &str) -> Option<String> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let (major, minor) = (parts.next()?, parts.next()?);
    (!major.is_empty() && !minor.is_empty()).then(|| format!("{major}.{minor}"))
}

/// `arm64, 16 KiB pages` for the kernel's guest, from what its harness reported.
fn machine_label(report: &Report, kernel: &str) -> String {
    let c = report.cells.iter().find(|c| c.kernel_spec == kernel);
    let arch = c.and_then(|c| c.arch.clone()).unwrap_or_else(|| "?".into());
    match c.and_then(|c| c.page_size) {
        Some(p) => format!("{arch}, {} KiB pages", p / 1024),
        None => arch,
    }
}

/// Whether at least two places measured different things. A skip is not a measurement: a check
/// that runs only where its precondition exists (O_DIRECT on tmpfs from 6.6, mTHP from 6.8) is
/// not a change of behaviour; the check that measures the precondition carries that change, and
/// the skip's reason is listed under "Skipped, by reason".
fn measured_differently(values: &[(Vec<String>, String)]) -> bool {
    let mut measured: Vec<&str> = values
        .iter()
        .map(|(_, v)| v.as_str())
        .filter(|v| *v != "skip")
        .collect();
    measured.sort_unstable();
    measured.dedup();
    measured.len() > 1
}

/// Checks of one family that change alike (the mTHP sizes that appear together in 6.12, the
/// vmsplice scenarios 5.18 fixed) are one line: `{cow.a, cow.b}[thp, swapped_thp]`, with the
/// evidence of each rule once.
fn merge_variants(changes: Vec<Change>) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for c in changes {
        let twin = out.iter_mut().find(|o| {
            (
                &o.family,
                o.axis,
                &o.places,
                &o.values,
                o.hazard,
                o.measurement,
            ) == (
                &c.family,
                c.axis,
                &c.places,
                &c.values,
                c.hazard,
                c.measurement,
            )
        });
        match twin {
            Some(o) => {
                o.ids.extend(c.ids);
                o.predicted &= c.predicted;
                for e in &c.evidence {
                    push_unique(&mut o.evidence, e);
                }
                let ids: Vec<&str> = o.ids.iter().map(String::as_str).collect();
                o.id = compact_ids(&ids);
            }
            None => out.push(c),
        }
    }
    out
}

fn findings(report: &Report) -> Vec<Finding> {
    let mut rows: Vec<Finding> = Vec::new();
    for (i, c) in report.cells.iter().enumerate() {
        for r in c
            .results
            .iter()
            .filter(|r| FINDING_ORDER.contains(&r.outcome))
        {
            let observed = match r.outcome {
                Outcome::Error => format!("{}: {}", r.observed, r.detail),
                _ => r.observed.clone(),
            };
            let id = r.full_id();
            let p = place(c, r);
            match rows.iter_mut().find(|f| {
                f.outcome == r.outcome
                    && f.id == id
                    && f.observed == observed
                    && f.expected == r.expected
                    && f.evidence == r.evidence
            }) {
                Some(f) => push_unique(&mut f.places, &p),
                None => rows.push(Finding {
                    outcome: r.outcome,
                    id,
                    observed,
                    expected: r.expected.clone(),
                    evidence: r.evidence.clone(),
                    places: vec![p],
                    first_cell: i,
                }),
            }
        }
    }
    // Stable: within an outcome, the order of first sight.
    rows.sort_by_key(|f| FINDING_ORDER.iter().position(|x| *x == f.outcome));
    rows
}

/// A guest's splats are copied into each of its cells: list each once, naming its kernels.
fn splats(report: &Report) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for c in &report.cells {
        for s in &c.splats {
            match out
                .iter_mut()
                .find(|(k, e, _)| *k == s.kind && *e == s.excerpt)
            {
                Some((_, _, kernels)) => push_unique(kernels, &c.kernel_spec),
                None => out.push((
                    s.kind.clone(),
                    s.excerpt.clone(),
                    vec![c.kernel_spec.clone()],
                )),
            }
        }
    }
    out
}

fn skips(report: &Report) -> Vec<SkipGroup> {
    let mut groups: Vec<SkipGroup> = Vec::new();
    for c in &report.cells {
        for r in c.results.iter().filter(|r| r.outcome == Outcome::Skip) {
            let g = match groups.iter_mut().position(|g| g.reason == r.detail) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(SkipGroup {
                        reason: r.detail.clone(),
                        checks: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            let id = r.full_id();
            let p = match r.scope {
                Scope::Kernel => c.kernel_spec.clone(),
                Scope::Fs => c.label(),
            };
            match g.checks.iter_mut().find(|(i, _)| *i == id) {
                Some((_, places)) => push_unique(places, &p),
                None => g.checks.push((id, vec![p])),
            }
        }
    }
    groups
}

/// The most frequent value of a row; ties go to the first seen.
/// Skips do not count while anything was measured: a row whose mTHP variants skip on an old
/// kernel is usually `isolated`, not usually `skip`.
fn usual(cells: &[Option<&CheckResult>]) -> Option<String> {
    let measured: Vec<&CheckResult> = cells
        .iter()
        .flatten()
        .filter(|r| r.outcome != Outcome::Skip)
        .copied()
        .collect();
    if measured.is_empty() {
        return cells.iter().flatten().next().map(|r| value(r));
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in measured {
        let v = value(r);
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let max = counts.iter().map(|(_, n)| *n).max()?;
    counts.into_iter().find(|(_, n)| *n == max).map(|(v, _)| v)
}

fn families<'a>(
    report: &'a Report,
    kernels: &[String],
    changed: &BTreeSet<&str>,
) -> Vec<Family<'a>> {
    let mut names: Vec<String> = Vec::new();
    for c in &report.cells {
        for r in &c.results {
            push_unique(&mut names, family(&r.check));
        }
    }
    names.sort();
    let first_cell_of = |k: &str| report.cells.iter().position(|c| c.kernel_spec == k);
    let grid_rows = |ids: &[String],
                     cols: &[Column],
                     find: &dyn Fn(&str, &Column) -> Option<&'a CheckResult>| {
        ids.iter()
            .map(|id| {
                let cells: Vec<Option<&CheckResult>> =
                    cols.iter().map(|col| find(id, col)).collect();
                GridRow {
                    usual: usual(&cells),
                    changes: changed.contains(id.as_str()),
                    id: id.clone(),
                    cells,
                }
            })
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for name in names {
        let prefix = format!("{name}.");
        let mine = |r: &&CheckResult| r.check.starts_with(&prefix);
        // Row ids of each kind, in the order the harness ran them.
        let (mut kernel_ids, mut variant_checks, mut variants, mut fs_ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rules: Vec<Rule> = Vec::new();
        for c in &report.cells {
            for r in c.results.iter().filter(mine) {
                match (r.scope, &r.variant) {
                    (Scope::Kernel, None) => push_unique(&mut kernel_ids, &r.check),
                    (Scope::Kernel, Some(v)) => {
                        push_unique(&mut variant_checks, &r.check);
                        push_unique(&mut variants, v);
                    }
                    (Scope::Fs, _) => push_unique(&mut fs_ids, &r.full_id()),
                }
                let rule_id = r.check.clone();
                let rule = match rules.iter_mut().position(|x| x.id == rule_id) {
                    Some(i) => &mut rules[i],
                    None => {
                        rules.push(Rule {
                            id: rule_id,
                            expected: vec![],
                            evidence: vec![],
                        });
                        rules.last_mut().expect("just pushed")
                    }
                };
                push_unique(&mut rule.expected, &r.expected);
                push_unique(&mut rule.evidence, &r.evidence);
            }
        }
        let mut grids = Vec::new();
        if !kernel_ids.is_empty() {
            let cols: Vec<Column> = kernels
                .iter()
                .filter_map(|k| {
                    Some(Column {
                        label: k.clone(),
                        cell: first_cell_of(k)?,
                        kernel: k.clone(),
                        target: None,
                    })
                })
                .collect();
            let find = |id: &str, col: &Column| {
                report.cells[col.cell]
                    .results
                    .iter()
                    .find(|r| r.scope == Scope::Kernel && r.full_id() == id)
            };
            grids.push(Grid {
                title: format!("{name}: kernel-wide checks"),
                kernel: None,
                rows: grid_rows(&kernel_ids, &cols, &find),
                columns: cols,
            });
        }
        for k in kernels {
            let Some(cell) = first_cell_of(k) else {
                continue;
            };
            let release = report.cells[cell].kernel_release.as_deref().unwrap_or("?");
            if !variant_checks.is_empty() {
                let cols: Vec<Column> = variants
                    .iter()
                    .map(|v| Column {
                        label: v.clone(),
                        cell,
                        kernel: k.clone(),
                        target: None,
                    })
                    .collect();
                let find = |id: &str, col: &Column| {
                    report.cells[col.cell].results.iter().find(|r| {
                        r.scope == Scope::Kernel
                            && r.check == id
                            && r.variant.as_deref() == Some(col.label.as_str())
                    })
                };
                let mut g = Grid {
                    title: format!("{k} ({release})"),
                    kernel: Some(k.clone()),
                    rows: grid_rows(&variant_checks, &cols, &find),
                    columns: cols,
                };
                // A row changes if any of its variants does.
                for row in &mut g.rows {
                    row.changes = variants
                        .iter()
                        .any(|v| changed.contains(format!("{}[{v}]", row.id).as_str()));
                }
                grids.push(g);
            }
            if !fs_ids.is_empty() {
                let cols: Vec<Column> = report
                    .cells
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.kernel_spec == *k)
                    .map(|(i, c)| Column {
                        label: c.target(),
                        cell: i,
                        kernel: k.clone(),
                        target: Some(c.target()),
                    })
                    .collect();
                let find = |id: &str, col: &Column| {
                    report.cells[col.cell]
                        .results
                        .iter()
                        .find(|r| r.scope == Scope::Fs && r.full_id() == id)
                };
                grids.push(Grid {
                    title: format!("{k} ({release})"),
                    kernel: Some(k.clone()),
                    rows: grid_rows(&fs_ids, &cols, &find),
                    columns: cols,
                });
            }
        }
        out.push(Family { name, grids, rules });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixture::{self, result};

    #[test]
    fn what_changes_finds_exactly_the_differing_checks_hazards_first() {
        let r = fixture::two_kernels();
        let a = Analysis::new(&r);
        let lines: Vec<(String, Axis, Vec<String>, String)> = a
            .changes
            .iter()
            .map(|c| (c.id.clone(), c.axis, c.places.clone(), c.values_text()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    "cow.leak[thp]".into(),
                    Axis::Kernels,
                    vec!["kernel".into()],
                    "leak (5.10) → isolated (6.1)".into()
                ),
                (
                    "dio.align".into(),
                    Axis::Kernels,
                    vec!["ext4/4096".into()],
                    "4096 (5.10) → 512 (6.1)".into()
                ),
                (
                    "dio.align".into(),
                    Axis::Filesystems,
                    vec!["5.10".into()],
                    "4096 (ext4/4096) · EINVAL (tmpfs)".into()
                ),
                (
                    "dio.align".into(),
                    Axis::Filesystems,
                    vec!["6.1".into()],
                    "512 (ext4/4096) · EINVAL (tmpfs)".into()
                ),
            ],
            "{:#?}",
            a.changes
        );
        assert!(a.changes[0].hazard && !a.changes[1].hazard);
        assert_eq!(a.changes[0].transitions(), ["changed between 5.10 and 6.1"]);
        assert_eq!(a.changes[1].evidence, ["open(2)"]);
        assert!(a.changes[2].transitions().is_empty());
        // dio.open is the same everywhere; cow.leak[mthp] skips everywhere.
        assert!(!a.changed_ids().contains("dio.open"));
        assert!(!a.changed_ids().contains("cow.leak[mthp]"));
    }

    #[test]
    fn equal_sequences_on_several_targets_are_one_line_and_steps_name_both_kernels() {
        let mut cells = Vec::new();
        for (k, v) in [
            ("5.10", "4096"),
            ("6.1", "512"),
            ("6.12", "512"),
            ("7.2", "256"),
        ] {
            for fs in ["ext4", "xfs"] {
                cells.push(fixture::cell(
                    k,
                    fs,
                    Some(4096),
                    vec![result(
                        "dio.align",
                        Some((fs, Some(4096))),
                        Outcome::Pass,
                        v,
                    )],
                ));
            }
        }
        let r = Report::new(None, cells);
        let a = Analysis::new(&r);
        assert_eq!(a.changes.len(), 1, "{:#?}", a.changes);
        let c = &a.changes[0];
        assert_eq!(c.places, ["ext4/4096", "xfs/4096"]);
        assert_eq!(c.values_text(), "4096 (5.10) → 512 (6.1, 6.12) → 256 (7.2)");
        assert_eq!(
            c.transitions(),
            [
                "changed between 5.10 and 6.1",
                "changed between 6.12 and 7.2"
            ]
        );
        assert_eq!(c.where_text(), "on ext4/4096, xfs/4096");
    }

    #[test]
    fn variants_that_change_alike_are_one_line() {
        let mut cells = Vec::new();
        for (k, seen) in [("5.10", "leak"), ("6.1", "isolated")] {
            let rs = ["cow.fork[thp]", "cow.fork[swapped_thp]", "cow.fork[base]"]
                .iter()
                .map(|id| {
                    let v = if id.ends_with("base]") {
                        "isolated"
                    } else {
                        seen
                    };
                    result(id, None, Outcome::Pass, v)
                })
                .collect();
            cells.push(fixture::cell(k, "tmpfs", None, rs));
        }
        let r = Report::new(None, cells);
        let a = Analysis::new(&r);
        assert_eq!(a.changes.len(), 1, "{:#?}", a.changes);
        assert_eq!(a.changes[0].id, "cow.fork[swapped_thp, thp]");
        assert_eq!(a.changes[0].values_text(), "leak (5.10) → isolated (6.1)");
        assert!(a.changed_ids().contains("cow.fork[thp]"));
    }

    #[test]
    fn places_that_share_kernels_are_named_together() {
        let r = fixture::two_kernels();
        let a = Analysis::new(&r);
        let p = |v: &[&str]| a.places_text(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            p(&["5.10 ext4/4096", "6.1 ext4/4096"]),
            "ext4/4096 on every kernel"
        );
        assert_eq!(
            p(&["5.10 ext4/4096", "5.10 tmpfs", "6.1 tmpfs"]),
            "ext4/4096 on 5.10; tmpfs on every kernel"
        );
        assert_eq!(
            p(&["5.10 ext4/4096", "5.10 tmpfs"]),
            "every filesystem on 5.10"
        );
        assert_eq!(p(&["5.10 (kernel)"]), "5.10 (kernel)");
        assert_eq!(
            p(&["5.10 (kernel)", "6.1 (kernel)"]),
            "every kernel (kernel)"
        );
    }

    #[test]
    fn skipped_checks_collapse_by_place_variant_and_check() {
        let g = SkipGroup {
            reason: "no mTHP".into(),
            checks: vec![
                ("cow.a[x_16k]".into(), vec!["5.10".into(), "6.1".into()]),
                ("cow.a[y_16k]".into(), vec!["5.10".into(), "6.1".into()]),
                ("cow.b[x_16k]".into(), vec!["5.10".into(), "6.1".into()]),
                ("cow.b[y_16k]".into(), vec!["5.10".into(), "6.1".into()]),
                ("dio.open".into(), vec!["5.10 tmpfs".into()]),
            ],
        };
        assert_eq!(
            g.lines(),
            [
                (
                    "{cow.a, cow.b}[x_16k, y_16k]".to_string(),
                    "5.10, 6.1".to_string()
                ),
                ("dio.open".to_string(), "5.10 tmpfs".to_string()),
            ]
        );
    }

    #[test]
    fn checks_of_a_family_that_change_alike_are_one_line_with_each_evidence() {
        let mut cells = Vec::new();
        for (k, seen) in [("5.10", "leak"), ("6.1", "isolated")] {
            let mut rs = Vec::new();
            for (id, ev) in [
                ("cow.a[thp]", "fix A"),
                ("cow.b[thp]", "fix B"),
                ("dio.c", "D"),
            ] {
                let mut r = result(id, None, Outcome::Pass, seen);
                r.evidence = ev.into();
                rs.push(r);
            }
            cells.push(fixture::cell(k, "tmpfs", None, rs));
        }
        let r = Report::new(None, cells);
        let a = Analysis::new(&r);
        let ids: Vec<&str> = a.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["{cow.a, cow.b}[thp]", "dio.c"], "{:#?}", a.changes);
        assert_eq!(a.changes[0].evidence, ["fix A", "fix B"]);
    }

    /// 6.12 and 7.2 on x86_64, 7.2 on arm64 with 16 KiB pages: sendfile.max_count differs by
    /// page size (as its rule predicts), and is no step between kernels.
    #[test]
    fn a_difference_by_page_size_is_its_own_axis_with_the_rule_that_predicts_it() {
        let machine = |mut c: Cell, arch: &str, page: u32, release: &str| {
            c.arch = Some(arch.into());
            c.page_size = Some(page);
            c.kernel_release = Some(release.into());
            c
        };
        let max = |v: &str| {
            let mut r = result(
                "sendfile.max_count",
                Some(("tmpfs", None)),
                Outcome::Pass,
                v,
            );
            r.evidence = "INT_MAX & PAGE_MASK".into();
            r
        };
        let report = Report::new(
            None,
            vec![
                machine(
                    fixture::cell("6.12", "tmpfs", None, vec![max("2147479552")]),
                    "x86_64",
                    4096,
                    "6.12.118+deb13-cloud-amd64",
                ),
                machine(
                    fixture::cell("7.2", "tmpfs", None, vec![max("2147479552")]),
                    "x86_64",
                    4096,
                    "7.2.13+deb14-cloud-amd64",
                ),
                machine(
                    fixture::cell("7.2-arm64-16k", "tmpfs", None, vec![max("2147467264")]),
                    "arm64",
                    16384,
                    "7.2.13+deb14-arm64-16k",
                ),
            ],
        );
        let a = Analysis::new(&report);
        assert_eq!(a.changes.len(), 1, "{:#?}", a.changes);
        let c = &a.changes[0];
        assert_eq!(c.axis, Axis::PageSizes);
        assert!(c.predicted && !c.hazard);
        assert_eq!(
            c.values_text(),
            "2147479552 (7.2: x86_64, 4 KiB pages) · 2147467264 (7.2-arm64-16k: arm64, 16 KiB pages)"
        );
        assert_eq!(
            c.where_text(),
            "between page sizes on tmpfs, as the rule predicts for each"
        );
        assert_eq!(c.evidence, ["INT_MAX & PAGE_MASK"]);
        assert_eq!(series_of("7.2.13+deb14-arm64-16k").as_deref(), Some("7.2"));
        assert_eq!(series_of("6.1.0-47-cloud-amd64").as_deref(), Some("6.1"));
    }

    #[test]
    fn a_check_that_only_starts_to_apply_is_no_change() {
        let v = |s: &[(&str, &str)]| -> Vec<(Vec<String>, String)> {
            s.iter()
                .map(|(k, x)| (vec![k.to_string()], x.to_string()))
                .collect()
        };
        assert!(!measured_differently(&v(&[
            ("6.1", "skip"),
            ("6.12", "ok")
        ])));
        assert!(measured_differently(&v(&[
            ("5.10", "4096"),
            ("6.1", "skip"),
            ("6.12", "512")
        ])));
        assert!(!measured_differently(&v(&[
            ("5.10", "ok"),
            ("6.1", "skip"),
            ("6.12", "ok")
        ])));
    }

    #[test]
    fn findings_skips_and_grids() {
        let r = fixture::two_kernels();
        let a = Analysis::new(&r);
        assert_eq!(a.findings.len(), 1);
        assert_eq!(a.findings[0].places, ["5.10 (kernel)"]);
        assert_eq!(a.skips.len(), 1);
        assert_eq!(a.skips[0].reason, "no THP here");
        assert_eq!(
            a.skips[0].checks,
            [(
                "cow.leak[mthp]".to_string(),
                vec!["5.10".to_string(), "6.1".into()]
            )]
        );
        let names: Vec<&str> = a.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["cow", "dio"]);
        // cow: a variant grid per kernel; dio: an fs grid per kernel.
        let cow = &a.families[0];
        assert_eq!(cow.grids.len(), 2);
        assert_eq!(
            cow.grids[0]
                .columns
                .iter()
                .map(|c| c.label.as_str())
                .collect::<Vec<_>>(),
            ["thp", "base", "mthp"]
        );
        assert!(cow.grids[0].rows[0].changes);
        let dio = &a.families[1];
        let g = &dio.grids[1];
        assert_eq!(g.kernel.as_deref(), Some("6.1"));
        let open = g.rows.iter().find(|r| r.id == "dio.open").unwrap();
        assert!(!open.changes && !open.stands_out(0) && !open.stands_out(1));
        let align = g.rows.iter().find(|r| r.id == "dio.align").unwrap();
        assert!(align.changes);
        assert_eq!(g.columns[1].cell, 3);
    }
}
