//! `test-matrix`: one guest per kernel, every filesystem target in it, the report rewritten after
//! each guest so nothing measured is lost if a later guest (or the run) dies.

use std::fs;
use std::path::Path;

use anyhow::Context;
use vm::guest::{self, AccelPolicy, Event, GuestOutcome, GuestPlan};
use vm::kernel::{KernelSpec, KernelStore, LockFile};
use vm::report::{self, CellKey, Report};
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

    let lock_path = crate::lock_path();
    let mut lock = LockFile::load(&lock_path)?;
    let mut store = KernelStore::new(&cache);
    let mut accel = AccelPolicy::new(plan.accel);
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
            lock.save(&lock_path)?;
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
                guest::run(&gp, &mut accel, &mut |ev| match ev {
                    Event::Record(r) => progress.record(r),
                    Event::Note(n) => progress.say(&format!("note: {n}")),
                })
            }
        };
        if outcome.status != guest::Status::Completed {
            progress.say(&format!(
                "[{label}] {:?}: {}",
                outcome.status, outcome.detail
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
    Ok(if !report.all_completed() {
        exit::INFRA
    } else if report.any_failed() {
        exit::CHECK_FAILED
    } else {
        exit::OK
    })
}

fn write_report(out: &Path, report: &Report) -> anyhow::Result<()> {
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    fs::write(out.join("report.json"), json)?;
    fs::write(out.join("report.md"), report.markdown())?;
    Ok(())
}

fn print_summary(report: &Report) {
    println!(
        "{:<24} {:<28} {:<11} {:>5} {:>5} {:>5} {:>5}",
        "cell", "release", "status", "pass", "fail", "skip", "error"
    );
    for c in &report.cells {
        println!(
            "{:<24} {:<28} {:<11} {:>5} {:>5} {:>5} {:>5}",
            c.label(),
            c.kernel_release.as_deref().unwrap_or("-"),
            format!("{:?}", c.status).to_lowercase(),
            c.count(Outcome::Pass),
            c.count(Outcome::Fail),
            c.count(Outcome::Skip),
            c.count(Outcome::Error),
        );
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
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if report.schema_version != zcmatrix_protocol::SCHEMA_VERSION {
        return Err(UsageError(format!(
            "{} has schema {} but this zcmatrix writes {}",
            path.display(),
            report.schema_version,
            zcmatrix_protocol::SCHEMA_VERSION
        ))
        .into());
    }
    fs::write(out.join("report.md"), report.markdown())?;
    println!("wrote {}", out.join("report.md").display());
    Ok(exit::OK)
}
