//! The compatibility report: cells (kernel × filesystem × disk geometry) with their results, as
//! versioned JSON and as Markdown tables, one per check family.
//!
//! Kernel-scope results (checks that do not depend on a filesystem) are copied into every cell of
//! the guest that measured them, so each cell is complete on its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use zcmatrix_protocol::{CheckResult, Counts, MountReport, Outcome, Record, Scope, SCHEMA_VERSION};

use crate::guest::{GuestOutcome, Splat, Status};
use crate::kernel::Kernel;
use crate::qemu::Accel;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub kernel_spec: String,
    /// `uname -r` inside the guest, from the harness's hello: `None` means the harness never
    /// started (the guest did not boot that far).
    pub kernel_release: Option<String>,
    pub kernel_package: Option<String>,
    pub kernel_version: Option<String>,
    /// Set when the locked build had left the archive and another build of the series was used.
    pub kernel_substituted: Option<String>,
    pub fs: String,
    pub logical_block_size: Option<u32>,
    pub accel: Option<Accel>,
    pub boot_ms: Option<u64>,
    pub status: Status,
    pub status_detail: String,
    /// What went wrong in the guest outside any check. Guest-wide errors (modules, harness,
    /// stream) are copied into every cell of the guest, like kernel-scope results; a mount
    /// error only into its own cell.
    pub guest_errors: Vec<GuestError>,
    /// This cell's results by outcome.
    pub counts: Counts,
    /// The harness's closing record, over the whole guest (every cell of it); `None` when it
    /// never arrived, i.e. the guest died or gave up before finishing.
    pub guest_summary: Option<GuestSummary>,
    /// Folder (relative to the report) with this guest's console log and raw result stream.
    pub guest_dir: String,
    /// Kernel warnings, sanitizer reports, lockups and stalls on the guest's console (copied
    /// into every cell of the guest); the results stand, but the kernel was not well.
    #[serde(default)]
    pub splats: Vec<Splat>,
    /// How many times the guest was started again after an infrastructure failure (`--retries`);
    /// the cell is the last attempt's.
    #[serde(default)]
    pub retries: u32,
    pub results: Vec<CheckResult>,
}

/// Something the guest reported (or the host noticed in its stream) outside any check. These
/// never reached the report before: a module that failed to load showed up only as skips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestErrorKind {
    /// A `module` record with `ok: false`.
    Module,
    /// A `mount` record with `ok: false` (the cell is then `infra_error`).
    Mount,
    /// An `error` record: set-up the harness could not do (swap, loopback) or its giving up.
    Harness,
    /// The record stream itself: lines that were not records, a hello of another schema, or a
    /// summary whose counts differ from the results that arrived (records were lost).
    Stream,
}

impl GuestErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestErrorKind::Module => "module",
            GuestErrorKind::Mount => "mount",
            GuestErrorKind::Harness => "harness",
            GuestErrorKind::Stream => "stream",
        }
    }
}

/// The harness's `summary` record as the host received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSummary {
    pub counts: Counts,
    pub duration_ms: u64,
}

impl Cell {
    pub fn label(&self) -> String {
        match self.logical_block_size {
            Some(b) => format!("{} {}/{}", self.kernel_spec, self.fs, b),
            None => format!("{} {}", self.kernel_spec, self.fs),
        }
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    /// Whether a result of this cell makes the run unsuccessful (`fail` or `error`).
    pub fn any_failed(&self) -> bool {
        self.results.iter().any(|r| r.outcome.is_failure())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// Said when `auto` acceleration fell back to TCG.
    pub accel_note: Option<String>,
    pub cells: Vec<Cell>,
}

/// A filesystem target of one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellKey {
    pub fs: String,
    pub logical_block_size: Option<u32>,
}

/// Errors of a whole guest, in stream order: failed modules, harness errors, and what the host
/// notices about the stream itself.
pub fn guest_errors(guest: &GuestOutcome) -> Vec<GuestError> {
    let mut out = Vec::new();
    let mut received = Counts::default();
    let mut summary = None;
    for r in &guest.records {
        match r {
            Record::Hello { schema_version, .. } if *schema_version != SCHEMA_VERSION => {
                out.push(GuestError {
                    kind: GuestErrorKind::Stream,
                    message: format!(
                        "the harness speaks schema {schema_version}, the host {SCHEMA_VERSION}"
                    ),
                })
            }
            Record::Module {
                name,
                ok: false,
                detail,
            } => out.push(GuestError {
                kind: GuestErrorKind::Module,
                message: format!("{name}: {detail}"),
            }),
            Record::Error { message } => out.push(GuestError {
                kind: GuestErrorKind::Harness,
                message: message.clone(),
            }),
            Record::Result(c) => received.add(c.outcome),
            Record::Summary { counts, .. } => summary = Some(*counts),
            _ => {}
        }
    }
    if let Some(sent) = summary.filter(|s| *s != received) {
        out.push(GuestError {
            kind: GuestErrorKind::Stream,
            message: format!(
                "the harness sent {} but the host received {}",
                sent.describe(),
                received.describe()
            ),
        });
    }
    if let Some(first) = guest.raw_lines.first() {
        // A garbled line may have been a result: say so rather than lose it silently.
        out.push(GuestError {
            kind: GuestErrorKind::Stream,
            message: format!(
                "{} line(s) on the result port were not records (raw-lines.txt), the first: {}",
                guest.raw_lines.len(),
                first.chars().take(120).collect::<String>()
            ),
        });
    }
    out
}

/// Splits one guest's records into its cells.
pub fn cells_of(
    kernel_spec: &str,
    kernel: Option<&Kernel>,
    keys: &[CellKey],
    guest: &GuestOutcome,
    guest_dir: &str,
) -> Vec<Cell> {
    let release = guest.records.iter().find_map(|r| match r {
        Record::Hello { kernel_release, .. } => Some(kernel_release.clone()),
        _ => None,
    });
    let guest_summary = guest.records.iter().find_map(|r| match r {
        Record::Summary {
            counts,
            duration_ms,
        } => Some(GuestSummary {
            counts: *counts,
            duration_ms: *duration_ms,
        }),
        _ => None,
    });
    let guest_wide = guest_errors(guest);
    let results: Vec<&CheckResult> = guest
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Result(c) => Some(c),
            _ => None,
        })
        .collect();
    let mounts: Vec<&MountReport> = guest
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Mount(m) => Some(m),
            _ => None,
        })
        .collect();
    keys.iter()
        .map(|k| {
            let mine = |r: &&&CheckResult| {
                r.scope == Scope::Kernel
                    || (r.fs.as_deref() == Some(k.fs.as_str())
                        && r.logical_block_size == k.logical_block_size)
            };
            let failed_mount = mounts
                .iter()
                .find(|m| m.fs == k.fs && m.logical_block_size == k.logical_block_size)
                .filter(|m| !m.ok);
            let mut errors = guest_wide.clone();
            if let Some(m) = failed_mount {
                errors.insert(
                    0,
                    GuestError {
                        kind: GuestErrorKind::Mount,
                        message: m.detail.clone(),
                    },
                );
            }
            // A guest that finished is only clean if nothing went wrong outside the checks; a
            // guest that died keeps saying how it died, its errors listed beside.
            let (status, status_detail) = match (guest.status, failed_mount) {
                (Status::Completed, Some(m)) => {
                    (Status::InfraError, format!("mount failed: {}", m.detail))
                }
                (Status::Completed, None) if !errors.is_empty() => (
                    Status::CompletedWithErrors,
                    format!(
                        "the harness finished, but with {} guest error(s); the first, {}: {}",
                        errors.len(),
                        errors[0].kind.as_str(),
                        errors[0].message
                    ),
                ),
                _ => (guest.status, guest.detail.clone()),
            };
            let results: Vec<CheckResult> =
                results.iter().filter(mine).map(|r| (*r).clone()).collect();
            let mut counts = Counts::default();
            results.iter().for_each(|r| counts.add(r.outcome));
            Cell {
                kernel_spec: kernel_spec.to_string(),
                kernel_release: release.clone(),
                kernel_package: kernel.and_then(|k| k.package.clone()),
                kernel_version: kernel.and_then(|k| k.version.clone()),
                kernel_substituted: kernel.and_then(|k| k.substituted.clone()),
                fs: k.fs.clone(),
                logical_block_size: k.logical_block_size,
                accel: guest.accel,
                boot_ms: guest.boot_ms,
                status,
                status_detail,
                guest_errors: errors,
                counts,
                guest_summary,
                guest_dir: guest_dir.to_string(),
                splats: guest.splats.clone(),
                retries: 0,
                results,
            }
        })
        .collect()
}

impl Report {
    pub fn new(accel_note: Option<String>, cells: Vec<Cell>) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            accel_note,
            cells,
        }
    }

    /// Reads a report.json written by this version of zcmatrix. Another schema is refused by its
    /// number before any field is looked at: an old report would otherwise fail on whichever
    /// field changed first, with a message that says nothing about versions.
    pub fn from_json(text: &str) -> Result<Report, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema_version").and_then(|n| n.as_u64()) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "it has schema_version {n}, but this zcmatrix reads only {SCHEMA_VERSION} \
                     (the outcome vocabulary and cell fields changed); run `cargo xtask \
                     test-matrix` again, or render it with the zcmatrix that wrote it"
                ))
            }
            None => return Err("it has no schema_version: not a zcmatrix report".into()),
        }
        serde_json::from_value(v).map_err(|e| format!("schema {SCHEMA_VERSION} but malformed: {e}"))
    }

    pub fn any_failed(&self) -> bool {
        self.cells.iter().any(Cell::any_failed)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# zcmatrix report\n\n");
        if let Some(n) = &self.accel_note {
            let _ = writeln!(md, "> {n}\n");
        }
        md.push_str(
            "Each cell is one kernel × filesystem × disk logical block size, measured in its own \
             QEMU guest. ✅ pass, ❌ fail (the kernel did not do what the rule says), \
             ☣️ xfail (known hazard: the kernel did what the rule predicts, and that is a \
             documented problem), 🆕 xpass (the rule predicted a hazard and the kernel behaved \
             well), ➖ skip, ⚠️ error (the probe could not finish), 📏 info (a measurement, no \
             verdict). The text is what the kernel did.\n\n",
        );
        self.hazards_and_news(&mut md);
        self.cells_table(&mut md);
        for c in self.cells.iter().filter(|c| c.kernel_substituted.is_some()) {
            let _ = writeln!(
                md,
                "\n> {}: {}",
                c.label(),
                c.kernel_substituted.as_deref().unwrap()
            );
        }

        let mut families: BTreeMap<String, BTreeMap<String, Row>> = BTreeMap::new();
        for (i, c) in self.cells.iter().enumerate() {
            for r in &c.results {
                let family = r.check.split('.').next().unwrap_or("").to_string();
                let row = families
                    .entry(family)
                    .or_default()
                    .entry(r.full_id())
                    .or_insert_with(|| Row {
                        evidence: r.evidence.clone(),
                        by_cell: BTreeMap::new(),
                    });
                row.by_cell.insert(i, r);
            }
        }
        for (family, rows) in &families {
            let _ = writeln!(md, "\n## {family}\n");
            if rows
                .values()
                .any(|r| r.by_cell.values().any(|x| x.variant.is_some()))
            {
                self.variant_grids(&mut md, family);
                continue;
            }
            md.push_str("| check |");
            for c in &self.cells {
                let _ = write!(md, " {} |", c.label());
            }
            md.push_str("\n|---|");
            md.push_str(&"---|".repeat(self.cells.len()));
            md.push('\n');
            for (id, Row { by_cell, .. }) in rows {
                let _ = write!(md, "| `{id}` |");
                for i in 0..self.cells.len() {
                    let text = by_cell.get(&i).map(|r| cell_text(r)).unwrap_or("".into());
                    let _ = write!(md, " {text} |");
                }
                md.push('\n');
            }
            md.push_str("\nRules:\n");
            for (id, Row { evidence, by_cell }) in rows {
                let expected: Vec<String> = {
                    let mut v: Vec<String> = by_cell.values().map(|r| r.expected.clone()).collect();
                    v.sort();
                    v.dedup();
                    v
                };
                let _ = writeln!(
                    md,
                    "- `{id}`: expects {}. Evidence: {}",
                    expected.join(" / "),
                    escape(evidence)
                );
            }
        }
        md
    }
}

/// The order "Hazards and news" lists outcomes in: contradictions first, then what could not be
/// measured, good news, and the known hazards.
const NEWS_ORDER: [Outcome; 4] = [
    Outcome::Fail,
    Outcome::Error,
    Outcome::Xpass,
    Outcome::Xfail,
];

impl Report {
    /// Every fail, error, xpass and xfail in one short table, so that a reader who stops at the
    /// top still sees what matters. A kernel-scope result is listed once per kernel, not once
    /// per cell it was copied into, and the same finding on several kernels or cells is one row
    /// naming them all (the 5.10 and 6.1 leaks of one scenario are one line).
    fn hazards_and_news(&self, md: &mut String) {
        md.push_str("## Hazards and news\n\n");
        // A guest that did not finish cleanly may hide news as skips or missing rows: say so
        // before any verdict.
        let unclean: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.status != Status::Completed)
            .collect();
        if !unclean.is_empty() {
            let mut statuses: Vec<&str> = unclean.iter().map(|c| c.status.as_str()).collect();
            statuses.dedup();
            let _ = writeln!(
                md,
                "⚠️ {} of {} cells did not finish cleanly ({}): their results may be missing or \
                 skipped for reasons outside the kernel; see Cells and their guest errors.\n",
                unclean.len(),
                self.cells.len(),
                statuses.join(", ")
            );
        }
        // (outcome, id, observed, expected, evidence) → the places it was seen, in cell order.
        type Finding = (Outcome, String, String, String, String);
        let mut rows: Vec<(Finding, Vec<String>)> = Vec::new();
        for c in &self.cells {
            for r in c.results.iter().filter(|r| NEWS_ORDER.contains(&r.outcome)) {
                let place = match r.scope {
                    Scope::Kernel => format!("{} (kernel)", c.kernel_spec),
                    Scope::Fs => c.label(),
                };
                let observed = match r.outcome {
                    Outcome::Error => format!("{}: {}", r.observed, r.detail),
                    _ => r.observed.clone(),
                };
                let finding = (
                    r.outcome,
                    r.full_id(),
                    observed,
                    r.expected.clone(),
                    r.evidence.clone(),
                );
                match rows.iter_mut().find(|(f, _)| *f == finding) {
                    Some((_, places)) if places.contains(&place) => {}
                    Some((_, places)) => places.push(place),
                    None => rows.push((finding, vec![place])),
                }
            }
        }
        if rows.is_empty() {
            md.push_str("No result failed, broke, or met a known hazard.\n\n");
            return;
        }
        // Stable: within an outcome, the order of first sight.
        rows.sort_by_key(|((o, ..), _)| NEWS_ORDER.iter().position(|x| x == o));
        md.push_str(
            "| outcome | check | cell | observed | expected | evidence |\n\
             |---|---|---|---|---|---|\n",
        );
        for ((outcome, id, observed, expected, evidence), places) in rows {
            let _ = writeln!(
                md,
                "| {} {} | `{id}` | {} | {} | {} | {} |",
                mark(outcome),
                outcome.as_str(),
                escape(&places.join(", ")),
                escape(&observed),
                escape(&expected),
                escape(&evidence)
            );
        }
        md.push('\n');
    }

    /// One row per cell: what ran, how it ended, and how many results of each outcome. Outcome
    /// columns that are zero in every cell are left out.
    fn cells_table(&self, md: &mut String) {
        let shown: Vec<Outcome> = Outcome::ALL
            .into_iter()
            .filter(|&o| self.cells.iter().any(|c| c.count(o) > 0))
            .collect();
        md.push_str("## Cells\n\n| cell | kernel release | package | accel | boot | status |");
        for o in &shown {
            let _ = write!(md, " {} |", o.as_str());
        }
        let _ = writeln!(
            md,
            "\n|---|---|---|---|---|---|{}",
            "---|".repeat(shown.len())
        );
        for c in &self.cells {
            let _ = write!(
                md,
                "| {} | {} | {} | {} | {} | {}{} |",
                c.label(),
                c.kernel_release.as_deref().unwrap_or("?"),
                match (&c.kernel_package, &c.kernel_version) {
                    (Some(p), Some(v)) => format!("{p} {v}"),
                    _ => "local".into(),
                },
                c.accel
                    .map(|a| format!("{a:?}").to_lowercase())
                    .unwrap_or("-".into()),
                c.boot_ms
                    .map(|b| format!("{:.1} s", b as f64 / 1000.0))
                    .unwrap_or("-".into()),
                c.status.as_str(),
                if c.status == Status::Completed {
                    String::new()
                } else {
                    format!(": {}", escape(&c.status_detail))
                },
            );
            for &o in &shown {
                let _ = write!(md, " {} |", c.count(o));
            }
            md.push('\n');
        }
        // Guest-wide errors repeat in every cell of a guest: list each once, under its kernel.
        let mut listed: Vec<String> = Vec::new();
        for c in &self.cells {
            for e in &c.guest_errors {
                let place = match e.kind {
                    GuestErrorKind::Mount => c.label(),
                    _ => c.kernel_spec.clone(),
                };
                let line = format!("- {place}: {}: {}", e.kind.as_str(), escape(&e.message));
                if !listed.contains(&line) {
                    listed.push(line);
                }
            }
        }
        if !listed.is_empty() {
            md.push_str("\nGuest errors (outside any check; they may explain skips):\n");
            for l in &listed {
                let _ = writeln!(md, "{l}");
            }
        }
    }
}

impl Report {
    /// Families whose checks run over variants (backings) are kernel-scope grids: one table per
    /// kernel, checks as rows and variants as columns, in the order the harness ran them.
    fn variant_grids(&self, md: &mut String, family: &str) {
        let prefix = format!("{family}.");
        let mut seen_kernels: Vec<&str> = Vec::new();
        let mut rules: Vec<GridRule> = Vec::new();
        let mut skips: Vec<String> = Vec::new();
        for c in &self.cells {
            if seen_kernels.contains(&c.kernel_spec.as_str()) {
                continue;
            }
            seen_kernels.push(&c.kernel_spec);
            let results: Vec<&CheckResult> = c
                .results
                .iter()
                .filter(|r| r.check.starts_with(&prefix))
                .collect();
            if results.is_empty() {
                continue;
            }
            let mut checks: Vec<&str> = Vec::new();
            let mut variants: Vec<&str> = Vec::new();
            for r in &results {
                if !checks.contains(&r.check.as_str()) {
                    checks.push(&r.check);
                }
                let v = r.variant.as_deref().unwrap_or("-");
                if !variants.contains(&v) {
                    variants.push(v);
                }
                let rule = match rules.iter_mut().find(|g| {
                    g.check == r.check && g.expected == r.expected && g.evidence == r.evidence
                }) {
                    Some(g) => g,
                    None => {
                        rules.push(GridRule {
                            check: r.check.clone(),
                            expected: r.expected.clone(),
                            evidence: r.evidence.clone(),
                            variants: Vec::new(),
                            kernels: Vec::new(),
                        });
                        rules.last_mut().expect("just pushed")
                    }
                };
                for (list, item) in [
                    (&mut rule.variants, v),
                    (&mut rule.kernels, c.kernel_spec.as_str()),
                ] {
                    if !list.iter().any(|x| x == item) {
                        list.push(item.to_string());
                    }
                }
            }
            let _ = writeln!(
                md,
                "### {} ({})\n",
                c.kernel_spec,
                c.kernel_release.as_deref().unwrap_or("?")
            );
            let _ = writeln!(md, "| check | {} |", variants.join(" | "));
            let _ = writeln!(md, "|---|{}", "---|".repeat(variants.len()));
            for check in &checks {
                let _ = write!(md, "| `{check}` |");
                for v in &variants {
                    let r = results
                        .iter()
                        .find(|r| r.check == *check && r.variant.as_deref().unwrap_or("-") == *v);
                    // Skip reasons repeat across a row: the cell says skip, the list below why.
                    let text = match r {
                        Some(r) if r.outcome == Outcome::Skip => {
                            let line = format!("{} [{v}]: {}", c.kernel_spec, escape(&r.detail));
                            if !skips.contains(&line) {
                                skips.push(line);
                            }
                            "➖".to_string()
                        }
                        Some(r) => cell_text(r),
                        None => String::new(),
                    };
                    let _ = write!(md, " {text} |");
                }
                md.push('\n');
            }
            md.push('\n');
        }
        if !skips.is_empty() {
            md.push_str("Skipped:\n");
            for s in &skips {
                let _ = writeln!(md, "- {s}");
            }
            md.push('\n');
        }
        md.push_str("Rules:\n");
        for g in rules {
            let _ = writeln!(
                md,
                "- `{}` [{}] on {}: expects {}. Evidence: {}",
                g.check,
                g.variants.join(", "),
                g.kernels.join(", "),
                g.expected,
                escape(&g.evidence)
            );
        }
    }
}

/// One line of a grid's rules: a check's expectation and evidence, and where it applied.
struct GridRule {
    check: String,
    expected: String,
    evidence: String,
    variants: Vec<String>,
    kernels: Vec<String>,
}

/// One check's row of a family table: its evidence and its result in each cell (by cell index).
struct Row<'a> {
    evidence: String,
    by_cell: BTreeMap<usize, &'a CheckResult>,
}

/// The mark of an outcome; only `pass` is a green tick.
fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "✅",
        Outcome::Fail => "❌",
        Outcome::Skip => "➖",
        Outcome::Error => "⚠️",
        Outcome::Xfail => "☣️",
        Outcome::Xpass => "🆕",
        Outcome::Info => "📏",
    }
}

fn cell_text(r: &CheckResult) -> String {
    let mark = mark(r.outcome);
    match r.outcome {
        // Good news is rare and easy to miss in a wide grid: bold.
        Outcome::Xpass => format!(
            "**{mark} {}** (expected {})",
            escape(&r.observed),
            escape(&r.expected)
        ),
        Outcome::Fail => format!(
            "{mark} {} (expected {})",
            escape(&r.observed),
            escape(&r.expected)
        ),
        Outcome::Skip | Outcome::Error => format!("{mark} {}", escape(&r.detail)),
        Outcome::Pass | Outcome::Xfail | Outcome::Info => {
            format!("{mark} {}", escape(&r.observed))
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        check: &str,
        scope: Scope,
        fs: Option<&str>,
        outcome: Outcome,
        observed: &str,
    ) -> Record {
        Record::Result(CheckResult {
            check: check.into(),
            variant: None,
            scope,
            fs: fs.map(str::to_string),
            logical_block_size: fs.filter(|f| *f != "tmpfs").map(|_| 512),
            outcome,
            observed: observed.into(),
            expected: "ok".into(),
            evidence: "man | page".into(),
            detail: "d".into(),
            duration_ms: 1,
        })
    }

    fn guest() -> GuestOutcome {
        GuestOutcome {
            status: Status::Completed,
            detail: "harness finished".into(),
            accel: Some(Accel::Tcg),
            boot_ms: Some(3000),
            records: vec![
                Record::Hello {
                    schema_version: SCHEMA_VERSION,
                    kernel_release: "6.1.0-47-cloud-amd64".into(),
                    cmdline: String::new(),
                    mem_total_kb: 1,
                    uptime_ms: 1,
                },
                result(
                    "splice.no_pipe",
                    Scope::Kernel,
                    None,
                    Outcome::Pass,
                    "EINVAL",
                ),
                Record::Mount(MountReport {
                    fs: "ext4".into(),
                    logical_block_size: Some(512),
                    device: Some("/dev/vda".into()),
                    ok: true,
                    detail: "mounted".into(),
                }),
                result("dio.open", Scope::Fs, Some("ext4"), Outcome::Pass, "ok"),
                Record::Mount(MountReport {
                    fs: "xfs".into(),
                    logical_block_size: Some(512),
                    device: None,
                    ok: false,
                    detail: "no disk".into(),
                }),
                result(
                    "dio.open",
                    Scope::Fs,
                    Some("tmpfs"),
                    Outcome::Fail,
                    "EINVAL",
                ),
            ],
            raw_lines: vec![],
            splats: vec![],
        }
    }

    fn keys() -> Vec<CellKey> {
        vec![
            CellKey {
                fs: "ext4".into(),
                logical_block_size: Some(512),
            },
            CellKey {
                fs: "xfs".into(),
                logical_block_size: Some(512),
            },
            CellKey {
                fs: "tmpfs".into(),
                logical_block_size: None,
            },
        ]
    }

    #[test]
    fn kernel_scope_results_land_in_every_cell_and_fs_results_in_their_own() {
        let cells = cells_of("6.1", None, &keys(), &guest(), "guests/6.1");
        assert_eq!(cells.len(), 3);
        let ids = |c: &Cell| {
            c.results
                .iter()
                .map(|r| r.check.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&cells[0]), ["splice.no_pipe", "dio.open"]);
        assert_eq!(ids(&cells[1]), ["splice.no_pipe"]);
        assert_eq!(ids(&cells[2]), ["splice.no_pipe", "dio.open"]);
        assert!(cells
            .iter()
            .all(|c| c.kernel_release.as_deref() == Some("6.1.0-47-cloud-amd64")));
    }

    #[test]
    fn a_failed_mount_makes_its_cell_an_infrastructure_error() {
        let cells = cells_of("6.1", None, &keys(), &guest(), "g");
        assert_eq!(cells[0].status, Status::Completed);
        assert_eq!(cells[1].status, Status::InfraError);
        assert!(cells[1].status_detail.contains("no disk"));
    }

    #[test]
    fn markdown_has_a_table_per_family_and_escapes_pipes() {
        let r = Report::new(
            Some("KVM unusable; TCG".into()),
            cells_of("6.1", None, &keys(), &guest(), "g"),
        );
        let md = r.markdown();
        assert!(md.contains("> KVM unusable; TCG"));
        assert!(md.contains("\n## dio\n") && md.contains("\n## splice\n"));
        assert!(md.contains("| check | 6.1 ext4/512 | 6.1 xfs/512 | 6.1 tmpfs |"));
        assert!(md.contains("❌ EINVAL (expected ok)"));
        assert!(md.contains("man \\| page"));
        assert!(r.any_failed());
    }

    #[test]
    fn checks_with_variants_get_a_grid_per_kernel() {
        let mut g = guest();
        for (variant, outcome, observed) in [
            ("base", Outcome::Pass, "isolated"),
            ("thp", Outcome::Xfail, "leak"),
        ] {
            let Record::Result(mut r) =
                result("cow.fork_basic", Scope::Kernel, None, outcome, observed)
            else {
                unreachable!()
            };
            r.variant = Some(variant.into());
            g.records.push(Record::Result(r));
        }
        let md = Report::new(None, cells_of("5.10", None, &keys(), &g, "g")).markdown();
        assert!(md.contains("### 5.10 (6.1.0-47-cloud-amd64)"), "{md}");
        assert!(md.contains("| check | base | thp |"), "{md}");
        assert!(
            md.contains("| `cow.fork_basic` | ✅ isolated | ☣️ leak |"),
            "{md}"
        );
        assert!(
            md.contains("- `cow.fork_basic` [base, thp] on 5.10: expects ok."),
            "{md}"
        );
    }

    #[test]
    fn json_carries_schema_version_and_cell_fields() {
        let r = Report::new(None, cells_of("6.1", None, &keys(), &guest(), "g"));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        let c = &v["cells"][2];
        for f in [
            "kernel_spec",
            "kernel_release",
            "kernel_package",
            "kernel_version",
            "fs",
            "logical_block_size",
            "accel",
            "boot_ms",
            "status",
            "guest_errors",
            "counts",
            "guest_summary",
            "results",
        ] {
            assert!(c.get(f).is_some(), "missing {f}");
        }
        assert_eq!(c["logical_block_size"], serde_json::Value::Null);
        assert_eq!(c["status"], "completed");
        assert_eq!(c["accel"], "tcg");
    }

    /// One guest's records around `extra`, with a summary that matches the results it carries.
    fn finished_guest(extra: Vec<Record>) -> GuestOutcome {
        let mut g = guest();
        g.records.extend(extra);
        let mut counts = Counts::default();
        for r in &g.records {
            if let Record::Result(c) = r {
                counts.add(c.outcome);
            }
        }
        g.records.push(Record::Summary {
            counts,
            duration_ms: 5,
        });
        g
    }

    #[test]
    fn guest_errors_are_carried_into_cells_and_into_report_json() {
        let g = finished_guest(vec![
            Record::Module {
                name: "btrfs".into(),
                ok: false,
                detail: "ENOEXEC".into(),
            },
            Record::Error {
                message: "swap: no disk with serial \"zc-swap\"".into(),
            },
        ]);
        let cells = cells_of("6.1", None, &keys(), &g, "g");
        let kinds = |c: &Cell| c.guest_errors.iter().map(|e| e.kind).collect::<Vec<_>>();
        use GuestErrorKind::*;
        // Guest-wide errors in every cell; a mount error only in its own.
        assert_eq!(kinds(&cells[0]), [Module, Harness]);
        assert_eq!(kinds(&cells[1]), [Mount, Module, Harness]);
        assert_eq!(cells[0].guest_errors[0].message, "btrfs: ENOEXEC");
        let v = serde_json::to_value(Report::new(None, cells)).unwrap();
        assert_eq!(v["cells"][0]["guest_errors"][1]["kind"], "harness");
        assert!(v["cells"][0]["guest_errors"][1]["message"]
            .as_str()
            .unwrap()
            .starts_with("swap:"));
        assert_eq!(v["cells"][1]["guest_errors"][0]["kind"], "mount");
        assert_eq!(v["cells"][0]["guest_summary"]["counts"]["fail"], 1);
        assert_eq!(v["cells"][0]["counts"]["pass"], 2);
    }

    #[test]
    fn a_finished_guest_with_errors_is_not_a_clean_completion() {
        let swap = Record::Error {
            message: "swap: swapon /dev/vdb: EINVAL".into(),
        };
        let module = Record::Module {
            name: "xfs".into(),
            ok: false,
            detail: "Unknown symbol".into(),
        };
        for (extra, status) in [
            (vec![], Status::Completed),
            (vec![swap], Status::CompletedWithErrors),
            (vec![module], Status::CompletedWithErrors),
        ] {
            let cells = cells_of("6.1", None, &keys(), &finished_guest(extra), "g");
            // ext4 mounted; xfs did not, which outranks any guest-wide error.
            assert_eq!(cells[0].status, status, "{}", cells[0].status_detail);
            assert_eq!(cells[1].status, Status::InfraError);
        }
    }

    #[test]
    fn the_host_notices_a_stream_that_lost_or_garbled_records() {
        let mut g = finished_guest(vec![]);
        // The harness says it sent one more pass than arrived, and a line was not a record.
        let Some(Record::Summary { counts, .. }) = g.records.last_mut() else {
            unreachable!()
        };
        counts.add(Outcome::Pass);
        g.raw_lines.push("{\"type\":\"res".into());
        let errs = guest_errors(&g);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.kind == GuestErrorKind::Stream));
        assert!(
            errs[0].message.contains("3 pass, 1 fail"),
            "{}",
            errs[0].message
        );
        assert!(errs[1].message.contains("1 line(s)"), "{}", errs[1].message);
        // A guest that died keeps its status: it did not finish, errors or not.
        g.status = Status::Timeout;
        let cells = cells_of("6.1", None, &keys(), &g, "g");
        assert_eq!(cells[0].status, Status::Timeout);
        assert_eq!(cells[0].guest_errors.len(), 2);
    }

    #[test]
    fn hazards_and_news_lead_the_report_and_xfail_is_never_a_tick() {
        let mut g = guest();
        let mut push = |check: &str, scope, fs, outcome, observed: &str| {
            g.records.push(result(check, scope, fs, outcome, observed))
        };
        push("cow.leak", Scope::Kernel, None, Outcome::Xfail, "leak");
        push("cow.fixed", Scope::Kernel, None, Outcome::Xpass, "isolated");
        push("mmap.faults", Scope::Kernel, None, Outcome::Info, "42 | 7");
        let r = Report::new(None, cells_of("5.10", None, &keys(), &g, "g"));
        let md = r.markdown();
        let news = md.find("## Hazards and news").expect("section");
        assert!(news < md.find("## Cells").unwrap(), "{md}");
        let section = &md[news..md.find("## Cells").unwrap()];
        // Fail first, the hazard last; a kernel-scope result once, not once per cell.
        let fail = section.find("❌ fail | `dio.open` | 5.10 tmpfs | EINVAL | ok | man \\| page |");
        let xpass = section.find("🆕 xpass | `cow.fixed` | 5.10 (kernel) | isolated |");
        let xfail = section.find("☣️ xfail | `cow.leak` | 5.10 (kernel) | leak |");
        assert!(fail < xpass && xpass < xfail && fail.is_some(), "{section}");
        assert_eq!(section.matches("`cow.leak`").count(), 1, "{section}");
        let mut two = r.clone();
        two.cells
            .extend(cells_of("6.1", None, &keys(), &g, "g2").into_iter().take(1));
        let md2 = two.markdown();
        assert!(
            md2.contains("| ☣️ xfail | `cow.leak` | 5.10 (kernel), 6.1 (kernel) | leak |"),
            "{md2}"
        );
        assert!(
            !section.contains("mmap.faults"),
            "info is no news: {section}"
        );
        // In the family tables: no tick for a hazard, bold news, a measurement with its pipe
        // escaped.
        assert!(
            md.contains("| `cow.leak` | ☣️ leak | ☣️ leak | ☣️ leak |"),
            "{md}"
        );
        assert!(!md.contains("✅ leak"));
        assert!(md.contains("**🆕 isolated** (expected ok)"), "{md}");
        assert!(md.contains("📏 42 \\| 7"), "{md}");
        // Outcomes no cell has are folded out of the cells table.
        assert!(
            md.contains("| status | pass | fail | xfail | xpass | info |\n"),
            "{md}"
        );
    }

    #[test]
    fn a_report_without_news_says_so() {
        let g = GuestOutcome {
            records: guest().records.into_iter().take(2).collect(),
            ..guest()
        };
        let md = Report::new(None, cells_of("6.1", None, &keys(), &g, "g")).markdown();
        assert!(
            md.contains("No result failed, broke, or met a known hazard."),
            "{md}"
        );
    }

    #[test]
    fn only_this_schema_is_read_back() {
        let r = Report::new(None, cells_of("6.1", None, &keys(), &guest(), "g"));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(Report::from_json(&text).unwrap(), r);
        // What a schema 1 zcmatrix wrote: old outcome words, no guest_errors.
        let v1 = r#"{"schema_version":1,"accel_note":null,"cells":[{"kernel_spec":"6.1",
            "status":"completed","results":[{"check":"dio.open","outcome":"pass"}]}]}"#;
        let e = Report::from_json(v1).unwrap_err();
        assert!(
            e.contains("schema_version 1") && e.contains(&format!("only {SCHEMA_VERSION}")),
            "{e}"
        );
        assert!(Report::from_json("{}")
            .unwrap_err()
            .contains("no schema_version"));
        assert!(Report::from_json("nope").unwrap_err().contains("not JSON"));
    }
}
