//! The compatibility report: cells (kernel × filesystem × disk geometry) with their results, as
//! versioned JSON and as Markdown tables, one per check family.
//!
//! Kernel-scope results (checks that do not depend on a filesystem) are copied into every cell of
//! the guest that measured them, so each cell is complete on its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use zcmatrix_protocol::{CheckResult, MountReport, Outcome, Record, Scope, SCHEMA_VERSION};

use crate::guest::{GuestOutcome, Status};
use crate::kernel::Kernel;
use crate::qemu::Accel;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub kernel_spec: String,
    /// `uname -r` inside the guest.
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
    /// Folder (relative to the report) with this guest's console log and raw result stream.
    pub guest_dir: String,
    pub results: Vec<CheckResult>,
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
            let mount = mounts
                .iter()
                .find(|m| m.fs == k.fs && m.logical_block_size == k.logical_block_size);
            let (status, status_detail) = match mount {
                Some(m) if !m.ok && guest.status == Status::Completed => {
                    (Status::InfraError, format!("mount failed: {}", m.detail))
                }
                _ => (guest.status, guest.detail.clone()),
            };
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
                guest_dir: guest_dir.to_string(),
                results: results.iter().filter(mine).map(|r| (*r).clone()).collect(),
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

    pub fn any_failed(&self) -> bool {
        self.cells
            .iter()
            .any(|c| c.count(Outcome::Fail) + c.count(Outcome::Error) > 0)
    }

    pub fn all_completed(&self) -> bool {
        self.cells.iter().all(|c| c.status == Status::Completed)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# zcmatrix report\n\n");
        if let Some(n) = &self.accel_note {
            let _ = writeln!(md, "> {n}\n");
        }
        md.push_str(
            "Each cell is one kernel × filesystem × disk logical block size, measured in its own \
             QEMU guest. ✅ pass, ❌ fail (the kernel did not do what the rule says), ➖ skip, \
             ⚠️ error (the probe could not finish). The text is what the kernel did.\n\n",
        );
        md.push_str("## Cells\n\n| cell | kernel release | package | accel | boot | status | pass | fail | skip | error |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for c in &self.cells {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {} |",
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
                format!("{:?}", c.status).to_lowercase(),
                if c.status == Status::Completed {
                    String::new()
                } else {
                    format!(": {}", escape(&c.status_detail))
                },
                c.count(Outcome::Pass),
                c.count(Outcome::Fail),
                c.count(Outcome::Skip),
                c.count(Outcome::Error),
            );
        }
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

fn cell_text(r: &CheckResult) -> String {
    let mark = match r.outcome {
        Outcome::Pass => "✅",
        Outcome::Fail => "❌",
        Outcome::Skip => "➖",
        Outcome::Error => "⚠️",
        Outcome::Xfail => "☣️",
        Outcome::Xpass => "🆕",
        Outcome::Info => "📏",
    };
    match r.outcome {
        Outcome::Fail | Outcome::Xpass => format!(
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
                    schema_version: 1,
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
        assert!(!r.all_completed());
    }

    #[test]
    fn checks_with_variants_get_a_grid_per_kernel() {
        let mut g = guest();
        for (variant, observed) in [("base", "isolated"), ("thp", "leak")] {
            let Record::Result(mut r) = result(
                "cow.fork_basic",
                Scope::Kernel,
                None,
                Outcome::Pass,
                observed,
            ) else {
                unreachable!()
            };
            r.variant = Some(variant.into());
            g.records.push(Record::Result(r));
        }
        let md = Report::new(None, cells_of("5.10", None, &keys(), &g, "g")).markdown();
        assert!(md.contains("### 5.10 (6.1.0-47-cloud-amd64)"), "{md}");
        assert!(md.contains("| check | base | thp |"), "{md}");
        assert!(
            md.contains("| `cow.fork_basic` | ✅ isolated | ✅ leak |"),
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
            "results",
        ] {
            assert!(c.get(f).is_some(), "missing {f}");
        }
        assert_eq!(c["logical_block_size"], serde_json::Value::Null);
        assert_eq!(c["status"], "completed");
        assert_eq!(c["accel"], "tcg");
    }
}
