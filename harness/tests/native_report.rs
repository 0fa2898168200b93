//! `harness run` for a person and for a report: repeatable `--dir`, a table on a terminal, JSON
//! lines when piped or with `--json`, and `--out` writing the same report a matrix run writes,
//! one cell per directory, with this host's kernel release, filesystem and logical block size.

use std::path::Path;
use std::process::Command;

use zcmatrix_report::{diff::Diff, Accel, Report, FILES};

fn dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    (
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) for the tmpfs cell"),
    )
}

const CHECKS: [&str; 4] = ["--check", "dio.open", "--check", "splice.no_pipe"];

#[test]
fn out_writes_one_cell_per_directory_with_what_was_detected() {
    let (disk, shm) = dirs();
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--dir"])
        .arg(disk.path())
        .arg("--dir")
        .arg(shm.path())
        .args(CHECKS)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Piped: still one JSON record a line, hello first and summary last.
    let lines: Vec<serde_json::Value> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    assert_eq!(lines[0]["type"], "hello");
    assert_eq!(lines.last().unwrap()["type"], "summary");
    // splice.no_pipe once (kernel scope), dio.open once per directory.
    assert_eq!(lines.iter().filter(|l| l["type"] == "result").count(), 3);

    for f in FILES {
        assert!(out.path().join(f).is_file(), "{f}");
    }
    let r = Report::load(out.path()).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(r.cells.len(), 2);
    let fs_of = |p: &Path| harness::fsdetect::fs_name(p).unwrap();
    for (cell, dir) in r.cells.iter().zip([disk.path(), shm.path()]) {
        assert_eq!(cell.kernel_spec, "native");
        assert_eq!(cell.kernel_release.as_deref(), Some(release.trim()));
        assert_eq!(cell.accel, Some(Accel::Native));
        assert_eq!(cell.fs, fs_of(dir));
        assert_eq!(
            cell.logical_block_size,
            harness::fsdetect::block_device_of(dir).map(|(_, b)| b)
        );
        let ids: Vec<String> = cell.results.iter().map(|r| r.full_id()).collect();
        assert_eq!(ids, ["splice.no_pipe", "dio.open"], "{}", cell.label());
        assert_eq!(cell.counts.total(), 2);
    }
    assert_eq!(r.cells[1].fs, "tmpfs");
    assert_eq!(r.cells[1].logical_block_size, None);
    // A report diff can read it: against itself nothing changed; against a matrix run's kernel
    // (here the same cells renamed 6.12, one observation edited) it names that change.
    assert!(Diff::new(&r, &r).is_empty());
    let mut matrix = r.clone();
    for c in &mut matrix.cells {
        c.kernel_spec = "6.12".into();
        for res in c
            .results
            .iter_mut()
            .filter(|x| x.check == "dio.open" && x.fs.as_deref() == Some("tmpfs"))
        {
            res.observed = "EINVAL".into();
        }
    }
    let d = Diff::between(&matrix, &r, Some(("6.12", "native")), false);
    assert_eq!(d.changes.len(), 1, "{d:?}");
    assert_eq!(d.changes[0].places, ["6.12 tmpfs"]);
    assert!(d.cells_added.is_empty() && d.cells_gone.is_empty(), "{d:?}");
}

/// Runs the harness on a pseudo-terminal (util-linux's `script`), as a person would.
fn on_a_terminal(args: &str) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_harness"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_terminal_gets_a_table_unless_json_is_asked_for() {
    let (disk, _) = dirs();
    let base = format!("run --dir {} {}", disk.path().display(), CHECKS.join(" "));
    let table = on_a_terminal(&base);
    assert!(table.starts_with("kernel "), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("✅ pass  dio.open")),
        "{table}"
    );
    assert!(!table.contains("{\"type\""), "{table}");
    let json = on_a_terminal(&format!("{base} --json"));
    assert!(
        json.lines().all(|l| l.trim_start().starts_with('{')),
        "{json}"
    );
}

/// A real observation of this host judged by another series' rules: O_DIRECT opens on tmpfs
/// since 6.6, and judged as 6.5 (EINVAL expected) it fails. report.json says `fail`, report.md
/// leads What changes with it, junit.xml has a failure element, and the run exits 1; a bad
/// series is a usage error.
#[test]
fn judged_as_another_series_a_real_observation_fails_the_run() {
    let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs)");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--dir"])
        .arg(shm.path())
        .args(["--check", "dio.open", "--judge-as", "6.5", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = Report::load(out.path()).unwrap();
    let open = &r.cells[0].results[0];
    assert_eq!(
        (open.check.as_str(), open.observed.as_str()),
        ("dio.open", "ok")
    );
    assert_eq!(open.outcome, zcmatrix_protocol::Outcome::Fail, "{open:?}");
    assert!(
        open.expected
            .starts_with("EINVAL (the rule of 6.5.0, --judge-as)"),
        "{open:?}"
    );
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let changes = &md[md.find("## What changes").unwrap()..];
    assert!(
        changes.starts_with("## What changes\n\n❌ 1 check(s) contradict their rule"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    let bad = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--dir"])
        .arg(shm.path())
        .args(["--check", "dio.open", "--judge-as", "seven"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
