//! `cargo xtask report`: every format again from report.json; `cargo xtask report diff OLD NEW`:
//! what changed between two runs.

use std::path::{Path, PathBuf};

use vm::report::Report;

use crate::{exit, UsageError};

#[derive(clap::Subcommand, Debug)]
pub enum ReportCmd {
    /// What changed between two runs: a new kernel release, a changed observation, a new
    /// failure or hazard, a check added or gone. Exit 0 when nothing changed, 1 when something
    /// did.
    Diff {
        /// The earlier run: a report.json or the folder holding it.
        old: PathBuf,
        /// The later run: a report.json or the folder holding it.
        new: PathBuf,
        /// Markdown (for a job summary or an issue) instead of text.
        #[arg(long)]
        md: bool,
        /// Compare only kernel OLD_K of OLD with kernel NEW_K of NEW, as one kernel (e.g.
        /// `6.12=native` for a harness report of this host against a matrix run).
        #[arg(long, value_name = "OLD_K=NEW_K")]
        kernels: Option<String>,
        /// Every changed number counts (by default, numbers within 2 or 5 % of each other with
        /// the same outcome are run-to-run noise, such as a fault count off by a page).
        #[arg(long)]
        exact: bool,
    },
    /// Join the reports of every shard of one run (`test-matrix --shard K/N`) into the report
    /// one run would have written, with every format and the guests' logs. Refuses shards of
    /// other selections, kernels.lock files or zcmatrix versions, and names a missing shard.
    /// Exits as that one run would have (1 if a check failed).
    Merge {
        /// The shards' reports: report.json files, or folders in which every report.json at
        /// any depth is a shard (each beside its guests/), e.g. the one folder a workflow
        /// downloaded every shard's artifact into.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged report goes.
        #[arg(long = "out")]
        into: PathBuf,
        /// An earlier run's guest-times.json (e.g. the one the shards were sized by): the
        /// merged guest-times.json is it with this run's times laid over, so a guest that did
        /// not complete this time keeps its last known time. Nothing when the file is missing
        /// (no earlier run kept times).
        #[arg(long, value_name = "FILE")]
        previous_times: Option<PathBuf>,
    },
}

pub fn run(out: &Path, cmd: Option<ReportCmd>) -> anyhow::Result<u8> {
    match cmd {
        None => rerender(out),
        Some(ReportCmd::Diff {
            old,
            new,
            md,
            kernels,
            exact,
        }) => diff(&old, &new, md, kernels.as_deref(), exact),
        Some(ReportCmd::Merge {
            dirs,
            into,
            previous_times,
        }) => merge(&dirs, &into, previous_times.as_deref()),
    }
}

fn merge(args: &[PathBuf], out: &Path, previous_times: Option<&Path>) -> anyhow::Result<u8> {
    let reports = shard_reports(args)?;
    let mut shards = Vec::new();
    for r in &reports {
        shards.push((r.display().to_string(), load(r)?));
    }
    let merged = zcmatrix_report::merge::merge(&shards)
        .map_err(|e| UsageError(format!("cannot merge: {e}")))?;
    // Each cell links to its guest's console.log under guests/; the guests of different shards
    // are different kernels, so their folders never collide.
    for r in &reports {
        let guests = r.with_file_name("guests");
        if guests.is_dir() {
            copy_dir(&guests, &out.join("guests"))?;
        }
    }
    merged.write_all(out)?;
    for f in vm::report::FILES {
        println!("wrote {}", out.join(f).display());
    }
    join_times(&reports, previous_times, out);
    Ok(vm::matrix::exit_status(&merged))
}

/// The shards' guest times over `previous`'s, joined into `out`'s guest-times.json: the next
/// run's cache can size its shards by them. Times are a hint: a file that cannot be read or
/// written is a warning naming it, never a change to the exit status the merged report gives.
fn join_times(reports: &[PathBuf], previous: Option<&Path>, out: &Path) {
    use vm::guest_times::{self, GuestTimes};
    let previous = match previous {
        None => GuestTimes::default(),
        Some(p) if !p.exists() => {
            println!("no earlier guest times ({} is missing)", p.display());
            GuestTimes::default()
        }
        Some(p) => GuestTimes::read(p).unwrap_or_else(|e| {
            eprintln!("warning: earlier guest times left out: {e:#}");
            GuestTimes::default()
        }),
    };
    let times: Vec<PathBuf> = reports
        .iter()
        .map(|r| r.with_file_name(guest_times::FILE))
        .filter(|t| t.is_file())
        .collect();
    let joined = guest_times::join(previous, &times);
    for e in &joined.skipped {
        eprintln!("warning: a shard's guest times left out: {e:#}");
    }
    if joined.times.is_empty() {
        return;
    }
    let into = out.join(guest_times::FILE);
    match joined.times.save(&into) {
        Ok(()) => println!(
            "wrote {} ({} guest(s) timed)",
            into.display(),
            joined.times.len()
        ),
        Err(e) => eprintln!("warning: {} not written: {e:#}", into.display()),
    }
}

/// The report.json of every shard named by `args`: a file is one; a folder holds one at every
/// depth, and a folder that has a report.json is one shard (its guests/ are not searched).
/// actions/download-artifact puts a lone artifact's files straight into its `path` and
/// several artifacts each in a subfolder named after it (src/download-artifact.ts at v8.0.1:
/// `artifacts.length === 1 ? resolvedPath : path.join(resolvedPath, artifact.name)`), so
/// `report merge shards` reads one shard or eight alike. A shard named twice counts once.
fn shard_reports(args: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    let mut found = Vec::new();
    for a in args {
        let before = found.len();
        if a.is_dir() {
            find_reports(a, &mut found)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", a.display())))?;
        } else {
            // A file, or a path that is not there: load() says which.
            found.push(a.clone());
        }
        if found.len() == before {
            return Err(UsageError(format!(
                "{}: no report.json in it or beneath it",
                a.display()
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(found)
}

fn find_reports(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let report = dir.join("report.json");
    if report.is_file() {
        found.push(report);
        return Ok(());
    }
    let mut subdirs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        // Symbolic links are not followed: a link to a parent would never end.
        if e.file_type()?.is_dir() {
            subdirs.push(e.path());
        }
    }
    // Sorted, so that messages name shards in a stable order.
    subdirs.sort();
    for d in subdirs {
        find_reports(&d, found)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// A report this zcmatrix cannot read is the user's input, not a host failure: exit 2.
fn load(path: &Path) -> anyhow::Result<Report> {
    Ok(Report::load(path).map_err(|e| UsageError(format!("cannot read the report: {e}")))?)
}

/// Every format again from report.json (after a schema-compatible change to a renderer, or to
/// regenerate a lost file).
fn rerender(out: &Path) -> anyhow::Result<u8> {
    let path = out.join("report.json");
    if !path.is_file() {
        return Err(UsageError(format!(
            "cannot read {}: no such file; run `cargo xtask test-matrix` first",
            path.display()
        ))
        .into());
    }
    let report = load(&path)?;
    report.write_all(out)?;
    for f in vm::report::FILES.iter().skip(1) {
        println!("wrote {}", out.join(f).display());
    }
    Ok(exit::OK)
}

fn diff(
    old: &Path,
    new: &Path,
    md: bool,
    kernels: Option<&str>,
    exact: bool,
) -> anyhow::Result<u8> {
    let (old, new) = (load(old)?, load(new)?);
    let pair = match kernels {
        None => None,
        Some(k) => Some(k.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "--kernels {k:?}: expected OLD_K=NEW_K, e.g. 6.12=native"
            ))
        })?),
    };
    for (report, k, side) in pair
        .iter()
        .flat_map(|(a, b)| [(&old, *a, "OLD"), (&new, *b, "NEW")])
    {
        if !report.kernels().contains(&k) {
            return Err(UsageError(format!(
                "--kernels: {side} has no kernel {k:?} (it has {})",
                report.kernels().join(", ")
            ))
            .into());
        }
    }
    let d = zcmatrix_report::diff::Diff::between(&old, &new, pair, exact);
    print!("{}", if md { d.markdown() } else { d.text() });
    Ok(if d.is_empty() { exit::OK } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcmatrix_protocol::{CheckResult, Counts, Outcome, Scope};

    fn report(observed: &str) -> Report {
        report_of(&[("dio.min_mem_align", observed)])
    }

    /// One 6.1 ext4 cell with these (check, observed) results, all `pass`.
    fn report_of(results: &[(&str, &str)]) -> Report {
        let rs: Vec<CheckResult> = results.iter().map(|(c, o)| result(c, o)).collect();
        let mut counts = Counts::default();
        rs.iter().for_each(|r| counts.add(r.outcome));
        cell_report(rs, counts)
    }

    fn result(check: &str, observed: &str) -> CheckResult {
        CheckResult {
            check: check.into(),
            variant: None,
            scope: Scope::Fs,
            fs: Some("ext4".into()),
            logical_block_size: Some(4096),
            outcome: Outcome::Pass,
            observed: observed.into(),
            expected: observed.into(),
            evidence: "open(2)".into(),
            detail: String::new(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        }
    }

    fn cell_report(results: Vec<CheckResult>, counts: Counts) -> Report {
        let cell = vm::report::Cell {
            kernel_spec: "6.1".into(),
            kernel_release: Some("6.1.0-1-cloud-amd64".into()),
            kernel_package: None,
            kernel_version: None,
            kernel_substituted: None,
            fs: "ext4".into(),
            logical_block_size: Some(4096),
            accel: None,
            boot_ms: None,
            status: vm::guest::Status::Completed,
            status_detail: String::new(),
            guest_errors: vec![],
            counts,
            guest_summary: None,
            guest_dir: "guests/6.1".into(),
            splats: vec![],
            notes: Vec::new(),
            retries: 0,
            arch: None,
            page_size: None,
            results,
        };
        Report::new(None, vec![cell])
    }

    /// The small changes a tolerance for noise used to hide: the whole file PMD-mapped now
    /// (`default_pmds` 0 → 2) and one more io_uring opcode. Both are news: exit 1.
    #[test]
    fn report_diff_exits_1_on_small_changes_of_facts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        report_of(&[
            ("mmap.large_folio", "default_pmds=0 huge_always_pmds=2"),
            ("uring.opcodes", "supported=58 highest=57"),
        ])
        .write_all(&a)
        .unwrap();
        report_of(&[
            ("mmap.large_folio", "default_pmds=2 huge_always_pmds=2"),
            ("uring.opcodes", "supported=59 highest=58"),
        ])
        .write_all(&b)
        .unwrap();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(crate::run(["cargo xtask", "report", "diff", a, b]), 1);
        let (old, new) = (load(Path::new(a)).unwrap(), load(Path::new(b)).unwrap());
        let d = zcmatrix_report::diff::Diff::new(&old, &new);
        let ids: Vec<&str> = d.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["mmap.large_folio", "uring.opcodes"], "{d:?}");
    }

    #[test]
    fn report_diff_exits_1_on_a_changed_observation_and_0_on_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        report("4096").write_all(&a).unwrap();
        report("512").write_all(&b).unwrap();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let b_json = format!("{b}/report.json");
        assert_eq!(
            crate::run(["cargo xtask", "report", "diff", a, a]),
            exit::OK
        );
        assert_eq!(crate::run(["cargo xtask", "report", "diff", a, &b_json]), 1);
        assert_eq!(
            crate::run(["cargo xtask", "report", "diff", "--md", a, b]),
            1
        );
        assert_eq!(
            crate::run([
                "cargo xtask",
                "report",
                "diff",
                "--kernels",
                "6.1=7.2",
                a,
                b
            ]),
            exit::USAGE
        );
        assert_eq!(
            crate::run(["cargo xtask", "report", "diff", a, "/nonexistent"]),
            exit::USAGE
        );
    }

    #[test]
    fn report_merge_joins_shards_and_refuses_a_missing_one() {
        use vm::report::{RunInfo, Selection, Shard};
        let dir = tempfile::tempdir().unwrap();
        let info = |index, kernels: &[&str]| RunInfo {
            selection: Selection {
                kernels: vec!["6.1".into()],
                filesystems: vec!["ext4".into()],
                geometries: vec![4096],
                checks: vec![],
                memory_mb: 512,
                kernel_args: vec![],
                profile: Default::default(),
            },
            shard: Some(Shard {
                index,
                count: 2,
                kernels: kernels.iter().map(|k| k.to_string()).collect(),
            }),
            lock_sha256: None,
            zcmatrix_version: "0".into(),
            kernel_files: vec![],
        };
        let (a, b, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("out"),
        );
        let mut ra = report("512");
        ra.run = Some(info(1, &["6.1"]));
        ra.write_all(&a).unwrap();
        std::fs::create_dir_all(a.join("guests/6.1")).unwrap();
        std::fs::write(a.join("guests/6.1/console.log"), "boot").unwrap();
        let mut rb = Report::new(None, vec![]);
        rb.run = Some(info(2, &[]));
        rb.write_all(&b).unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let merge = |dirs: &[&Path]| {
            let mut v = vec!["cargo xtask".to_string(), "report".into(), "merge".into()];
            v.extend(dirs.iter().map(|d| s(d)));
            v.extend(["--out".into(), s(&out)]);
            crate::run(v)
        };
        assert_eq!(merge(&[&a]), exit::USAGE);
        assert!(!out.join("report.json").exists());
        assert_eq!(merge(&[&b, &a]), exit::OK);
        let merged = Report::load(&out).unwrap();
        assert_eq!(merged.cells, ra.cells);
        assert_eq!(merged.run.unwrap().shard, None);
        for f in vm::report::FILES {
            assert!(out.join(f).is_file(), "{f}");
        }
        assert!(out.join("guests/6.1/console.log").is_file());
    }

    /// Shard `index` of `count` of a run of `kernels`, holding `mine`'s cells, written to `dir`
    /// with its guests' console logs, as `test-matrix --shard --out dir` leaves it.
    fn write_shard(dir: &Path, index: u32, count: u32, kernels: &[String], mine: &[String]) {
        use vm::report::{RunInfo, Selection, Shard};
        let cells = mine
            .iter()
            .map(|k| {
                let mut c = report("512").cells.remove(0);
                c.kernel_spec = k.clone();
                c.guest_dir = format!("guests/{k}");
                c
            })
            .collect();
        let mut r = Report::new(None, cells);
        r.run = Some(RunInfo {
            selection: Selection {
                kernels: kernels.to_vec(),
                filesystems: vec!["ext4".into()],
                geometries: vec![4096],
                checks: vec![],
                memory_mb: 512,
                kernel_args: vec![],
                profile: Default::default(),
            },
            shard: Some(Shard {
                index,
                count,
                kernels: mine.to_vec(),
            }),
            lock_sha256: None,
            zcmatrix_version: "0".into(),
            kernel_files: vec![],
        });
        r.write_all(dir).unwrap();
        for k in mine {
            std::fs::create_dir_all(dir.join("guests").join(k)).unwrap();
            std::fs::write(dir.join("guests").join(k).join("console.log"), k).unwrap();
        }
    }

    fn merge_args(args: &[&Path], out: &Path) -> u8 {
        let mut v = vec!["cargo xtask".to_string(), "report".into(), "merge".into()];
        v.extend(args.iter().map(|d| d.to_str().unwrap().to_string()));
        v.extend(["--out".into(), out.to_str().unwrap().to_string()]);
        crate::run(v)
    }

    /// The two layouts actions/download-artifact leaves in `shards/`: one artifact's files
    /// straight in it, several artifacts each in a subfolder of its name.
    #[test]
    fn report_merge_finds_the_shards_in_a_folder_one_flat_or_eight_in_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec!["6.1".to_string()];
        let flat = dir.path().join("one/shards");
        write_shard(&flat, 1, 1, &one, &one);
        let out = dir.path().join("one/out");
        assert_eq!(merge_args(&[&flat], &out), exit::OK);
        assert_eq!(Report::load(&out).unwrap().cells.len(), 1);
        assert!(out.join("guests/6.1/console.log").is_file());

        let kernels: Vec<String> = (1..=8).map(|k| format!("k{k}")).collect();
        let shards = dir.path().join("eight/shards");
        for (i, k) in kernels.iter().enumerate() {
            let sub = shards.join(format!("shard-{i}"));
            write_shard(&sub, i as u32 + 1, 8, &kernels, std::slice::from_ref(k));
        }
        let out = dir.path().join("eight/out");
        // A shard named again (its folder beside the folder holding it) is still one shard.
        let again = shards.join("shard-3");
        assert_eq!(merge_args(&[&shards, &again], &out), exit::OK);
        let merged = Report::load(&out).unwrap();
        let specs: Vec<&str> = merged
            .cells
            .iter()
            .map(|c| c.kernel_spec.as_str())
            .collect();
        assert_eq!(
            specs,
            kernels.iter().map(String::as_str).collect::<Vec<_>>()
        );
        for k in &kernels {
            assert!(
                out.join("guests").join(k).join("console.log").is_file(),
                "{k}"
            );
        }

        // One shard fewer is named as missing; a folder without any report is a usage error.
        std::fs::remove_dir_all(shards.join("shard-5")).unwrap();
        let partial = dir.path().join("eight/partial");
        assert_eq!(merge_args(&[&shards], &partial), exit::USAGE);
        assert!(!partial.join("report.json").exists());
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(empty.join("shard-1")).unwrap();
        assert_eq!(merge_args(&[&empty], &partial), exit::USAGE);
    }

    /// The merged guest-times.json is the earlier run's times with this run's laid over; a
    /// shard's unreadable times are left out with a warning and change nothing else: the exit
    /// status is still the merged report's.
    #[test]
    fn report_merge_keeps_earlier_guest_times_and_survives_a_bad_shard_file() {
        let dir = tempfile::tempdir().unwrap();
        let kernels: Vec<String> = ["k1", "k2", "k3"].map(String::from).to_vec();
        let shards = dir.path().join("shards");
        for (i, k) in kernels.iter().enumerate() {
            let sub = shards.join(format!("shard-{i}"));
            write_shard(&sub, i as u32 + 1, 3, &kernels, std::slice::from_ref(k));
        }
        let times = |sub: &str| shards.join(sub).join(vm::guest_times::FILE);
        std::fs::write(times("shard-0"), r#"{"k1 K": 110}"#).unwrap();
        std::fs::write(times("shard-1"), "{not json").unwrap();
        // shard-2's guest did not complete: it timed nothing.
        let previous = dir.path().join("previous.json");
        std::fs::write(&previous, r#"{"k1 K": 100, "k2 K": 200, "k3 K": 300}"#).unwrap();

        let out = dir.path().join("out");
        let mut argv = vec!["cargo xtask".to_string(), "report".into(), "merge".into()];
        argv.extend([shards.to_str().unwrap().to_string(), "--out".into()]);
        argv.push(out.to_str().unwrap().to_string());
        let with_previous = |p: &Path| {
            let mut v = argv.clone();
            v.extend(["--previous-times".into(), p.to_str().unwrap().to_string()]);
            v
        };
        assert_eq!(crate::run(with_previous(&previous)), exit::OK);
        let merged: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(vm::guest_times::FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            merged,
            serde_json::json!({"k1 K": 110, "k2 K": 200, "k3 K": 300})
        );

        // No earlier times (none kept, or no flag): this run's alone, the bad file still
        // only a warning.
        for argv in [
            with_previous(&dir.path().join("missing.json")),
            argv.clone(),
        ] {
            std::fs::remove_dir_all(&out).unwrap();
            assert_eq!(crate::run(argv), exit::OK);
            let merged: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join(vm::guest_times::FILE)).unwrap(),
            )
            .unwrap();
            assert_eq!(merged, serde_json::json!({"k1 K": 110}));
        }
        // An unreadable earlier file is left out the same way.
        std::fs::write(&previous, "[]").unwrap();
        assert_eq!(crate::run(with_previous(&previous)), exit::OK);
    }

    #[test]
    fn report_rerenders_every_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), report("512").to_json()).unwrap();
        let out = dir.path().to_str().unwrap();
        assert_eq!(
            crate::run(["cargo xtask", "report", "--out", out]),
            exit::OK
        );
        for f in vm::report::FILES {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
    }
}
