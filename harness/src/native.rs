//! `harness run`: the checks on the running kernel, against one directory per filesystem to
//! test, for readers whose kernel is not one of the matrix's (a vendor, distribution or custom
//! build). The records are the ones a guest streams; with `--out` they become the same report a
//! matrix run writes, one cell per directory, so `cargo xtask report diff` can compare the two.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use harness::runner::{self, Tally, Target};
use harness::{fsdetect, kver::KernelVersion};
use zcmatrix_protocol::{CheckResult, Outcome, Profile, Record, Scope};
use zcmatrix_report::{mark, Accel, Cell, GuestSummary, Report, Status};

/// The kernel of a native report's cells: not a series of the matrix, this host's own.
pub const KERNEL_SPEC: &str = "native";

struct Dir {
    path: PathBuf,
    fs: String,
    device: Option<PathBuf>,
    logical_block_size: Option<u32>,
}

/// What `harness run` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per result, for a person.
    Table,
    /// The records, one JSON object a line, as a guest streams them.
    Json,
    /// KTAP (the kernel's Documentation/dev-tools/ktap.rst), for kselftest's, KernelCI's and
    /// LKFT's parsers: written once the run ends, a suite per directory.
    Ktap,
}

/// Runs the checks, prints records, a table or KTAP (`format`), writes the report into `out`;
/// returns the exit status: 1 when a result is `fail` or `error`.
/// The cost family's table, as report.md has it for a matrix's kernels.
#[cfg(feature = "render")]
fn print_cost(report: &zcmatrix_report::Report) {
    let mut cost = String::new();
    zcmatrix_report::cost::markdown(report, &mut cost);
    if !cost.is_empty() {
        println!("\n{cost}");
    }
}

pub fn run(
    dirs: &[PathBuf],
    globs: &[String],
    profile: Profile,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<u8> {
    let json = format == Format::Json;
    let table = format == Format::Table;
    if !cfg!(feature = "render") && out.is_some() {
        // Said before any check runs, not after a run's worth of waiting.
        bail!(
            "this harness was built without its renderers (the guest's build): --out needs \
             `cargo build -p harness` with its default features"
        );
    }
    let started = Instant::now();
    let selected = runner::select(globs, profile)?;
    let (release, kernel) = KernelVersion::running()?;
    let dirs: Vec<Dir> = dirs
        .iter()
        .map(|d| {
            let fs = fsdetect::fs_name(d).with_context(|| format!("inspecting {}", d.display()))?;
            // The disk under DIR, when sysfs tells; checks that need it skip otherwise.
            let (device, logical_block_size) = match fsdetect::block_device_of(d) {
                Some((node, lbs)) => (node, Some(lbs)),
                None => (None, None),
            };
            Ok(Dir {
                path: d.clone(),
                fs,
                device,
                logical_block_size,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let scratch = dirs[0].path.join("kernel-scope");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let mut stdout = std::io::stdout().lock();
    let mut records: Vec<Record> = Vec::new();
    let mut emit = |r: &Record| {
        let _ = if json {
            stdout.write_all(r.to_line().as_bytes())
        } else if !table {
            Ok(())
        } else {
            match r {
                Record::Result(c) => writeln!(stdout, "{}", table_line(c)),
                Record::Hello { kernel_release, .. } => writeln!(stdout, "kernel {kernel_release}"),
                _ => Ok(()),
            }
        };
        records.push(r.clone());
    };
    emit(&harness::hello(&release));
    if table {
        for d in &dirs {
            let _ = writeln!(
                std::io::stdout(),
                "{}: {}{}",
                d.path.display(),
                d.fs,
                d.logical_block_size
                    .map(|b| format!(", logical block size {b}"))
                    .unwrap_or_default()
            );
        }
    }
    let mut tally = Tally::default();
    // The directories given are the "mounted targets" checks that move data between filesystems
    // (cfr.cross_fs) look for, as a guest's mounts are.
    let mounts: Vec<(String, PathBuf)> = dirs
        .iter()
        .map(|d| (d.fs.clone(), d.path.clone()))
        .collect();
    let kernel_target = Target {
        fs: None,
        logical_block_size: None,
        dir: scratch,
        device: None,
        owns_machine: false,
        mounts: mounts.clone(),
        profile,
    };
    runner::run_scope(
        &selected,
        Scope::Kernel,
        kernel,
        &kernel_target,
        &mut tally,
        &mut emit,
    );
    for d in &dirs {
        let target = Target {
            fs: Some(d.fs.clone()),
            logical_block_size: d.logical_block_size,
            dir: d.path.clone(),
            device: d.device.clone(),
            owns_machine: false,
            mounts: mounts.clone(),
            profile,
        };
        runner::run_scope(&selected, Scope::Fs, kernel, &target, &mut tally, &mut emit);
    }
    let summary = tally.summary(started.elapsed());
    emit(&summary);

    if format == Format::Ktap {
        print!("{}", zcmatrix_protocol::ktap::from_records(&records));
    }
    let report = report(&release, &dirs, &records);
    if table {
        print_cells(&report);
        #[cfg(feature = "render")]
        print_cost(&report);
    }
    #[cfg(feature = "render")]
    if let Some(out) = out {
        report
            .write_all(out)
            .with_context(|| format!("writing the report into {}", out.display()))?;
        if table {
            println!("report: {}", out.join("report.html").display());
        }
    }
    Ok(if tally.0.fail + tally.0.error == 0 {
        0
    } else {
        1
    })
}

/// `✅ pass  dio.open  ext4/512  ok`: one result for a person.
fn table_line(r: &CheckResult) -> String {
    let at = match (&r.fs, r.logical_block_size) {
        (Some(fs), Some(b)) => format!("{fs}/{b}"),
        (Some(fs), None) => fs.clone(),
        (None, _) => "kernel".into(),
    };
    let what = match r.outcome {
        Outcome::Skip | Outcome::Error => r.detail.clone(),
        Outcome::Fail | Outcome::Xpass => format!("{} (expected {})", r.observed, r.expected),
        _ => r.observed.clone(),
    };
    format!(
        "{} {:<5} {:<44} {:<12} {}",
        mark(r.outcome),
        r.outcome.as_str(),
        r.full_id(),
        at,
        what
    )
}

fn print_cells(report: &Report) {
    println!();
    for c in &report.cells {
        println!("{:<28} {}", c.label(), c.counts.describe());
    }
}

/// One cell per directory, kernel-scope results copied into each, as a matrix run does.
fn report(release: &str, dirs: &[Dir], records: &[Record]) -> Report {
    let summary = GuestSummary::of(records);
    let cells = dirs
        .iter()
        .map(|d| {
            let (mine, counts) =
                zcmatrix_protocol::cells::cell_results(records, &d.fs, d.logical_block_size);
            Cell {
                kernel_spec: KERNEL_SPEC.into(),
                kernel_release: Some(release.to_string()),
                kernel_package: None,
                // The distribution build /proc/version names (the real point release).
                kernel_version: harness::kver::running_build(),
                kernel_substituted: None,
                fs: d.fs.clone(),
                logical_block_size: d.logical_block_size,
                accel: Some(Accel::Native),
                boot_ms: None,
                status: Status::Completed,
                status_detail: format!("harness run on {}", d.path.display()),
                guest_errors: vec![],
                counts,
                guest_summary: summary,
                // No guest, so no console log to link to.
                guest_dir: String::new(),
                splats: vec![],
                notes: Vec::new(),
                retries: 0,
                arch: nix::sys::utsname::uname()
                    .ok()
                    .map(|u| zcmatrix_report::arch_name(&u.machine().to_string_lossy())),
                page_size: Some(harness::sys::page_size() as u32),
                results: mine,
            }
        })
        .collect();
    Report::new(None, cells)
}
