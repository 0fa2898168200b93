//! `harness` as PID 1 in a guest, or `harness run --dir DIR` / `harness list` on any Linux host.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use harness::runner::{self, Tally, Target};
use harness::{checks, fsdetect, kver::KernelVersion};
use zcmatrix_protocol::{Record, Scope};

#[derive(Parser)]
#[command(about = "zcmatrix checks, natively on this host (as PID 1 it runs the guest manifest)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run checks against DIR on the running kernel, printing one JSON record a line.
    Run {
        /// Directory on the filesystem under test.
        #[arg(long)]
        dir: PathBuf,
        /// Only checks whose id matches this glob (repeatable), e.g. 'dio.*'.
        #[arg(long = "check")]
        checks: Vec<String>,
    },
    /// List the checks, one JSON object a line (id, scope, description, evidence, hazards).
    List,
}

fn main() -> ExitCode {
    if std::process::id() == 1 {
        harness::guest::main();
    }
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::List => {
            let mut out = std::io::stdout().lock();
            for c in checks::all() {
                let v = serde_json::json!({
                    "id": c.full_id(),
                    "scope": c.scope,
                    "description": c.description,
                    "evidence": c.rule.evidence,
                    "measurement": matches!(c.rule.expect, checks::Expect::Measure),
                    "hazards": c.rule.hazards,
                });
                writeln!(out, "{v}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { dir, checks } => run_native(dir, &checks),
    }
}

fn run_native(dir: PathBuf, globs: &[String]) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let selected = runner::select(globs)?;
    let (release, kernel) = KernelVersion::running()?;
    let fs = fsdetect::fs_name(&dir).with_context(|| format!("inspecting {}", dir.display()))?;
    let scratch = dir.join("kernel-scope");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let mut out = std::io::stdout().lock();
    let mut emit = |r: &Record| {
        let _ = out.write_all(r.to_line().as_bytes());
    };
    emit(&harness::hello(&release));
    let mut tally = Tally::default();
    let kernel_target = Target {
        fs: None,
        logical_block_size: None,
        dir: scratch,
        device: None,
        owns_machine: false,
        mounts: Vec::new(),
    };
    runner::run_scope(
        &selected,
        Scope::Kernel,
        kernel,
        &kernel_target,
        &mut tally,
        &mut emit,
    );
    // The disk under DIR, when sysfs tells; checks that need it skip otherwise.
    let (device, logical_block_size) = match fsdetect::block_device_of(&dir) {
        Some((node, lbs)) => (node, Some(lbs)),
        None => (None, None),
    };
    let fs_target = Target {
        fs: Some(fs),
        logical_block_size,
        dir,
        device,
        owns_machine: false,
        mounts: Vec::new(),
    };
    runner::run_scope(
        &selected,
        Scope::Fs,
        kernel,
        &fs_target,
        &mut tally,
        &mut emit,
    );
    emit(&tally.summary(started.elapsed()));
    Ok(if tally.0.fail + tally.0.error == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
