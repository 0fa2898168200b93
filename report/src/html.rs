//! `report.html`: one self-contained page (inline CSS and a little JavaScript, no network) with
//! the same content as report.md. Everything is readable without JavaScript; the script only
//! drives the filters (family, kernel, filesystem, differences only), which it also reads from
//! the URL (`?family=dio&kernel=6.1&fs=ext4/4096&diff=1`, or the same after `#`) so that a link
//! or a headless browser can open a filtered view.
//!
//! maud escapes every interpolated string, so nothing a guest prints can become markup.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use zcmatrix_protocol::Outcome;

use crate::analysis::{Analysis, Change, Grid};
use crate::model::{Cell, Report, Status};
use crate::section::{self, SECTIONS};
use crate::text::clip;

const CSS: &str = r#"
:root{--ok:#e6f4ea;--haz:#fff4d6;--bad:#fde2e1;--infra:#e8e8f4;--quiet:#8a8a8a;--line:#ddd}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;padding:0 16px 48px;color:#1d1d1f}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border:1px solid var(--line);padding:2px 6px;vertical-align:top;text-align:left}
th{background:#f6f6f6;font-weight:600}code{font:12px ui-monospace,monospace}
td a{color:inherit;text-decoration:none}td a:hover{text-decoration:underline}
.glance td{min-width:80px}.glance td.ok{background:var(--ok)}.glance td.haz{background:var(--haz)}
.glance td.bad{background:var(--bad)}.glance td.infra{background:var(--infra)}
td.q{color:var(--quiet)}td.out{font-weight:600}td.fail,td.error{background:var(--bad)}
td.xfail{background:var(--haz)}td.xpass{background:#e3f0ff}td.skip{color:var(--quiet)}
.changes li{margin:3px 0}.changes ul{margin:1px 0}.changes .ev{color:#666;font-size:12px}.haz-mark{margin-right:4px}
.note{color:#555}.off{display:none!important}
.v{display:inline-block;min-width:2.6em;padding:0 4px;margin-right:3px;border-radius:3px;font:600 11px/1.5 system-ui,sans-serif;text-align:center;color:#fff;background:#666}
.v-pass{background:#1e7e34}.v-fail{background:#c62828}.v-xfail{background:#b26a00}.v-xpass{background:#1565c0}
.v-skip{background:#9e9e9e}.v-error{background:#6a1b9a}.v-info{background:#00796b}.v-warn{background:#6a1b9a}
#filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid var(--line);z-index:1}
#filters label{margin-right:12px}
details>summary{cursor:pointer;margin:6px 0}
"#;

/// Reads the filters from the URL and the controls, hides what does not match, and says in
/// `body[data-ready]` that it ran (and in `data-errors` what went wrong), for the browser test.
const JS: &str = r#"
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message));document.body.dataset.errors=errors.join('; ');});
  var form=document.getElementById('filters');
  form.hidden=false;
  var ctl={family:form.elements.family,kernel:form.elements.kernel,fs:form.elements.fs,diff:form.elements.diff};
  var params=new URLSearchParams(location.search||'');
  new URLSearchParams((location.hash||'').replace(/^#/,'')).forEach(function(v,k){params.set(k,v);});
  ['family','kernel','fs'].forEach(function(k){if(params.has(k))ctl[k].value=params.get(k);});
  ctl.diff.checked=params.get('diff')==='1';
  function has(list,v){return (' '+list+' ').indexOf(' '+v+' ')>=0;}
  function apply(){
    var f=ctl.family.value,k=ctl.kernel.value,t=ctl.fs.value,d=ctl.diff.checked;
    var shown=0;
    document.querySelectorAll('[data-family],[data-kernels],[data-fs],[data-diff]').forEach(function(e){
      var ds=e.dataset,ok=true;
      if(f&&ds.family!==undefined&&ds.family!==f)ok=false;
      if(k&&ds.kernels!==undefined&&!has(ds.kernels,k))ok=false;
      if(t&&ds.fs!==undefined&&!has(ds.fs,t))ok=false;
      if(d&&ds.diff==='0')ok=false;
      e.classList.toggle('off',!ok);
      if(ok&&ds.diff!==undefined)shown++;
    });
    document.body.dataset.rowsShown=String(shown);
    var q=[];['family','kernel','fs'].forEach(function(x){if(ctl[x].value)q.push(x+'='+encodeURIComponent(ctl[x].value));});
    if(d)q.push('diff=1');
    if(history.replaceState)try{history.replaceState(null,'',q.length?'#'+q.join('&'):location.pathname+location.search);}catch(e){}
  }
  form.addEventListener('change',apply);
  apply();
  document.body.dataset.ready='1';
})();
"#;

/// The names a headless browser that can open the page goes by: Debian's chromium, Ubuntu's
/// (snap) chromium-browser, Google Chrome's deb. `cargo xtask setup` and the browser test both
/// look for these.
pub const BROWSERS: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

pub fn render(report: &Report) -> String {
    let a = Analysis::new(report);
    let mut targets: Vec<String> = Vec::new();
    for c in &report.cells {
        if !targets.contains(&c.target()) {
            targets.push(c.target());
        }
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "zcmatrix report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "zcmatrix report" }
                @if let Some(n) = report.shard_note() { p.note { (n) } }
                @if let Some(n) = report.profile_note() { p.note { (n) } }
                @if let Some(n) = &report.accel_note { p.note { (n) } }
                p.note { "Each cell is one kernel × filesystem × disk logical block size, measured in its own guest. " (legend()) }
                form #filters hidden {
                    label { "family " select name="family" { option value="" { "all" } @for f in &a.families { option value=(f.name) { (f.name) } } } }
                    label { "kernel " select name="kernel" { option value="" { "all" } @for k in &a.kernels { option value=(k) { (k) } } } }
                    label { "filesystem " select name="fs" { option value="" { "all" } @for t in &targets { option value=(t) { (t) } } } }
                    label { input type="checkbox" name="diff" value="1"; " differences only" }
                }
                (at_a_glance(&a, &targets))
                (what_changes(&a))
                (hazards(&a))
                @for s in SECTIONS { (s.html(report)) }
                h2 { "Per family" }
                p.note { "Checks as rows, cells as columns, one table per kernel. Grey cells show their row's usual value; anything else stands out. Each cell links to its guest's console log." }
                @for f in &a.families {
                    section data-family=(f.name) {
                        h3 { (f.name) }
                        // A family with a section of its own is shown there (the cost family's
                        // timings, every cell different, as charts).
                        @if let Some(s) = section::of_family(&f.name) {
                            p.note { (s.instead_of_grids()) }
                        } @else {
                            @for g in &f.grids { (grid(report, g)) }
                        }
                        details {
                            summary { "Rules of " (f.name) }
                            ul { @for r in &f.rules {
                                li { code { (r.id) } ": expects " (clip(&r.expected.join(" / "), 300)) ". Evidence: " (clip(&r.evidence.join("; "), 300)) }
                            } }
                        }
                    }
                }
                (measurements(&a))
                (cells(report))
                @if !a.skips.is_empty() {
                    h2 { "Skipped, by reason" }
                    details {
                        summary { (a.skips.len()) " reason(s)" }
                        ul { @for g in &a.skips {
                            li { (clip(&g.reason, 300)) ": "
                                @for (i, (ids, places)) in g.lines().iter().enumerate() {
                                    @if i > 0 { "; " } code { (ids) } " (" (places) ")"
                                }
                            }
                        } }
                    }
                }
                script { (PreEscaped(JS)) }
            }
        }
    };
    page.into_string()
}

/// The colour of a cell in the overview: its worst news.
fn glance_class(c: &Cell) -> &'static str {
    if c.status != Status::Completed {
        "infra"
    } else if c.counts.fail + c.counts.error > 0 {
        "bad"
    } else if c.counts.xfail + c.counts.xpass > 0 {
        "haz"
    } else {
        "ok"
    }
}

/// A verdict as a badge of its own, its word in it: the page's meaning never depends on the
/// reader having a colour-emoji font (headless chromium and many Linux desktops do not).
pub fn badge(o: Outcome) -> Markup {
    html! { span class={ "v v-" (o.as_str()) } title=(outcome_words(o)) { (o.as_str()) } }
}

/// A badge for what is not a verdict (a cell that did not finish, a kernel that was unwell).
fn warn_badge(word: &str) -> Markup {
    html! { span.v.v-warn { (word) } }
}

fn outcome_words(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass: the kernel did what the rule says",
        Outcome::Fail => "fail: the kernel did not do what the rule says",
        Outcome::Xfail => "xfail: a known hazard, as the rule predicts",
        Outcome::Xpass => "xpass: the rule predicted a hazard and the kernel behaved well",
        Outcome::Skip => "skip: a precondition is missing",
        Outcome::Error => "error: the probe could not finish",
        Outcome::Info => "info: a measurement, no verdict",
    }
}

/// The legend, with the badges the page uses.
fn legend() -> Markup {
    html! {
        @for o in Outcome::ALL { (badge(o)) (outcome_words(o).split_once(": ").map_or("", |x| x.1)) ". " }
    }
}

/// A cell's counts, a badge and a number per outcome it has.
fn glance_badges(c: &Cell) -> Markup {
    html! {
        @for o in Outcome::ALL.iter().filter(|&&o| c.counts.get(o) > 0) { (badge(*o)) (c.counts.get(*o)) " " }
    }
}

fn console_link(c: &Cell, text: Markup) -> Markup {
    html! {
        @if c.guest_dir.is_empty() { (text) } @else { a href=(c.console_log()) title="console log" { (text) } }
    }
}

fn at_a_glance(a: &Analysis, targets: &[String]) -> Markup {
    let r = a.report;
    html! {
        h2 { "At a glance" }
        table.glance {
            tr { th { "kernel" } th { "release" } @for t in targets { th data-fs=(t) { (t) } } }
            @for k in &a.kernels {
                @let first = r.cells.iter().find(|c| c.kernel_spec == *k);
                tr data-kernels=(k) {
                    th { (k) }
                    td { (first.and_then(|c| c.kernel_release.as_deref()).unwrap_or("?")) }
                    @for t in targets {
                        @match r.cells.iter().find(|c| c.kernel_spec == *k && c.target() == *t) {
                            Some(c) => td class=(glance_class(c)) data-fs=(t) title=(c.status_detail) {
                                (console_link(c, html! {
                                    @if c.status != Status::Completed { b { (c.status.as_str()) } " " }
                                    (glance_badges(c))
                                }))
                            },
                            None => td data-fs=(t) {},
                        }
                    }
                }
            }
        }
        p.note {
            @for k in &a.kernels {
                @if let Some(c) = r.cells.iter().find(|c| c.kernel_spec == *k) {
                    (k) ": " (c.kernel_package.as_deref().unwrap_or("local")) " " (c.kernel_version.as_deref().unwrap_or(""))
                    @if let Some(acc) = c.accel { " (" (acc.as_str()) ")" }
                    @if let (Some(arch), Some(page)) = (&c.arch, c.page_size) { " " (arch) ", " (page / 1024) " KiB pages" }
                    @if let Some(s) = &c.kernel_substituted { " — substituted: " b { (s) } }
                    ". "
                }
            }
        }
    }
}

fn change_kernels(c: &Change) -> String {
    match c.axis {
        crate::analysis::Axis::Kernels => c
            .values
            .iter()
            .flat_map(|(at, _)| at.clone())
            .collect::<Vec<_>>()
            .join(" "),
        crate::analysis::Axis::Filesystems => c.places.join(" "),
        crate::analysis::Axis::PageSizes => c
            .values
            .iter()
            .flat_map(|(at, _)| {
                at.iter()
                    .map(|a| a.split(':').next().unwrap_or(a).to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn what_changes(a: &Analysis) -> Markup {
    let verdicts: Vec<&Change> = a.changes.iter().filter(|c| !c.measurement).collect();
    let measurements: Vec<&Change> = a.changes.iter().filter(|c| c.measurement).collect();
    let failed: Vec<&crate::analysis::Finding> = a
        .findings
        .iter()
        .filter(|f| f.outcome == Outcome::Fail)
        .collect();
    html! {
        h2 { "What changes" }
        // The failures first, as in report.md: a run of one cell has nothing that differs.
        @if !failed.is_empty() {
            p.failed { (badge(Outcome::Fail)) (failed.len()) " check(s) contradict their rule (details under Hazards and deviations):" }
            ul.changes { @for f in &failed {
                li data-family=(crate::model::family(&f.id)) { (badge(Outcome::Fail)) code { (f.id) } " on " (f.places.join(", ")) ": " (clip(&f.observed, 120)) ", expected " (clip(&f.expected, 160)) }
            } }
        }
        @if a.changes.is_empty() {
            p { "Every check observed the same on every kernel and filesystem." }
        } @else {
            p.note { "Checks whose observation differs between kernels (same filesystem and geometry) or between filesystems (same kernel); hazards (marked " (warn_badge("hazard")) ": a fail, xfail or xpass is involved) first." }
            (change_list(&verdicts))
            @if !measurements.is_empty() {
                details {
                    summary { (measurements.len()) " measurement(s) (" (badge(Outcome::Info)) ") that differ" }
                    (change_list(&measurements))
                }
            }
        }
    }
}

fn change_list(changes: &[&Change]) -> Markup {
    let mut ids: Vec<&str> = Vec::new();
    for c in changes {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    html! {
        ul.changes {
            @for id in &ids {
                @let same: Vec<&&Change> = changes.iter().filter(|x| x.id == *id).collect();
                @let evidence = evidence_of(&same);
                li data-family=(same[0].family) data-kernels=(same.iter().map(|x| change_kernels(x)).collect::<Vec<_>>().join(" ")) {
                    @if same.iter().any(|x| x.hazard) { span.v.v-warn.haz-mark title="a fail, xfail or xpass is involved" { "hazard" } }
                    code { (id) }
                    // One line goes beside the id, to keep the first screen full of changes.
                    @if same.len() == 1 { " " (change_line(same[0])) } @else {
                        ul { @for x in &same { li { (change_line(x)) } } }
                    }
                    " " span.ev title=(evidence.join("; ")) { "Evidence: " (clip(&evidence.join("; "), 200)) }
                }
            }
        }
    }
}

fn change_line(x: &Change) -> Markup {
    let steps = x.transitions();
    html! {
        (x.where_text()) ": " b { (clip(&x.values_text(), 300)) }
        @if !steps.is_empty() { "; " (steps.join(", ")) }
    }
}

/// The evidence of a check's lines, each once.
fn evidence_of<'a>(same: &[&&'a Change]) -> Vec<&'a str> {
    let mut evidence: Vec<&str> = Vec::new();
    for e in same.iter().flat_map(|x| &x.evidence) {
        if !evidence.contains(&e.as_str()) {
            evidence.push(e);
        }
    }
    evidence
}

fn hazards(a: &Analysis) -> Markup {
    let kernels_of = |places: &[String]| -> String {
        let mut ks: Vec<&str> = places.iter().filter_map(|p| p.split(' ').next()).collect();
        ks.dedup();
        ks.join(" ")
    };
    html! {
        h2 { "Hazards and deviations" }
        @if !a.unclean.is_empty() {
            p { (warn_badge("warning")) (a.unclean.len()) " of " (a.report.cells.len()) " cells did not finish cleanly: their results may be missing or skipped for reasons outside the kernel; see Cells." }
        }
        @if !a.splats.is_empty() {
            p { (warn_badge("warning")) "The kernel was not well (its console shows these; results stand):" }
            ul { @for (kind, excerpt, kernels) in &a.splats {
                li data-kernels=(kernels.join(" ")) { b { (kind) } " on " (kernels.join(", ")) ": " code { (clip(excerpt, 400)) } }
            } }
        }
        @if a.findings.is_empty() {
            p { "No result failed, broke, or met a known hazard." }
        } @else {
            table {
                tr { th { "outcome" } th { "check" } th { "cell" } th { "observed" } th { "expected" } th { "evidence" } }
                @for f in &a.findings {
                    tr data-family=(crate::model::family(&f.id)) data-kernels=(kernels_of(&f.places)) {
                        td class=(f.outcome.as_str()) { (badge(f.outcome)) }
                        td { code { (f.id) } }
                        td { (console_link(&a.report.cells[f.first_cell], html! { (a.places_text(&f.places)) })) }
                        td { (clip(&f.observed, 200)) }
                        td { (clip(&f.expected, 200)) }
                        td { (clip(&f.evidence, 200)) }
                    }
                }
            }
        }
    }
}

fn result_title(r: &zcmatrix_protocol::CheckResult) -> String {
    let mut t = format!(
        "{}: observed {}, expected {}",
        r.outcome.as_str(),
        r.observed,
        r.expected
    );
    if !r.detail.is_empty() {
        t.push_str(&format!("; {}", r.detail));
    }
    clip(&t, 400)
}

fn grid(report: &Report, g: &Grid) -> Markup {
    html! {
        details open data-kernels=[g.kernel.as_deref()] {
            summary { b { (g.title) } }
            table {
                tr {
                    th { "check" }
                    @for c in &g.columns { th data-fs=[c.target.as_deref()] data-kernels=[g.kernel.is_none().then_some(c.kernel.as_str())] { (c.label) } }
                }
                @for row in &g.rows {
                    tr data-diff=(if row.changes { "1" } else { "0" }) {
                        th { code { (row.id) } }
                        @for (i, (r, col)) in row.cells.iter().zip(&g.columns).enumerate() {
                            @let fs = col.target.as_deref();
                            @let kernels = g.kernel.is_none().then_some(col.kernel.as_str());
                            @match r {
                                None => td data-fs=[fs] data-kernels=[kernels] {},
                                Some(r) => td class={ (r.outcome.as_str()) @if row.stands_out(i) { " out" } @else { " q" } }
                                    data-fs=[fs] data-kernels=[kernels] title=(result_title(r)) {
                                    (console_link(&report.cells[col.cell], html! {
                                        (badge(r.outcome))
                                        @if r.outcome != Outcome::Skip { (clip(&r.observed, 60)) }
                                    }))
                                },
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cells(report: &Report) -> Markup {
    html! {
        h2 { "Cells" }
        details {
            summary { "Status, boot time, counts and guest errors of each cell" }
            table {
                tr { th { "cell" } th { "kernel release" } th { "accel" } th { "boot" } th { "status" } th { "results" } th { "guest errors" } }
                @for c in &report.cells {
                    tr data-kernels=(c.kernel_spec) data-fs=(c.target()) {
                        td { (console_link(c, html! { (c.label()) })) }
                        td { (c.kernel_release.as_deref().unwrap_or("?")) }
                        td { (c.accel.map(|x| x.as_str()).unwrap_or("-")) }
                        td { (c.boot_ms.map(|b| format!("{:.1} s", b as f64 / 1000.0)).unwrap_or("-".into())) }
                        td {
                            (c.status.as_str()) @if c.status != Status::Completed { ": " (clip(&c.status_detail, 200)) }
                            @if c.retries > 0 { " (after " (c.retries) " retries)" }
                        }
                        td { (c.counts.describe()) }
                        td {
                            @for e in &c.guest_errors { (e.kind.as_str()) ": " (clip(&e.message, 200)) br; }
                            @for n in &c.notes { "note: " (clip(n, 200)) br; }
                        }
                    }
                }
            }
        }
    }
}

/// Numeric observations that differ between cells, as bars (one chart per labelled number).
fn measurements(a: &Analysis) -> Markup {
    let charts = crate::charts::charts(a.report);
    html! {
        @if !charts.is_empty() {
            h2 { "Measurements" }
            p.note { "Observations that are numbers and differ between cells: bars per filesystem, one per kernel." }
            @for c in &charts {
                details.chart data-family=(crate::charts::chart_family(c)) {
                    summary { code { (c.id) } @if !c.label.is_empty() { " — " (c.label) } }
                    (crate::charts::svg(c, &a.kernels))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixture::{self, result};

    #[test]
    fn the_page_is_self_contained_and_carries_the_filters_data() {
        let html = fixture::two_kernels().html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        for external in ["http://", "https://", "<link", "src="] {
            assert!(
                !html.contains(external),
                "{external} in a self-contained page"
            );
        }
        assert!(html.contains(r#"<tr data-diff="1">"#) && html.contains(r#"<tr data-diff="0">"#));
        assert!(html.contains(r#"href="guests/5.10/console.log""#), "{html}");
        assert!(html.contains("changed between 5.10 and 6.1"));
        // Without JavaScript: everything is in the page as written, nothing filtered, and the
        // filter form (useless without the script) hidden until the script shows it.
        assert!(html.contains(r#"<form id="filters" hidden>"#), "{html}");
        assert!(!html.contains(r#"class="off""#));
        let glance = html.find("At a glance").unwrap();
        assert!(glance < html.find("What changes").unwrap());
        assert!(html.find("What changes").unwrap() < html.find("Hazards and deviations").unwrap());
    }

    /// One cell failing a rule: nothing differs between cells, and the page's What changes
    /// still leads with the failure.
    #[test]
    fn a_failure_leads_what_changes_on_the_page_too() {
        let mut r = result("dio.open", Some(("tmpfs", None)), Outcome::Fail, "EINVAL");
        r.expected = "ok".into();
        let html = Report::new(None, vec![fixture::cell("5.10", "tmpfs", None, vec![r])]).html();
        let changes = html.find("<h2>What changes</h2>").unwrap();
        let failed = html.find("1 check(s) contradict their rule").unwrap();
        assert!(changes < failed, "{html}");
        assert!(failed < html.find("Every check observed the same").unwrap());
        assert!(html[failed..].contains("<code>dio.open</code> on 5.10 tmpfs: EINVAL, expected ok"));
    }

    #[test]
    fn hostile_text_from_a_guest_is_escaped() {
        let mut r = fixture::two_kernels();
        let hostile = "</td><script>alert(1)</script>\"'&";
        for c in &mut r.cells {
            c.results.push(result(
                "dio.hostile",
                Some((c.fs.as_str(), c.logical_block_size)),
                Outcome::Fail,
                hostile,
            ));
            c.status_detail = hostile.into();
        }
        r.accel_note = Some(hostile.into());
        r.cells[0].splats.push(crate::Splat {
            kind: "warning".into(),
            excerpt: hostile.into(),
        });
        let html = r.html();
        assert!(html.contains("<b>warning</b> on 5.10"), "{html}");
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        assert!(
            html.contains("&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;"),
            "{html}"
        );
    }
}
