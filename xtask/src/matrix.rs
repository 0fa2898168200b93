//! `test-matrix`: one guest per kernel, every filesystem target in it, the report rewritten after
//! each guest so nothing measured is lost if a later guest (or the run) dies.

use std::fs;
use std::path::Path;

use anyhow::Context;
use vm::guest::Status;
use vm::guest::{self, AccelPolicy, Event, GuestOutcome, GuestPlan};
use vm::kernel::{KernelSpec, KernelStore, LockFile};
use vm::report::{self, Cell, CellKey, Report};
use vm::{disk, qemu, tools};
use zcmatrix_protocol::Outcome;

use crate::plan::{validate_checks, Plan};
use crate::progress::Progress;
use crate::{exit, harness_bin, UsageError};

/// Host programs a plan needs, with the package that has each.
fn required_tools(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    let mut t = vec![(qemu::QEMU, "qemu-system-x86"), ("mkswap", "util-linux")];
    for fs in &plan.filesystems {
        if let Some(tool) = disk::mkfs_tool(fs) {
            t.push(tool);
        }
    }
    if plan.needs_debian() {
        t.push(("apt-get", "apt"));
        t.push(("dpkg-deb", "dpkg"));
    }
    t
}

fn guest_dir_name(spec: &KernelSpec) -> String {
    match spec {
        KernelSpec::Debian(s) => s.spec.to_string(),
        KernelSpec::Local { image, .. } => format!(
            "local-{}",
            image
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ),
    }
}

pub fn run(plan: &Plan) -> anyhow::Result<u8> {
    tools::require(&required_tools(plan))?;
    let cache = crate::cache_dir();
    fs::create_dir_all(&plan.out).with_context(|| format!("creating {}", plan.out.display()))?;
    let mut progress = Progress::new(plan.kernels.len());

    progress.say("building the static harness");
    let harness = harness_bin::build()?;
    validate_checks(&plan.checks, &harness_bin::check_ids(&harness)?)?;

    let lock_path = &plan.lock;
    let mut lock = LockFile::load(lock_path)?;
    let mut store = KernelStore::new(&cache);
    let accel = AccelPolicy::new(plan.accel);
    if let Some(n) = &accel.note {
        progress.say(&format!("note: {n}"));
    }
    let targets = plan.targets();
    let keys: Vec<CellKey> = targets
        .iter()
        .map(|t| CellKey {
            fs: t.fs.clone(),
            logical_block_size: t.logical_block_size,
        })
        .collect();
    let mut cells = Vec::new();

    for spec in &plan.kernels {
        let label = spec.label();
        let dir_name = guest_dir_name(spec);
        let dir = plan.out.join("guests").join(&dir_name);
        let _ = fs::remove_dir_all(&dir);
        progress.guest(&label, "fetching kernel");
        let before = lock.clone();
        let kernel = store.ensure(spec, &mut lock);
        if lock != before {
            lock.save(lock_path)?;
        }
        let outcome = match &kernel {
            Err(e) => GuestOutcome::infra(format!("kernel {label}: {e:#}")),
            Ok(k) => {
                if let Some(s) = &k.substituted {
                    progress.say(&format!("[{label}] {s}"));
                }
                progress.guest(&label, "booting");
                let gp = GuestPlan {
                    kernel: k,
                    targets: targets.clone(),
                    checks: plan.checks.clone(),
                    harness: &harness,
                    cache: &cache,
                    dir: dir.clone(),
                    deadline: plan.deadline,
                    memory_mb: plan.memory_mb,
                };
                guest::run(&gp, &accel, &mut |ev| match ev {
                    Event::Record(r) => progress.record(r),
                })
            }
        };
        if outcome.status != Status::Completed {
            progress.say(&format!(
                "[{label}] {}: {}",
                outcome.status.as_str(),
                outcome.detail
            ));
        }
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("raw-lines.txt"), outcome.raw_lines.join("\n"))?;
        cells.extend(report::cells_of(
            &label,
            kernel.as_ref().ok(),
            &keys,
            &outcome,
            &format!("guests/{dir_name}"),
        ));
        write_report(&plan.out, &Report::new(accel.note.clone(), cells.clone()))?;
        progress.guest_done();
    }
    progress.finish();

    let report = Report::new(accel.note.clone(), cells);
    print_summary(&report);
    println!("report: {}", plan.out.join("report.md").display());
    Ok(exit_status(&report))
}

/// What one cell says about the run. Infrastructure first: a cell we could not set up is not a
/// statement about the kernel. A timeout or panic before the harness's hello (no kernel release)
/// means the guest never got to run anything, i.e. it could not boot; after it, the kernel or a
/// probe took the guest down mid-run, which is about the kernel, yet not a verdict of a rule.
fn cell_exit(c: &Cell) -> u8 {
    match c.status {
        Status::InfraError | Status::CompletedWithErrors => exit::INFRA,
        Status::Timeout | Status::Panic if c.kernel_release.is_none() => exit::INFRA,
        Status::Timeout | Status::Panic => exit::GUEST_DIED,
        Status::Completed if c.any_failed() => exit::CHECK_FAILED,
        Status::Completed => exit::OK,
    }
}

/// The run's exit status: the most severe of its cells' (`INFRA` > `GUEST_DIED` >
/// `CHECK_FAILED` > `OK`), so that "rerun after fixing the host" is never hidden behind a
/// verdict, and a dead guest never behind a failed check.
pub fn exit_status(report: &Report) -> u8 {
    let severity = |code: &u8| match *code {
        exit::INFRA => 3,
        exit::GUEST_DIED => 2,
        exit::CHECK_FAILED => 1,
        _ => 0,
    };
    report
        .cells
        .iter()
        .map(cell_exit)
        .max_by_key(severity)
        .unwrap_or(exit::OK)
}

fn write_report(out: &Path, report: &Report) -> anyhow::Result<()> {
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    fs::write(out.join("report.json"), json)?;
    fs::write(out.join("report.md"), report.markdown())?;
    Ok(())
}

fn print_summary(report: &Report) {
    let mut head = format!("{:<24} {:<28} {:<21}", "cell", "release", "status");
    for o in Outcome::ALL {
        head.push_str(&format!(" {:>5}", o.as_str()));
    }
    println!("{head}");
    for c in &report.cells {
        let mut line = format!(
            "{:<24} {:<28} {:<21}",
            c.label(),
            c.kernel_release.as_deref().unwrap_or("-"),
            c.status.as_str(),
        );
        for o in Outcome::ALL {
            line.push_str(&format!(" {:>5}", c.count(o)));
        }
        println!("{line}");
        for e in &c.guest_errors {
            println!("    {}: {}", e.kind.as_str(), e.message);
        }
    }
}

/// `cargo xtask report`: report.md again from report.json (after a schema-compatible change to
/// the renderer, or to regenerate a lost file).
pub fn rerender(out: &Path) -> anyhow::Result<u8> {
    let path = out.join("report.json");
    let text = fs::read_to_string(&path).map_err(|e| {
        UsageError(format!(
            "cannot read {}: {e}; run `cargo xtask test-matrix` first",
            path.display()
        ))
    })?;
    // A report this zcmatrix cannot read is the user's input, not a host failure: exit 2.
    let report = Report::from_json(&text)
        .map_err(|e| UsageError(format!("cannot render {}: {e}", path.display())))?;
    fs::write(out.join("report.md"), report.markdown())?;
    println!("wrote {}", out.join("report.md").display());
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm::report::CellKey;
    use zcmatrix_protocol::{CheckResult, Counts, Record, Scope, SCHEMA_VERSION};

    fn result(outcome: Outcome) -> Record {
        Record::Result(CheckResult {
            check: "dio.open".into(),
            variant: None,
            scope: Scope::Kernel,
            fs: None,
            logical_block_size: None,
            outcome,
            observed: "ok".into(),
            expected: "ok".into(),
            evidence: "open(2)".into(),
            detail: String::new(),
            duration_ms: 1,
        })
    }

    fn hello() -> Record {
        Record::Hello {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-47-cloud-amd64".into(),
            cmdline: String::new(),
            mem_total_kb: 1,
            uptime_ms: 1,
        }
    }

    /// A guest as `vm::guest` would hand it over: its status and the records that arrived.
    /// A completed guest gets a summary matching its results, as the harness sends.
    fn guest(status: Status, mut records: Vec<Record>) -> GuestOutcome {
        if status == Status::Completed {
            let mut counts = Counts::default();
            for r in &records {
                if let Record::Result(c) = r {
                    counts.add(c.outcome);
                }
            }
            records.push(Record::Summary {
                counts,
                duration_ms: 1,
            });
        }
        GuestOutcome {
            status,
            detail: "d".into(),
            accel: None,
            boot_ms: None,
            records,
            raw_lines: Vec::new(),
        }
    }

    fn report(guests: Vec<GuestOutcome>) -> Report {
        let keys = [CellKey {
            fs: "tmpfs".into(),
            logical_block_size: None,
        }];
        let cells = guests
            .iter()
            .flat_map(|g| report::cells_of("6.1", None, &keys, g, "g"))
            .collect();
        Report::new(None, cells)
    }

    #[test]
    fn exit_status_follows_the_worst_cell() {
        use Status::*;
        let swap = Record::Error {
            message: "swap: no disk".into(),
        };
        let module = Record::Module {
            name: "xfs".into(),
            ok: false,
            detail: "ENOEXEC".into(),
        };
        let clean = || guest(Completed, vec![hello(), result(Outcome::Pass)]);
        let failed = || guest(Completed, vec![hello(), result(Outcome::Fail)]);
        let cases: Vec<(&str, Vec<GuestOutcome>, u8)> = vec![
            ("completed, all pass", vec![clean()], exit::OK),
            (
                "hazards, news, measurements and skips do not fail a run",
                vec![guest(
                    Completed,
                    [Outcome::Xfail, Outcome::Xpass, Outcome::Info, Outcome::Skip]
                        .map(result)
                        .into_iter()
                        .chain([hello()])
                        .collect(),
                )],
                exit::OK,
            ),
            ("a fail", vec![failed()], exit::CHECK_FAILED),
            (
                "an error",
                vec![guest(Completed, vec![hello(), result(Outcome::Error)])],
                exit::CHECK_FAILED,
            ),
            (
                "completed with a harness error (swap)",
                vec![guest(Completed, vec![hello(), swap, result(Outcome::Pass)])],
                exit::INFRA,
            ),
            (
                "completed with a module that did not load",
                vec![guest(
                    Completed,
                    vec![hello(), module, result(Outcome::Pass)],
                )],
                exit::INFRA,
            ),
            (
                "timeout after the harness started",
                vec![guest(Timeout, vec![hello(), result(Outcome::Pass)])],
                exit::GUEST_DIED,
            ),
            (
                "panic after the harness started",
                vec![guest(Panic, vec![hello()])],
                exit::GUEST_DIED,
            ),
            (
                "timeout before the harness started: could not boot",
                vec![guest(Timeout, vec![])],
                exit::INFRA,
            ),
            (
                "panic before the harness started: could not boot",
                vec![guest(Panic, vec![])],
                exit::INFRA,
            ),
            (
                "infrastructure",
                vec![GuestOutcome::infra("no kernel".into())],
                exit::INFRA,
            ),
            (
                "a dead guest outranks a failed check",
                vec![failed(), guest(Panic, vec![hello()])],
                exit::GUEST_DIED,
            ),
            (
                "infrastructure outranks a dead guest",
                vec![
                    guest(Timeout, vec![hello()]),
                    GuestOutcome::infra("x".into()),
                    clean(),
                ],
                exit::INFRA,
            ),
        ];
        for (what, guests, code) in cases {
            assert_eq!(exit_status(&report(guests)), code, "{what}");
        }
    }

    #[test]
    fn a_report_of_another_schema_is_refused_as_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        // The head of a report.json that a schema 1 zcmatrix wrote.
        std::fs::write(
            dir.path().join("report.json"),
            r#"{"schema_version":1,"accel_note":null,"cells":[{"kernel_spec":"5.10",
               "status":"completed","results":[]}]}"#,
        )
        .unwrap();
        let out = dir.path().to_str().unwrap();
        assert_eq!(
            crate::run(["cargo xtask", "report", "--out", out]),
            exit::USAGE
        );
        assert!(!dir.path().join("report.md").exists());
        // The same folder rendered from a report this zcmatrix wrote.
        let r = report(vec![guest(
            Status::Completed,
            vec![hello(), result(Outcome::Xfail)],
        )]);
        std::fs::write(
            dir.path().join("report.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        assert_eq!(
            crate::run(["cargo xtask", "report", "--out", out]),
            exit::OK
        );
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("☣️ xfail | `dio.open`"), "{md}");
    }
}
