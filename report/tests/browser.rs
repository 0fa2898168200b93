//! report.html in a real headless browser (Debian's `chromium`, installed by `cargo xtask
//! setup`): opened from disk, no console errors, the "differences only" filter hides the rows
//! that are the same everywhere, and a screenshot kept under target/ for a human to look at.
//! Without the browser this test fails: a skipped browser test would hide a broken page.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use zcmatrix_protocol::{CheckResult, Counts, Measure, Outcome, Scope};
use zcmatrix_report::{Accel, Cell, Report, Status};

fn browser() -> PathBuf {
    for name in zcmatrix_report::html::BROWSERS {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "no browser on PATH (any of {}): run `cargo xtask setup`, which installs Debian's \
         chromium or says what to install on Ubuntu",
        zcmatrix_report::html::BROWSERS.join(", ")
    );
}

fn result(check: &str, fs: Option<(&str, Option<u32>)>, o: Outcome, observed: &str) -> CheckResult {
    CheckResult {
        check: check.into(),
        variant: None,
        scope: if fs.is_some() {
            Scope::Fs
        } else {
            Scope::Kernel
        },
        fs: fs.map(|f| f.0.to_string()),
        logical_block_size: fs.and_then(|f| f.1),
        outcome: o,
        observed: observed.into(),
        expected: observed.into(),
        evidence: "open(2) <b>not bold</b>".into(),
        detail: String::new(),
        duration_ms: 1,
        tolerance: None,
        measures: Vec::new(),
    }
}

/// `r` with the numbers the harness typed for its observation.
fn measured(mut r: CheckResult, measures: &[(&str, f64)]) -> CheckResult {
    r.measures = measures
        .iter()
        .map(|&(n, v)| Measure::new(n, v, ""))
        .collect();
    r
}

/// Two kernels × (ext4/4096, tmpfs): dio.align changes, dio.open does not; a hazard on 5.10.
fn report() -> Report {
    let mut cells = Vec::new();
    for k in ["5.10", "6.1"] {
        for (fs, lbs) in [("ext4", Some(4096)), ("tmpfs", None)] {
            let t = Some((fs, lbs));
            let (cpu, wall, pct, wpct) = if k == "5.10" {
                (2585.0, 8054.0, 23.0, 46.0)
            } else {
                (2072.0, 7000.0, 19.0, 40.0)
            };
            let results = vec![
                result("dio.open", t, Outcome::Pass, "ok"),
                measured(
                    result(
                        "dio.align",
                        t,
                        Outcome::Pass,
                        if k == "5.10" { "4096" } else { "512" },
                    ),
                    &[("", if k == "5.10" { 4096.0 } else { 512.0 })],
                ),
                result(
                    "cow.leak",
                    None,
                    if k == "5.10" {
                        Outcome::Xfail
                    } else {
                        Outcome::Pass
                    },
                    if k == "5.10" { "leak" } else { "isolated" },
                ),
                result("splice.same", None, Outcome::Pass, "ok"),
                measured(
                    result(
                        "cost.read_write[tcp_warm]",
                        t,
                        Outcome::Info,
                        "cpu_us=10691 wall_us=16000 calls=32.0 cpu_pct=100 wall_pct=100",
                    ),
                    &[
                        ("cpu_us", 10691.0),
                        ("wall_us", 16000.0),
                        ("calls", 32.0),
                        ("cpu_pct", 100.0),
                        ("wall_pct", 100.0),
                    ],
                ),
                measured(
                    result(
                        "cost.sendfile[tcp_warm]",
                        t,
                        Outcome::Pass,
                        &format!(
                            "cpu_us={cpu} wall_us={wall} calls=4.00 cpu_pct={pct} wall_pct={wpct}"
                        ),
                    ),
                    &[
                        ("cpu_us", cpu),
                        ("wall_us", wall),
                        ("calls", 4.0),
                        ("cpu_pct", pct),
                        ("wall_pct", wpct),
                    ],
                ),
            ];
            let mut counts = Counts::default();
            results.iter().for_each(|r| counts.add(r.outcome));
            cells.push(Cell {
                kernel_spec: k.into(),
                kernel_release: Some(format!("{k}.0-1-cloud-amd64")),
                kernel_package: Some("linux-image-cloud-amd64".into()),
                kernel_version: Some("1".into()),
                kernel_substituted: None,
                fs: fs.into(),
                logical_block_size: lbs,
                accel: Some(Accel::Tcg),
                boot_ms: Some(1000),
                status: Status::Completed,
                status_detail: "harness finished".into(),
                guest_errors: vec![],
                counts,
                guest_summary: None,
                guest_dir: format!("guests/{k}"),
                splats: vec![],
                notes: Vec::new(),
                retries: 0,
                arch: None,
                page_size: None,
                results,
            });
        }
    }
    Report::new(None, cells)
}

struct Run {
    dom: String,
    stderr: String,
}

/// Chromium as the brief of this project runs it: headless, no sandbox (CI runs as root), no
/// network side-traffic, a throw-away profile; console messages logged to stderr.
fn chromium(url: &str, extra: &[&str]) -> Run {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(browser());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    // A hung browser must fail the test, not hang it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("chromium ran"),
        Err(_) => {
            kill(pid);
            panic!("chromium did not finish within 120 s");
        }
    };
    Run {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// Console errors the page caused (uncaught exceptions, console.error), from chromium's log.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains(":ERROR:")))
        .collect()
}

fn write(dir: &Path, r: &Report) -> String {
    r.write_all(dir).unwrap();
    std::fs::create_dir_all(dir.join("guests/5.10")).unwrap();
    std::fs::write(dir.join("guests/5.10/console.log"), "Linux version 5.10\n").unwrap();
    format!("file://{}", dir.join("report.html").display())
}

#[test]
fn the_page_runs_in_chromium_and_differences_only_hides_identical_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), &report());

    let run = chromium(&format!("{url}?diff=1"), &["--dump-dom"]);
    let errors = console_errors(&run.stderr);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    assert!(
        run.dom.contains(r#"data-ready="1""#),
        "the script did not run:\n{}",
        run.dom
    );
    assert!(!run.dom.contains("data-errors"), "{}", run.dom);
    let rows = |diff: &str| -> Vec<&str> {
        run.dom
            .split("<tr ")
            .skip(1)
            .filter(|t| t.starts_with(&format!("data-diff=\"{diff}\"")))
            .map(|t| &t[..t.find('>').unwrap()])
            .collect()
    };
    let (same, differ) = (rows("0"), rows("1"));
    assert!(!same.is_empty() && !differ.is_empty(), "{}", run.dom);
    assert!(
        same.iter().all(|t| t.contains("off")),
        "identical rows still shown: {same:?}"
    );
    assert!(
        differ.iter().all(|t| !t.contains("off")),
        "differing rows hidden: {differ:?}"
    );
    assert!(run.dom.contains(r#"data-rows-shown=""#));

    // The cost section's chart, one per kernel; the family filter keeps it and hides the rest.
    let cost = chromium(&format!("{url}?family=cost"), &["--dump-dom"]);
    assert!(console_errors(&cost.stderr).is_empty(), "{}", cost.stderr);
    assert_eq!(
        cost.dom.matches(r#"<svg class="cost-chart""#).count(),
        2,
        "{}",
        cost.dom
    );
    assert!(
        cost.dom
            .contains(r#"<section data-family="cost" class="">"#)
            || cost.dom.contains(r#"<section data-family="cost">"#),
        "the cost section is hidden by its own filter:\n{}",
        cost.dom
    );
    assert!(
        cost.dom
            .contains(r#"<section data-family="dio" class="off">"#),
        "{}",
        cost.dom
    );

    // Without the filter every row shows.
    let all = chromium(&url, &["--dump-dom"]);
    assert!(!all.dom.contains(r#"class="off""#), "{}", all.dom);
    // Verdicts are the page's own badges, never font glyphs: this chromium has no colour-emoji
    // font, so an emoji verdict would render as an empty box.
    let glyphs = fallback_glyphs(&all.dom);
    assert!(
        glyphs.is_empty(),
        "verdicts that need an emoji font: {glyphs:?}"
    );
    for o in ["pass", "xfail", "skip", "info"] {
        assert!(
            all.dom
                .contains(&format!(r#"<span class="v v-{o}" title="{o}: "#)),
            "no {o} badge:
{}",
            all.dom
        );
    }
    // A guest's text stays text.
    assert!(all.dom.contains("&lt;b&gt;not bold&lt;/b&gt;"));

    // The screenshot stays under target/ for a human to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let run = chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{}", shot.display(), run.stderr));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// Characters of the emoji blocks (misc symbols, dingbats, pictographs, the emoji variation
/// selector) in a page: each would need a colour-emoji font to mean anything.
fn fallback_glyphs(dom: &str) -> Vec<char> {
    let mut found: Vec<char> = dom
        .chars()
        .filter(
            |&c| matches!(c as u32, 0x2300..=0x23FF | 0x2600..=0x27BF | 0x1F000..=0x1FAFF | 0xFE0F | 0x2B00..=0x2BFF),
        )
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The check for glyphs itself works: the Markdown marks are such glyphs.
#[test]
fn emoji_marks_are_caught_as_fallback_glyphs() {
    let md = "✅ pass ❌ fail ☣️ xfail ➖ skip ⚠️ error 📏 info ⏱️ not judged";
    assert_eq!(fallback_glyphs(md).len(), 8, "{:?}", fallback_glyphs(md));
    assert!(fallback_glyphs("plain → text · ×").is_empty());
}

/// The console check itself works: a page with a broken script is caught.
#[test]
fn a_script_error_is_seen_in_the_console_log() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><p>x</p><script>no_such_function();</script>",
    )
    .unwrap();
    let run = chromium(&format!("file://{}", page.display()), &["--dump-dom"]);
    assert!(!console_errors(&run.stderr).is_empty(), "{}", run.stderr);
}
