//! The `cost` family's own section: what each way of moving a file costs, as a percentage of
//! read+write, per kernel. Its values are timings, which move from run to run, so the rest of
//! the report leaves them out of "What changes", of the per-family grids and of `report diff`
//! (unless `--exact`), and shows them here: a compact table per kernel in report.md, a chart
//! and a table per kernel in report.html, each with the acceleration the guest ran under.

use std::fmt::Write as _;

use maud::{html, Markup};
use zcmatrix_protocol::{CheckResult, Outcome};

use crate::model::{family, Accel, Report};
use crate::text::{clip, escape};

/// The family whose values are timings.
pub const FAMILY: &str = "cost";

/// Whether a check id belongs to the cost family.
pub fn is_cost(id: &str) -> bool {
    family(id) == FAMILY
}

/// The baseline path: its row shows absolute CPU time, the others percentages of it.
const BASELINE: &str = "cost.read_write";

/// The variants in the order of the table's columns, as the harness declares its checks.
pub use zcmatrix_protocol::cost::VARIANTS;

/// One kernel's cost results: targets as columns of values, checks as rows.
pub struct KernelCost<'a> {
    pub kernel: String,
    pub accel: Option<Accel>,
    /// Targets (`ext4/512`, `tmpfs`) with at least one measured cost result, in report order.
    pub targets: Vec<String>,
    /// Paths (`cost.sendfile`), in first-seen order, the baseline first.
    pub paths: Vec<String>,
    /// (path, variant, target) → result.
    results: Vec<(String, String, String, &'a CheckResult)>,
}

impl<'a> KernelCost<'a> {
    pub fn get(&self, path: &str, variant: &str, target: &str) -> Option<&'a CheckResult> {
        self.results
            .iter()
            .find(|(p, v, t, _)| p == path && v == variant && t == target)
            .map(|x| x.3)
    }

    /// The variants any path has here, in [`VARIANTS`] order.
    pub fn variants(&self) -> Vec<&'static str> {
        VARIANTS
            .into_iter()
            .filter(|v| self.results.iter().any(|x| x.1 == *v))
            .collect()
    }
}

/// Every kernel with measured or errored (not skipped) cost results: an error is shown as
/// one, never as an absent sink.
pub fn by_kernel(report: &Report) -> Vec<KernelCost<'_>> {
    let mut out: Vec<KernelCost> = Vec::new();
    for c in &report.cells {
        for r in c.results.iter().filter(|r| is_cost(&r.check)) {
            if r.outcome == Outcome::Skip {
                continue;
            }
            let k = match out.iter().position(|k| k.kernel == c.kernel_spec) {
                Some(i) => &mut out[i],
                None => {
                    out.push(KernelCost {
                        kernel: c.kernel_spec.clone(),
                        accel: c.accel,
                        targets: Vec::new(),
                        paths: Vec::new(),
                        results: Vec::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            let target = c.target();
            if !k.targets.contains(&target) {
                k.targets.push(target.clone());
            }
            if !k.paths.contains(&r.check) {
                k.paths.push(r.check.clone());
            }
            let variant = r.variant.clone().unwrap_or_default();
            k.results.push((r.check.clone(), variant, target, r));
        }
    }
    for k in &mut out {
        // Stable: the baseline first, the others as they came.
        k.paths.sort_by_key(|p| p != BASELINE);
    }
    out
}

/// What the acceleration does to these numbers, in a sentence.
pub fn accel_words(accel: Option<Accel>) -> &'static str {
    match accel {
        Some(Accel::Tcg) => {
            "an emulated CPU: absolute times mean little and even ratios are distorted"
        }
        Some(Accel::Kvm) => "real CPUs under a hypervisor: the ratios are real",
        Some(Accel::Native) => "the host itself: ratios and times are real",
        None => "acceleration unknown",
    }
}

fn accel_name(accel: Option<Accel>) -> &'static str {
    accel.map_or("?", |a| a.as_str())
}

/// Whether a result's repetitions ran out before their minimum measuring time (the harness's
/// limit): its numbers are shown, and the harness did not judge them.
pub fn cut_short(r: &CheckResult) -> bool {
    matches!(
        (r.measure("timed_ms"), r.measure("min_ms")),
        (Some(t), Some(m)) if t < m
    )
}

/// A Markdown value: the median of `name` over the filesystems measured (`–` where there is
/// no such result, thousands as `17k`), ❌ first when a result failed its rule, ⚠️ when a
/// probe erred, ⏱️ when a measurement was cut short and not judged.
fn median_over_fs(k: &KernelCost, path: &str, variant: &str, name: &str) -> String {
    let rs: Vec<&CheckResult> = k
        .targets
        .iter()
        .filter_map(|t| k.get(path, variant, t))
        .collect();
    let erred = if rs.iter().any(|r| r.outcome == Outcome::Error) {
        "⚠️"
    } else {
        ""
    };
    let mut vs: Vec<f64> = rs.iter().filter_map(|r| r.measure(name)).collect();
    if vs.is_empty() {
        return if erred.is_empty() { "–" } else { erred }.into();
    }
    vs.sort_by(f64::total_cmp);
    let n = vs.len();
    let m = if n % 2 == 1 {
        vs[n / 2]
    } else {
        (vs[n / 2 - 1] + vs[n / 2]) / 2.0
    };
    let failed = if rs
        .iter()
        .any(|r| r.outcome.is_failure() && r.outcome != Outcome::Error)
    {
        "❌"
    } else {
        ""
    };
    let short = if rs.iter().any(|r| cut_short(r)) {
        "⏱️"
    } else {
        ""
    };
    let marks = format!("{failed}{erred}{short}");
    if m >= 10_000.0 {
        format!("{marks}{}k", (m / 1000.0).round())
    } else {
        format!("{marks}{}", m.round())
    }
}

/// The statistic, stated once for report.md and report.html: what the harness judges is what
/// is shown.
const EXPLAIN: &str = "Sender CPU (the process, its receiving thread excluded) of each path as \
% of read(2)+write(2) with a 64 KiB buffer on the same kernel, filesystem and sink: cpu_pct, the \
median over interleaved repetitions of each one's CPU time against the read+write repetition \
beside it (report.html adds its interquartile range); read_write: that baseline in µs/MiB, the \
median of its repetitions. The zero-copy premise judges that same median: for a cached file \
(warm) sendfile, splice and copy_file_range fail (❌) above 150 %. ⚠️: the probe erred (its \
result says why); ⏱️: the repetitions ran out before their minimum measuring time, so the \
numbers are shown and not judged.";

/// [`EXPLAIN`] for report.html, whose marks are words (the page draws no emoji: a reader
/// without a colour-emoji font would see empty boxes).
fn explain_html() -> String {
    EXPLAIN
        .replace("(❌)", "(a fail)")
        .replace("⚠️:", "error:")
        .replace("⏱️:", "not judged:")
}

/// What report.md adds: where the rest is (how to read a cell follows, with the sinks present).
const EXPLAIN_MD: &str = "report.html has each filesystem, the interquartile ranges, wall time \
and calls.";

/// report.md's section: one small table per kernel (nothing when no cost check ran).
pub fn markdown(report: &Report, md: &mut String) {
    let kernels = by_kernel(report);
    if kernels.is_empty() {
        return;
    }
    md.push_str("## What zero-copy saves (cost)\n\n");
    // The sinks any kernel measured, in table order: the default matrix has no virtio-net ones.
    let variants: Vec<&str> = VARIANTS
        .into_iter()
        .filter(|v| kernels.iter().any(|k| k.variants().contains(v)))
        .collect();
    let _ = writeln!(
        md,
        "{EXPLAIN} A cell: {}, medians over the filesystems (–: no such sink, or tmpfs cold); \
         {EXPLAIN_MD}\n",
        variants.join("·").replace('_', " ")
    );
    let mut accels: Vec<String> = Vec::new();
    for k in &kernels {
        let a = format!("{}: {}", accel_name(k.accel), accel_words(k.accel));
        if !accels.contains(&a) {
            accels.push(a);
        }
    }
    let _ = writeln!(md, "Acceleration, {}.\n", escape(&accels.join("; ")));
    let mut paths: Vec<&str> = Vec::new();
    for k in &kernels {
        for p in &k.paths {
            if !paths.contains(&p.as_str()) {
                paths.push(p);
            }
        }
    }
    let _ = writeln!(
        md,
        "| path | {} |\n|---|{}",
        kernels
            .iter()
            .map(|k| format!("{} ({})", escape(&k.kernel), accel_name(k.accel)))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(kernels.len())
    );
    for p in paths {
        let (name, label) = if p == BASELINE {
            ("cpu_us", "read_write µs/MiB")
        } else {
            ("cpu_pct", p.trim_start_matches("cost."))
        };
        let _ = write!(md, "| {} |", escape(label));
        for k in &kernels {
            let vs: Vec<String> = variants
                .iter()
                .map(|v| median_over_fs(k, p, v, name))
                .collect();
            let _ = write!(md, " {} |", vs.join("·"));
        }
        md.push('\n');
    }
    md.push('\n');
}

/// The chart's rows: every non-baseline (path, variant) with a value, in table order.
fn chart_rows<'k>(k: &'k KernelCost) -> Vec<(&'k str, &'static str)> {
    let mut rows = Vec::new();
    for p in k.paths.iter().filter(|p| *p != BASELINE) {
        for v in k.variants() {
            if k.targets.iter().any(|t| k.get(p, v, t).is_some()) {
                rows.push((p.as_str(), v));
            }
        }
    }
    rows
}

const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f",
];

/// One kernel's chart: a row of bars per path and sink (one bar per filesystem), the sender's
/// CPU as a percentage of read+write, a line at 100 % (read+write) and a dashed one at the
/// premise's 150 %.
pub fn svg(k: &KernelCost) -> Markup {
    let rows = chart_rows(k);
    let (left, width, bar, gap) = (190.0, 420.0, 6.0, 6.0);
    let scale_max = 200.0_f64;
    let group = k.targets.len() as f64 * bar + gap;
    let top = 30.0;
    let height = top + rows.len() as f64 * group + 16.0;
    let x = |pct: f64| left + pct.clamp(0.0, scale_max) / scale_max * width;
    html! {
        svg.cost-chart width=(left + width + 60.0) height=(height) role="img" data-kernels=(k.kernel) {
            title { "cost on " (k.kernel) ": sender CPU as % of read+write" }
            @for (i, t) in k.targets.iter().enumerate() {
                rect x=(left + i as f64 * 85.0) y="2" width="9" height="9" fill=(COLOURS[i % COLOURS.len()]) {}
                text x=(left + 12.0 + i as f64 * 85.0) y="10" font-size="10" { (t) }
            }
            @for pct in [0.0, 50.0, 100.0, 150.0, 200.0] {
                text x=(x(pct) - 8.0) y=(top - 6.0) font-size="9" { (pct) "%" }
            }
            line x1=(x(100.0)) x2=(x(100.0)) y1=(top - 2.0) y2=(height - 14.0) stroke="#333" stroke-width="1" {}
            line x1=(x(150.0)) x2=(x(150.0)) y1=(top - 2.0) y2=(height - 14.0) stroke="#e15759" stroke-dasharray="4 3" stroke-width="1" {}
            @for (ri, (p, v)) in rows.iter().enumerate() {
                @let y0 = top + ri as f64 * group;
                text x="0" y=(y0 + group / 2.0 + 2.0) font-size="10" { (p.trim_start_matches("cost.")) " → " (v.replace('_', " ")) }
                @for (ti, t) in k.targets.iter().enumerate() {
                    @if let Some(r) = k.get(p, v, t) {
                        @let y = y0 + ti as f64 * bar;
                        @if r.outcome == Outcome::Error {
                            // An error is said, never drawn as a missing bar.
                            rect.error x=(left) y=(y) width="6" height=(bar - 1.0) fill="#b00020" {
                                title { (p) "[" (v) "] " (t) ": error: " (clip(&r.detail, 200)) }
                            }
                            text.error x=(left + 9.0) y=(y + bar - 1.0) font-size="8" fill="#b00020" { "error" }
                        } @else if let Some(pct) = r.measure("cpu_pct") {
                            @let short = cut_short(r);
                            rect x=(left) y=(y) width=((x(pct) - left).max(1.0)) height=(bar - 1.0) fill=(COLOURS[ti % COLOURS.len()]) fill-opacity=(if short { "0.35" } else { "1" }) {
                                title { (p) "[" (v) "] " (t) ": " (pct) "% of read+write (median of paired repetitions" (iqr_words(r)) ")" @if short { ", not judged: repetitions ran out before their minimum measuring time" } @if r.outcome == Outcome::Fail { ", over the premise's 150 %" } }
                            }
                            @if let (Some(q1), Some(q3)) = (r.measure("cpu_q1_pct"), r.measure("cpu_q3_pct")) {
                                line.iqr x1=(x(q1)) x2=(x(q3)) y1=(y + (bar - 1.0) / 2.0) y2=(y + (bar - 1.0) / 2.0) stroke="#222" stroke-width="1" {}
                            }
                            @if pct > scale_max { text x=(left + width + 3.0) y=(y + bar - 1.0) font-size="8" { (pct) "%" } }
                            @if short { text.short x=(x(pct) + 3.0) y=(y + bar - 1.0) font-size="8" { "not judged" } }
                        }
                    }
                }
            }
            text x=(left) y=(height - 2.0) font-size="9" { "sender CPU, median of paired repetitions, % of read+write; whisker: interquartile range (line: read+write; dashed: the premise's 150 %)" }
        }
    }
}

/// report.html's section: per kernel the chart and a table of CPU, wall time and calls as
/// percentages of read+write, each cell's full observation in its title.
pub fn html(report: &Report) -> Markup {
    let kernels = by_kernel(report);
    html! {
        @if !kernels.is_empty() {
            section data-family=(FAMILY) {
                h2 { "What zero-copy saves (cost)" }
                p.note { (explain_html()) }
                @for k in &kernels {
                    details.cost open data-kernels=(k.kernel) {
                        summary { b { (k.kernel) } " (" (accel_name(k.accel)) "): " (accel_words(k.accel)) }
                        (svg(k))
                        details {
                            summary { "CPU · wall time · system calls, % of read+write" }
                            table {
                                tr { th { "path" } th { "sink" } @for t in &k.targets { th data-fs=(t) { (t) } } }
                                @for p in &k.paths { @for v in k.variants() {
                                    @if k.targets.iter().any(|t| k.get(p, v, t).is_some()) {
                                        tr {
                                            th { code { (p) } } td { (v) }
                                            @for t in &k.targets {
                                                @match k.get(p, v, t) {
                                                    None => td data-fs=(t) { "–" },
                                                    Some(r) => td class=(r.outcome.as_str()) data-fs=(t) title=(clip(&r.observed, 300)) {
                                                        (cell_text(p, r))
                                                    },
                                                }
                                            }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ` (IQR 58–70 %)`, or nothing for a record without quartiles.
fn iqr_words(r: &CheckResult) -> String {
    match (r.measure("cpu_q1_pct"), r.measure("cpu_q3_pct")) {
        (Some(q1), Some(q3)) => format!(", IQR {}–{} %", q1.round(), q3.round()),
        _ => String::new(),
    }
}

fn cell_text(path: &str, r: &CheckResult) -> String {
    if r.outcome == Outcome::Error {
        return "error".into();
    }
    let f = |n: &str| {
        r.measure(n)
            .map_or("?".into(), |v| format!("{}", v.round()))
    };
    let short = if cut_short(r) { " (not judged)" } else { "" };
    if path == BASELINE {
        format!("{} µs/MiB · {} calls{short}", f("cpu_us"), f("calls"))
    } else {
        let iqr = match (r.measure("cpu_q1_pct"), r.measure("cpu_q3_pct")) {
            (Some(q1), Some(q3)) => format!(" ({}–{})", q1.round(), q3.round()),
            _ => String::new(),
        };
        format!(
            "{} %{iqr} · {} % · {} %{short}",
            f("cpu_pct"),
            f("wall_pct"),
            f("calls_pct")
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::fixture::{cell, measured, result};

    /// The paths and their variants as the harness declares them.
    pub const PATHS: &[(&str, &[&str])] = &[
        ("read_write", &VARIANTS),
        ("mmap_write", &VARIANTS),
        ("sendfile", &VARIANTS),
        ("splice", &VARIANTS),
        ("copy_file_range", &["file_warm", "file_cold"]),
        ("uring", &VARIANTS),
        (
            "msg_zerocopy",
            &["tcp_warm", "tcp_cold", "nic_warm", "nic_cold"],
        ),
        (
            "uring_send_zc",
            &["tcp_warm", "tcp_cold", "nic_warm", "nic_cold"],
        ),
    ];

    /// Two kernels × (ext4/4096, tmpfs), sendfile and the baseline, tmpfs cold skipped.
    pub fn report() -> Report {
        let mut cells = Vec::new();
        for (k, pct) in [("6.1", 23), ("6.12", 180)] {
            for (fs, lbs, pct) in [("ext4", Some(4096), pct), ("tmpfs", None, pct - 3)] {
                let t = Some((fs, lbs));
                let mut rs = Vec::new();
                for v in &VARIANTS[..4] {
                    let skip = fs == "tmpfs" && v.ends_with("cold");
                    let o = |x| if skip { Outcome::Skip } else { x };
                    rs.push(measured(
                        &format!("cost.read_write[{v}]"),
                        t,
                        o(Outcome::Info),
                        &[
                            ("cpu_us", 16964.0),
                            ("wall_us", 17000.0),
                            ("calls", 32.0),
                            ("cpu_pct", 100.0),
                            ("wall_pct", 100.0),
                        ],
                    ));
                    let judged = if v.ends_with("warm") && pct > 150 {
                        Outcome::Fail
                    } else if v.ends_with("warm") {
                        Outcome::Pass
                    } else {
                        Outcome::Info
                    };
                    rs.push(measured(
                        &format!("cost.sendfile[{v}]"),
                        t,
                        o(judged),
                        &[
                            ("cpu_us", 2585.0),
                            ("wall_us", 8000.0),
                            ("calls", 4.0),
                            ("cpu_pct", pct as f64),
                            ("wall_pct", 46.0),
                            ("calls_pct", 13.0),
                        ],
                    ));
                }
                rs.push(result("dio.open", t, Outcome::Pass, "ok"));
                cells.push(cell(k, fs, lbs, rs));
            }
        }
        Report::new(None, cells)
    }

    #[test]
    fn the_markdown_table_is_one_line_per_path_per_kernel() {
        let mut md = String::new();
        markdown(&report(), &mut md);
        assert!(md.contains("## What zero-copy saves (cost)"), "{md}");
        assert!(
            md.contains("Acceleration, tcg: an emulated CPU"),
            "the acceleration next to the numbers: {md}"
        );
        assert!(md.contains("| path | 6.1 (tcg) | 6.12 (tcg) |"), "{md}");
        assert!(
            md.contains("| read\\_write µs/MiB | 17k·17k·17k·17k | 17k·17k·17k·17k |"),
            "{md}"
        );
        // The median of ext4's 23 and tmpfs's 20; cold on ext4 only.
        assert!(
            md.contains("| sendfile | 22·23·22·23 | ❌179·180·❌179·180 |"),
            "{md}"
        );
        assert!(!md.contains("dio.open"), "{md}");
        assert!(
            md.contains("A cell: file warm·file cold·tcp warm·tcp cold, "),
            "{md}"
        );
        // A sink is a column only where some kernel measured it: virtio-net with --profile full.
        let mut r = report();
        r.cells[0].results.push(measured(
            "cost.sendfile[nic_warm]",
            Some(("ext4", Some(4096))),
            Outcome::Pass,
            &[("cpu_us", 900.0), ("cpu_pct", 40.0), ("cpu_min_pct", 38.0)],
        ));
        let mut md = String::new();
        markdown(&r, &mut md);
        assert!(md.contains("tcp warm·tcp cold·nic warm, "), "{md}");
        assert!(
            md.contains("| sendfile | 22·23·22·23·40 | ❌179·180·❌179·180·– |"),
            "{md}"
        );
    }

    /// What the premise judged is what is drawn: a failed median of 160 % is ❌ at 160 in
    /// the table and a bar at 160 in the chart; an errored path is ⚠️ and "error", never the
    /// "–" of an absent sink; a measurement cut short is shown and marked as not judged.
    #[test]
    fn cells_show_the_judged_statistic_errors_and_cut_short_measurements() {
        let t = Some(("ext4", Some(4096)));
        let rs = vec![
            measured(
                "cost.read_write[file_warm]",
                t,
                Outcome::Info,
                &[
                    ("cpu_us", 900.0),
                    ("cpu_pct", 100.0),
                    ("timed_ms", 40.0),
                    ("min_ms", 20.0),
                ],
            ),
            measured(
                "cost.splice[file_warm]",
                t,
                Outcome::Fail,
                &[
                    ("cpu_us", 900.0),
                    ("cpu_pct", 160.0),
                    ("cpu_q1_pct", 90.0),
                    ("cpu_q3_pct", 170.0),
                    ("timed_ms", 40.0),
                    ("min_ms", 20.0),
                ],
            ),
            result("cost.sendfile[file_warm]", t, Outcome::Error, "error"),
            measured(
                "cost.copy_file_range[file_warm]",
                t,
                Outcome::Info,
                &[
                    ("cpu_us", 900.0),
                    ("cpu_pct", 300.0),
                    ("cpu_q1_pct", 250.0),
                    ("cpu_q3_pct", 320.0),
                    ("timed_ms", 3.0),
                    ("min_ms", 20.0),
                ],
            ),
        ];
        let r = Report::new(None, vec![cell("6.1", "ext4", Some(4096), rs)]);
        let mut md = String::new();
        markdown(&r, &mut md);
        assert!(md.contains("| splice | ❌160 |"), "{md}");
        assert!(md.contains("| sendfile | ⚠️ |"), "{md}");
        assert!(md.contains("| copy\\_file\\_range | ⏱️300 |"), "{md}");
        // The legend states the rule the harness applies, on the statistic shown.
        assert!(
            md.contains("the median over interleaved repetitions of each one's CPU time"),
            "{md}"
        );
        assert!(md.contains("fail (❌) above 150 %"), "{md}");
        assert!(!md.contains("the least of"), "{md}");
        let ks = by_kernel(&r);
        let svg = svg(&ks[0]).into_string();
        assert!(
            svg.contains("[file_warm] ext4/4096: 160% of read+write"),
            "{svg}"
        );
        assert!(svg.contains("IQR 90–170 %"), "{svg}");
        assert!(svg.contains(r#"class="iqr""#), "{svg}");
        assert!(svg.contains(r#"<text class="error""#), "{svg}");
        assert!(svg.contains("not judged"), "{svg}");
        let html = r.html();
        assert!(html.contains("160 % (90–170)"), "{html}");
    }

    #[test]
    fn the_chart_has_a_bar_per_filesystem_and_lines_at_100_and_150() {
        let r = report();
        let ks = by_kernel(&r);
        assert_eq!(ks.len(), 2);
        assert_eq!(ks[0].targets, ["ext4/4096", "tmpfs"]);
        assert_eq!(ks[0].paths, ["cost.read_write", "cost.sendfile"]);
        let svg = svg(&ks[0]).into_string();
        assert!(svg.starts_with("<svg class=\"cost-chart\""), "{svg}");
        // sendfile over four variants: 4 + 4 + 2 cold on ext4 only = 6 bars, plus the legend.
        assert_eq!(
            svg.matches("% of read+write (median of paired repetitions)")
                .count(),
            6,
            "{svg}"
        );
        assert_eq!(svg.matches("<line ").count(), 2, "{svg}");
        let html = r.html();
        assert!(html.contains("What zero-copy saves (cost)"), "{html}");
        assert!(html.contains("23 % · 46 % · 13 %"), "{html}");
    }

    #[test]
    fn timings_are_no_change_between_runs_unless_exact() {
        let a = report();
        let mut b = report();
        for c in &mut b.cells {
            for r in &mut c.results {
                r.observed = r.observed.replace("cpu_us=2585", "cpu_us=3100");
                for m in r.measures.iter_mut().filter(|m| m.name == "cpu_us") {
                    m.value += 515.0;
                }
            }
        }
        assert!(crate::diff::Diff::new(&a, &b).is_empty());
        assert!(!crate::diff::Diff::between(&a, &b, None, true).is_empty());
        // What changes between kernels leaves timings out; a failure still shows.
        let an = crate::Analysis::new(&a);
        assert!(
            an.changes.iter().all(|c| !is_cost(&c.id)),
            "{:?}",
            an.changes
        );
        assert!(an
            .findings
            .iter()
            .any(|f| f.id == "cost.sendfile[tcp_warm]"));
    }
}
