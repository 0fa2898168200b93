//! Small inline SVG bar charts for results that measured numbers (fault counts, folio sizes): a
//! difference of 129 against 1 major faults reads faster as bars than as text in a grid. They
//! read a result's typed `measures`, never its `observed` text.

use maud::{html, Markup};
use zcmatrix_protocol::Outcome;

use crate::model::{family, Report};

/// One chart: a check's labelled number in every cell that has it.
pub struct Chart {
    pub id: String,
    pub label: String,
    /// (kernel, target, value) in report order.
    pub points: Vec<(String, String, f64)>,
}

/// Charts for every check whose results (other than skips and errors) all carry numbers, where
/// the numbers differ between cells; one chart per label.
pub fn charts(report: &Report) -> Vec<Chart> {
    let mut ids: Vec<String> = Vec::new();
    for c in &report.cells {
        // A family with a section of its own draws its own charts there (crate::section).
        for r in c
            .results
            .iter()
            .filter(|r| !crate::section::has_own_section(&r.check))
        {
            if !ids.contains(&r.full_id()) {
                ids.push(r.full_id());
            }
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let mut series: Vec<Chart> = Vec::new();
        let mut numeric = true;
        let mut seen_kernel_scope: Vec<&str> = Vec::new();
        for c in &report.cells {
            for r in c.results.iter().filter(|r| r.full_id() == id) {
                if matches!(r.outcome, Outcome::Skip | Outcome::Error) {
                    continue;
                }
                let target = match r.scope {
                    zcmatrix_protocol::Scope::Kernel => {
                        // A kernel-scope result is copied into each cell: chart it once.
                        if seen_kernel_scope.contains(&c.kernel_spec.as_str()) {
                            continue;
                        }
                        seen_kernel_scope.push(&c.kernel_spec);
                        "kernel".to_string()
                    }
                    zcmatrix_protocol::Scope::Fs => c.target(),
                };
                numeric &= !r.measures.is_empty();
                for m in &r.measures {
                    let (label, v) = (m.name.clone(), m.value);
                    let chart = match series.iter_mut().position(|s| s.label == label) {
                        Some(i) => &mut series[i],
                        None => {
                            series.push(Chart {
                                id: id.clone(),
                                label,
                                points: Vec::new(),
                            });
                            series.last_mut().expect("just pushed")
                        }
                    };
                    chart
                        .points
                        .push((c.kernel_spec.clone(), target.clone(), v));
                }
            }
        }
        if !numeric {
            continue;
        }
        out.extend(
            series
                .into_iter()
                .filter(|s| s.points.len() > 1 && s.points.iter().any(|p| p.2 != s.points[0].2)),
        );
    }
    out
}

const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// Horizontal bars, grouped by target, one bar per kernel (coloured, with a legend).
pub fn svg(chart: &Chart, kernels: &[String]) -> Markup {
    let mut targets: Vec<&str> = Vec::new();
    for p in &chart.points {
        if !targets.contains(&p.1.as_str()) {
            targets.push(&p.1);
        }
    }
    let max = chart
        .points
        .iter()
        .map(|p| p.2)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let (left, width, bar, gap) = (90.0, 360.0, 9.0, 8.0);
    let group = kernels.len() as f64 * bar + gap;
    let height = 18.0 + targets.len() as f64 * group;
    let colour =
        |k: &str| COLOURS[kernels.iter().position(|x| x == k).unwrap_or(0) % COLOURS.len()];
    html! {
        svg width=(left + width + 70.0) height=(height) role="img" {
            title { (chart.id) " " (chart.label) }
            @for (i, k) in kernels.iter().enumerate() {
                rect x=(left + i as f64 * 60.0) y="2" width="9" height="9" fill=(colour(k)) {}
                text x=(left + 12.0 + i as f64 * 60.0) y="10" font-size="10" { (k) }
            }
            @for (ti, t) in targets.iter().enumerate() {
                @let y0 = 18.0 + ti as f64 * group;
                text x="0" y=(y0 + group / 2.0) font-size="11" { (t) }
                @for (ki, k) in kernels.iter().enumerate() {
                    @if let Some(p) = chart.points.iter().find(|p| p.0 == *k && p.1 == *t) {
                        @let w = (p.2 / max * width).max(1.0);
                        @let y = y0 + ki as f64 * bar;
                        rect x=(left) y=(y) width=(w) height=(bar - 1.0) fill=(colour(k)) {
                            title { (k) " " (t) ": " (p.2) }
                        }
                        text x=(left + w + 3.0) y=(y + bar - 1.5) font-size="8" { (p.2) }
                    }
                }
            }
        }
    }
}

/// The family a chart belongs to, for the family filter.
pub fn chart_family(c: &Chart) -> &str {
    family(&c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_differ_get_a_chart_and_text_does_not() {
        use crate::model::fixture::{cell, measured, result};
        let mut cells = Vec::new();
        for (k, major) in [("5.10", 129.0), ("6.12", 1.0)] {
            let t = Some(("ext4", Some(512)));
            cells.push(cell(
                k,
                "ext4",
                Some(512),
                vec![
                    measured(
                        "mmap.fault_cold_scan",
                        t,
                        Outcome::Info,
                        &[("major", major), ("minor", 256.0)],
                    ),
                    result("dio.open", t, Outcome::Pass, "ok"),
                ],
            ));
        }
        let r = Report::new(None, cells);
        let cs = charts(&r);
        // Only `major` differs; `minor` is the same everywhere and dio.open is no number.
        assert_eq!(cs.len(), 1);
        assert_eq!(
            (cs[0].id.as_str(), cs[0].label.as_str()),
            ("mmap.fault_cold_scan", "major")
        );
        assert_eq!(
            cs[0].points,
            [
                ("5.10".into(), "ext4/512".into(), 129.0),
                ("6.12".into(), "ext4/512".into(), 1.0)
            ]
        );
        let svg = svg(&cs[0], &["5.10".into(), "6.12".into()]).into_string();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
        assert!(r.html().contains("<h2>Measurements</h2>"));
    }
}
