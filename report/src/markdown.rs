//! `report.md`: the report for GitHub (a job summary, a PR comment). Differences and hazards
//! first; the full grids folded in `<details>`, cells that equal their row's usual value shown as
//! `·`, so that the default matrix stays far below GitHub's 1 MiB summary cap.

use std::fmt::Write as _;

use zcmatrix_protocol::{CheckResult, Outcome};

use crate::analysis::{Analysis, Change, Grid};
use crate::model::{mark, Report, Status};
use crate::section;
use crate::text::{clip, code, escape};

/// What a grid cell says: the mark and what the kernel did (for a fail, also what was expected;
/// for a skip or error, the reason is listed elsewhere or in the detail).
pub fn cell_text(r: &CheckResult) -> String {
    let m = mark(r.outcome);
    match r.outcome {
        Outcome::Xpass | Outcome::Fail => format!(
            "**{m} {}** (expected {})",
            escape(&clip(&r.observed, 60)),
            escape(&clip(&r.expected, 60))
        ),
        Outcome::Skip => m.to_string(),
        Outcome::Error => format!("{m} {}", escape(&clip(&r.detail, 60))),
        // Shorter than a failure's: there are many of these, and report.html has them whole.
        Outcome::Pass | Outcome::Xfail | Outcome::Info => {
            format!("{m} {}", escape(&clip(&r.observed, 40)))
        }
    }
}

pub const LEGEND: &str = "✅ pass, ❌ fail (the kernel did not do what the rule says), ☣️ xfail \
(a known hazard: the kernel did what the rule predicts, and that is a documented problem), 🆕 xpass \
(the rule predicted a hazard and the kernel behaved well), ➖ skip, ⚠️ error (the probe could not \
finish), 📏 info (a measurement, no verdict).";

pub fn render(report: &Report) -> String {
    let a = Analysis::new(report);
    let mut md = String::from("# zcmatrix report\n\n");
    for n in report
        .shard_note()
        .iter()
        .chain(&report.profile_note())
        .chain(&report.accel_note)
    {
        let _ = writeln!(md, "> {}\n", escape(n));
    }
    let _ = writeln!(
        md,
        "Each cell is one kernel × filesystem × disk logical block size, measured in its own \
         guest. {LEGEND}\n"
    );
    at_a_glance(&a, &mut md);
    what_changes(&a, &mut md);
    hazards(&a, &mut md);
    for s in section::SECTIONS {
        s.markdown(report, &mut md);
    }
    cells(&a, &mut md);
    per_family(&a, &mut md);
    skips(&a, &mut md);
    md
}

fn at_a_glance(a: &Analysis, md: &mut String) {
    let r = a.report;
    md.push_str("## At a glance\n\n");
    let mut targets: Vec<String> = Vec::new();
    for c in &r.cells {
        if !targets.contains(&c.target()) {
            targets.push(c.target());
        }
    }
    let _ = writeln!(md, "| kernel | release | {} |", targets.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(targets.len()));
    for k in &a.kernels {
        let first = r
            .cells
            .iter()
            .find(|c| c.kernel_spec == *k)
            .expect("a kernel has a cell");
        let _ = write!(
            md,
            "| **{}** | {} |",
            escape(k),
            escape(first.kernel_release.as_deref().unwrap_or("?"))
        );
        for t in &targets {
            let text = match r
                .cells
                .iter()
                .find(|c| c.kernel_spec == *k && c.target() == *t)
            {
                Some(c) => glance_text(c),
                None => String::new(),
            };
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    let mut notes: Vec<String> = Vec::new();
    let mut accels: Vec<&str> = r
        .cells
        .iter()
        .filter_map(|c| c.accel)
        .map(|x| x.as_str())
        .collect();
    accels.dedup();
    if !accels.is_empty() {
        notes.push(format!("Acceleration: {}.", accels.join(", ")));
    }
    for k in &a.kernels {
        let c = r
            .cells
            .iter()
            .find(|c| c.kernel_spec == *k)
            .expect("a kernel has a cell");
        if let (Some(p), Some(v)) = (&c.kernel_package, &c.kernel_version) {
            // The machine as its guest reported it: architecture and page size.
            let machine = match (&c.arch, c.page_size) {
                (Some(arch), Some(page)) => format!(" ({arch}, {} KiB pages)", page / 1024),
                _ => String::new(),
            };
            notes.push(format!(
                "{}: {} {}{machine}.",
                escape(k),
                escape(p),
                escape(v)
            ));
        }
        if let Some(s) = &c.kernel_substituted {
            notes.push(format!("**{} substituted**: {}.", escape(k), escape(s)));
        }
    }
    let _ = writeln!(md, "\n{}\n", notes.join(" "));
}

/// `✅ 160 ☣️ 2 ➖ 5`, and the status when the cell did not finish cleanly.
pub fn glance_counts(c: &crate::Cell) -> String {
    Outcome::ALL
        .iter()
        .filter(|&&o| c.counts.get(o) > 0)
        .map(|&o| format!("{}{}", mark(o), c.counts.get(o)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn glance_text(c: &crate::Cell) -> String {
    let counts = glance_counts(c);
    if c.status == Status::Completed {
        counts
    } else {
        format!("**{}** {counts}", c.status.as_str())
    }
}

fn what_changes(a: &Analysis, md: &mut String) {
    md.push_str("## What changes\n\n");
    failures_first(a, md);
    if a.changes.is_empty() {
        md.push_str("Every check observed the same on every kernel and filesystem.\n\n");
        return;
    }
    let verdicts: Vec<&Change> = a.changes.iter().filter(|c| !c.measurement).collect();
    let measurements: Vec<&Change> = a.changes.iter().filter(|c| c.measurement).collect();
    md.push_str(
        "Checks whose observation differs between kernels (same filesystem and geometry, same \
         architecture and page size), between filesystems (same kernel), or between page sizes \
         and architectures (same series); hazards (☣️: a fail, xfail or xpass is involved) \
         first, measurements folded at the end.\n\n",
    );
    change_list(&verdicts, 300, md);
    if !measurements.is_empty() {
        let _ = writeln!(
            md,
            "\n<details><summary>{} measurement(s) (📏 info) that differ</summary>\n",
            measurements.len()
        );
        change_list(&measurements, 120, md);
        md.push_str("\n</details>\n");
    }
    md.push('\n');
}

/// What the kernel did against its rules, before any difference between cells: a run whose
/// one cell fails a rule has nothing that "differs", and still the reader must see it first.
fn failures_first(a: &Analysis, md: &mut String) {
    let failed: Vec<&crate::analysis::Finding> = a
        .findings
        .iter()
        .filter(|f| f.outcome == zcmatrix_protocol::Outcome::Fail)
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "❌ {} check(s) contradict their rule (details under Hazards and deviations):\n",
        failed.len()
    );
    for f in failed {
        let _ = writeln!(
            md,
            "- ❌ {} on {}: {}, expected {}",
            code(&f.id),
            escape(&f.places.join(", ")),
            escape(&clip(&f.observed, 120)),
            escape(&clip(&f.expected, 160))
        );
    }
    md.push('\n');
}

/// One bullet per check (in first-seen order), its lines beneath (values clipped to `width`
/// characters: report.html has them whole), its evidence once.
fn change_list(changes: &[&Change], width: usize, md: &mut String) {
    let mut done: Vec<&str> = Vec::new();
    for c in changes {
        if done.contains(&c.id.as_str()) {
            continue;
        }
        done.push(&c.id);
        let same: Vec<&&Change> = changes.iter().filter(|x| x.id == c.id).collect();
        let lead = if same.iter().any(|x| x.hazard) {
            "☣️ "
        } else {
            ""
        };
        let mut evidence: Vec<&str> = Vec::new();
        for x in &same {
            for e in &x.evidence {
                if !evidence.contains(&e.as_str()) {
                    evidence.push(e);
                }
            }
        }
        let _ = writeln!(
            md,
            "- {lead}{}. Evidence: {}",
            code(&c.id),
            escape(&clip(&evidence.join("; "), 150))
        );
        for x in same {
            let steps = x.transitions();
            let _ = writeln!(
                md,
                "  - {}: {}{}",
                escape(&x.where_text()),
                escape(&clip(&x.values_text(), width)),
                if steps.is_empty() {
                    String::new()
                } else {
                    format!("; {}", steps.join(", "))
                },
            );
        }
    }
}

fn hazards(a: &Analysis, md: &mut String) {
    md.push_str("## Hazards and deviations\n\n");
    if !a.unclean.is_empty() {
        let mut statuses: Vec<&str> = a
            .unclean
            .iter()
            .map(|&i| a.report.cells[i].status.as_str())
            .collect();
        statuses.dedup();
        let _ = writeln!(
            md,
            "⚠️ {} of {} cells did not finish cleanly ({}): their results may be missing or \
             skipped for reasons outside the kernel; see Cells and their guest errors.\n",
            a.unclean.len(),
            a.report.cells.len(),
            statuses.join(", ")
        );
    }
    if !a.splats.is_empty() {
        md.push_str("⚠️ The kernel was not well (its console shows these; results stand):\n\n");
        for (kind, excerpt, kernels) in &a.splats {
            let first = excerpt.lines().next().unwrap_or_default();
            let _ = writeln!(
                md,
                "- {} on {}: {}",
                escape(kind),
                escape(&kernels.join(", ")),
                escape(&clip(first, 200))
            );
        }
        md.push('\n');
    }
    if a.findings.is_empty() {
        md.push_str("No result failed, broke, or met a known hazard.\n\n");
        return;
    }
    md.push_str(
        "| outcome | check | cell | observed | expected | evidence |\n\
         |---|---|---|---|---|---|\n",
    );
    for f in &a.findings {
        let _ = writeln!(
            md,
            "| {} {} | {} | {} | {} | {} | {} |",
            mark(f.outcome),
            f.outcome.as_str(),
            code(&f.id),
            escape(&a.places_text(&f.places)),
            escape(&clip(&f.observed, 200)),
            escape(&clip(&f.expected, 200)),
            escape(&clip(&f.evidence, 150))
        );
    }
    md.push('\n');
}

fn cells(a: &Analysis, md: &mut String) {
    let r = a.report;
    md.push_str("<details><summary>Cells: status, boot time and counts</summary>\n\n");
    md.push_str(
        "| cell | kernel release | accel | boot | status | results |\n|---|---|---|---|---|---|\n",
    );
    for c in &r.cells {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {}{} | {} |",
            escape(&c.label()),
            escape(c.kernel_release.as_deref().unwrap_or("?")),
            c.accel.map(|x| x.as_str()).unwrap_or("-"),
            c.boot_ms
                .map(|b| format!("{:.1} s", b as f64 / 1000.0))
                .unwrap_or("-".into()),
            c.status.as_str(),
            if c.status == Status::Completed {
                String::new()
            } else {
                format!(": {}", escape(&clip(&c.status_detail, 200)))
            } + &if c.retries > 0 {
                format!(
                    " (after {} retr{})",
                    c.retries,
                    if c.retries == 1 { "y" } else { "ies" }
                )
            } else {
                String::new()
            },
            c.counts.describe(),
        );
    }
    // Guest-wide errors repeat in every cell of a guest: list each once, under its kernel.
    let mut listed: Vec<String> = Vec::new();
    for c in &r.cells {
        for e in &c.guest_errors {
            let place = match e.kind {
                crate::GuestErrorKind::Mount => c.label(),
                _ => c.kernel_spec.clone(),
            };
            let line = format!(
                "- {}: {}: {}",
                escape(&place),
                e.kind.as_str(),
                escape(&clip(&e.message, 300))
            );
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
    // The host's notes are guest-wide too: each once, under its kernel.
    let mut notes: Vec<String> = Vec::new();
    for c in &r.cells {
        for n in &c.notes {
            let line = format!("- {}: {}", escape(&c.kernel_spec), escape(&clip(n, 300)));
            if !notes.contains(&line) {
                notes.push(line);
            }
        }
    }
    if !notes.is_empty() {
        md.push_str("\nNotes from the host:\n");
        for l in &notes {
            let _ = writeln!(md, "{l}");
        }
    }
    md.push_str("\n</details>\n\n");
}

fn per_family(a: &Analysis, md: &mut String) {
    md.push_str(
        "## Per family\n\nChecks as rows, cells as columns, one table per kernel; `·` is the \
         row's usual value (the `usual` column), anything else stands out.\n\n",
    );
    // A family with its own section (the cost family's timings) has its rule in its text.
    for f in a
        .families
        .iter()
        .filter(|f| section::of_family(&f.name).is_none())
    {
        let changing = f
            .grids
            .iter()
            .flat_map(|g| &g.rows)
            .filter(|r| r.changes)
            .map(|r| &r.id)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let _ = writeln!(
            md,
            "<details><summary><b>{}</b>: {} rule(s), {} changing</summary>\n",
            escape(&f.name),
            f.rules.len(),
            changing
        );
        // Rows quiet in every table (one value on every kernel and target, a pass or a
        // measurement everywhere) say it once, in a line, instead of once per kernel.
        let quiet = quiet_rows(f);
        if !quiet.is_empty() {
            let items: Vec<String> = quiet
                .iter()
                .map(|(id, v)| format!("{} {}", code(id), escape(&clip(v, 60))))
                .collect();
            let _ = writeln!(md, "The same on every cell: {}.\n", items.join("; "));
        }
        // Kernels whose tables read the same (6.12 and 7.2 often do) share one, titled with
        // all of them: the page stays one a job summary can hold.
        let mut tables: Vec<(Vec<String>, String)> = Vec::new();
        for g in &f.grids {
            let body = grid(g, &quiet);
            if body.is_empty() {
                continue;
            }
            match tables.iter_mut().find(|(_, b)| *b == body) {
                Some((titles, _)) => titles.push(g.title.clone()),
                None => tables.push((vec![g.title.clone()], body)),
            }
        }
        for (titles, body) in tables {
            // "6.12 (6.12.118+deb13-cloud-amd64)": the release is in "At a glance" already.
            let titles: Vec<String> = titles
                .iter()
                .map(|t| escape(t.split_once(" (").map_or(t.as_str(), |(k, _)| k)))
                .collect();
            let _ = writeln!(md, "**{}**\n\n{body}", titles.join(" · "));
        }
        md.push_str("Rules:\n");
        for rule in &f.rules {
            // Evidence "What changes" quotes already is not repeated here.
            let quoted = a.changes.iter().any(|c| {
                !rule.evidence.is_empty() && rule.evidence.iter().all(|e| c.evidence.contains(e))
            });
            let evidence = if quoted {
                "under What changes".to_string()
            } else {
                // Clipped here to keep the page a job summary can hold; report.html has it whole.
                escape(&clip(&rule.evidence.join("; "), 100))
            };
            let _ = writeln!(
                md,
                "- {}: expects {}. Evidence: {evidence}",
                code(&rule.id),
                escape(&clip(&rule.expected.join(" / "), 90)),
            );
        }
        md.push_str("\n</details>\n\n");
    }
}

/// (id, value) of the rows of a family that are quiet in every grid with the same usual value.
fn quiet_rows(f: &crate::analysis::Family) -> Vec<(String, String)> {
    let mut seen: Vec<(String, Option<String>, bool)> = Vec::new();
    for g in &f.grids {
        for row in &g.rows {
            let quiet = (0..row.cells.len()).all(|i| !row.stands_out(i));
            match seen.iter_mut().find(|(id, _, _)| *id == row.id) {
                Some((_, usual, q)) => *q &= quiet && *usual == row.usual,
                None => seen.push((row.id.clone(), row.usual.clone(), quiet)),
            }
        }
    }
    seen.into_iter()
        .filter_map(|(id, usual, q)| Some((id, usual?)).filter(|_| q))
        .collect()
}

/// One grid's table, without its title; empty when every row is quiet everywhere.
fn grid(g: &Grid, quiet: &[(String, String)]) -> String {
    let mut md = String::new();
    let rows: Vec<&crate::analysis::GridRow> = g
        .rows
        .iter()
        .filter(|r| !quiet.iter().any(|(id, _)| *id == r.id))
        .collect();
    if rows.is_empty() {
        return md;
    }
    // A column no shown row has a result in (a 512-byte disk where the quick profile ran only
    // direct I/O) is left out.
    let shown: Vec<usize> = (0..g.columns.len())
        .filter(|&i| {
            rows.iter()
                .any(|r| r.cells.get(i).is_some_and(Option::is_some))
        })
        .collect();
    let labels: Vec<String> = shown.iter().map(|&i| escape(&g.columns[i].label)).collect();
    let _ = writeln!(md, "| check | usual | {} |", labels.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(shown.len()));
    for row in rows {
        let _ = write!(
            md,
            "| {} | {} |",
            code(&row.id),
            row.usual
                .as_deref()
                .map(|u| escape(&clip(u, 40)))
                .unwrap_or_default()
        );
        for (i, r) in row
            .cells
            .iter()
            .enumerate()
            .filter(|(i, _)| shown.contains(i))
        {
            let text = match r {
                None => String::new(),
                Some(r) if row.stands_out(i) => cell_text(r),
                Some(_) => "·".into(),
            };
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    md
}

fn skips(a: &Analysis, md: &mut String) {
    if a.skips.is_empty() {
        return;
    }
    md.push_str("## Skipped, by reason\n\n<details><summary>");
    let n: usize = a.skips.iter().map(|g| g.checks.len()).sum();
    let _ = writeln!(md, "{} reason(s), {n} check(s)</summary>\n", a.skips.len());
    for g in &a.skips {
        let _ = writeln!(md, "- {}:", escape(&clip(&g.reason, 200)));
        let items: Vec<String> = g
            .lines()
            .iter()
            .map(|(ids, places)| format!("{} ({})", code(ids), escape(&clip(places, 160))))
            .collect();
        let _ = writeln!(md, "  {}", items.join("; "));
    }
    md.push_str("\n</details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixture::{self, result};

    /// One kernel, one filesystem, one check against its rule: nothing differs between cells,
    /// and the failure still leads What changes.
    #[test]
    fn a_failure_leads_what_changes_even_when_nothing_differs() {
        let t = Some(("tmpfs", None));
        let mut r = result("dio.open", t, Outcome::Fail, "EINVAL");
        r.expected = "ok".into();
        let report = crate::Report::new(None, vec![fixture::cell("5.10", "tmpfs", None, vec![r])]);
        let md = report.markdown();
        let changes = md.find("## What changes").unwrap();
        let first = &md[changes..];
        assert!(
            first.starts_with(
                "## What changes\n\n❌ 1 check(s) contradict their rule (details under Hazards \
                 and deviations):\n\n- ❌ `dio.open` on 5.10 tmpfs: EINVAL, expected ok\n"
            ),
            "{md}"
        );
    }

    #[test]
    fn differences_and_hazards_come_first_and_grids_are_folded() {
        let md = fixture::two_kernels().markdown();
        let pos = |s: &str| md.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{md}"));
        assert!(pos("## At a glance") < pos("## What changes"));
        assert!(pos("## What changes") < pos("## Hazards and deviations"));
        assert!(pos("## Hazards and deviations") < pos("## Per family"));
        assert!(md.contains(
            "- ☣️ `cow.leak[thp]`. Evidence: open(2)\n  - on kernel: leak (5.10) → isolated (6.1); changed between 5.10 and 6.1\n"
        ), "{md}");
        assert!(md.contains(
            "- `dio.align`. Evidence: open(2)\n  - on ext4/4096: 4096 (5.10) → 512 (6.1); changed between 5.10 and 6.1\n  \
             - between filesystems on 5.10: 4096 (ext4/4096) · EINVAL (tmpfs)\n"
        ), "{md}");
        assert!(
            md.contains("| **5.10** | 5.10.0-1-cloud-amd64 | ✅3 ☣️1 ➖1 | ✅3 ☣️1 ➖1 |"),
            "{md}"
        );
        assert!(
            md.contains("| ☣️ xfail | `cow.leak[thp]` | 5.10 (kernel) | leak |"),
            "{md}"
        );
        assert!(md.contains("<details><summary><b>dio</b>"), "{md}");
        // A row quiet in every table is said once; the odd one stands out in its table.
        assert!(
            md.contains("The same on every cell: `dio.open` ok."),
            "{md}"
        );
        assert!(!md.contains("| `dio.open` |"), "{md}");
        assert!(
            md.contains("- no THP here:\n  `cow.leak[mthp]` (5.10, 6.1)"),
            "{md}"
        );
    }

    #[test]
    fn hostile_text_from_a_guest_cannot_break_the_table_or_inject_html() {
        let hostile = "a|b `x` <script>alert(1)</script>\n| evil |";
        let mut r = fixture::two_kernels();
        for c in &mut r.cells {
            let mut x = result(
                "dio.hostile",
                Some((c.fs.as_str(), c.logical_block_size)),
                Outcome::Fail,
                hostile,
            );
            x.expected = hostile.into();
            x.evidence = hostile.into();
            c.results.push(x);
            c.guest_errors.push(crate::GuestError {
                kind: crate::GuestErrorKind::Harness,
                message: hostile.into(),
            });
            c.status_detail = hostile.into();
        }
        r.accel_note = Some(hostile.into());
        r.cells[0].splats.push(crate::Splat {
            kind: "warning".into(),
            excerpt: hostile.into(),
        });
        let md = r.markdown();
        assert!(md.contains("- warning on 5.10: a\\|b"), "{md}");
        assert!(!md.contains("<script>"), "{md}");
        assert!(!md.contains("`x`"), "{md}");
        // Every table line keeps its column count: no pipe of the guest splits a cell.
        for table_line in md.lines().filter(|l| l.starts_with("| ❌ fail")) {
            let cols = table_line.replace("\\|", "").matches('|').count();
            assert_eq!(cols, 7, "{table_line}");
        }
        assert!(
            md.contains("a\\|b \\`x\\` &lt;script&gt;alert(1)&lt;/script&gt; \\| evil \\|"),
            "{md}"
        );
    }

    #[test]
    fn a_report_without_news_says_so() {
        let r = Report::new(
            None,
            vec![fixture::cell(
                "6.1",
                "ext4",
                Some(512),
                vec![result(
                    "dio.open",
                    Some(("ext4", Some(512))),
                    Outcome::Pass,
                    "ok",
                )],
            )],
        );
        let md = r.markdown();
        assert!(
            md.contains("No result failed, broke, or met a known hazard."),
            "{md}"
        );
        assert!(md.contains("Every check observed the same"), "{md}");
    }
}

#[cfg(test)]
mod size {
    use super::*;
    use crate::model::fixture::{cell, measured, result};

    /// A report the shape of the default matrix (4 kernels × 7 targets, ~170 results a cell with
    /// long evidence, a few dozen checks changing between kernels and filesystems) stays well
    /// under GitHub's 1 MiB step-summary cap, and under 100 KB.
    #[test]
    fn a_default_sized_matrix_stays_under_100_kb() {
        let evidence = "open(2) NOTES, O_DIRECT: buffer, offset and length must be aligned to the logical \
                        block size; since 6.0 the buffer needs only the device's DMA alignment (b1a000d3b8ec)";
        let targets: [(&str, Option<u32>); 7] = [
            ("ext4", Some(512)),
            ("ext4", Some(4096)),
            ("xfs", Some(512)),
            ("xfs", Some(4096)),
            ("btrfs", Some(512)),
            ("btrfs", Some(4096)),
            ("tmpfs", None),
        ];
        let mut cells = Vec::new();
        for (ki, k) in ["5.10", "6.1", "6.12", "7.2"].into_iter().enumerate() {
            for (ti, (fs, lbs)) in targets.iter().enumerate() {
                let mut rs = Vec::new();
                for i in 0..60 {
                    // Every fifth check changes with the kernel, every seventh with the target.
                    let v = match (i % 5, i % 7) {
                        (0, _) => format!("{}", 512 << ki),
                        (_, 0) => format!("v{ti}"),
                        _ => "ok".into(),
                    };
                    let mut r = result(
                        &format!("dio.check_{i}"),
                        Some((fs, *lbs)),
                        Outcome::Pass,
                        &v,
                    );
                    r.evidence = evidence.into();
                    rs.push(r);
                }
                for i in 0..110 {
                    let o = if i % 11 == 0 && ki == 0 {
                        Outcome::Xfail
                    } else {
                        Outcome::Pass
                    };
                    let mut r = result(
                        &format!("cow.scenario_{}[backing_{}]", i / 14, i % 14),
                        None,
                        o,
                        "isolated",
                    );
                    r.evidence = evidence.into();
                    rs.push(r);
                }
                // The cost family as the quick profile runs it: on the larger block size of
                // each filesystem (the runner leaves it out on the other), no cold read on tmpfs,
                // nothing through virtio-net (full profile only).
                for (path, variants) in crate::cost::tests::PATHS {
                    if lbs == &Some(512) {
                        break;
                    }
                    for v in variants.iter().filter(|v| !v.starts_with("nic")) {
                        let skipped = *fs == "tmpfs" && v.ends_with("cold");
                        let mut r = measured(
                            &format!("cost.{path}[{v}]"),
                            Some((fs, *lbs)),
                            if skipped {
                                Outcome::Skip
                            } else {
                                Outcome::Info
                            },
                            &[
                                ("cpu_us", 2585.0),
                                ("usr_us", 12.0),
                                ("sys_us", 2573.0),
                                ("wall_us", 8054.0),
                                ("calls", 4.0),
                                ("vcsw", 0.0),
                                ("ivcsw", 24.0),
                                ("rx_us", 5757.0),
                                ("cpu_pct", 23.0),
                                ("cpu_q1_pct", 20.0),
                                ("cpu_q3_pct", 27.0),
                                ("usr_pct", 2.0),
                                ("sys_pct", 24.0),
                                ("wall_pct", 46.0),
                                ("calls_pct", 13.0),
                                ("ivcsw_pct", 73.0),
                                ("rx_pct", 99.0),
                                ("timed_ms", 31.0),
                                ("min_ms", 20.0),
                            ],
                        );
                        r.evidence = evidence.into();
                        if skipped {
                            r.detail = "tmpfs pages are the file itself: no cold read".into();
                        }
                        rs.push(r);
                    }
                }
                cells.push(cell(k, fs, *lbs, rs));
            }
        }
        let md = Report::new(None, cells).markdown();
        assert!(md.contains("## What zero-copy saves (cost)"));
        assert!(md.len() < 100_000, "{} bytes", md.len());
    }
}
