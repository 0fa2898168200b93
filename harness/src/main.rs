//! `harness` as PID 1 in a guest, or `harness run --dir DIR` / `harness list` on any Linux host.

mod native;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::checks;

#[derive(Parser)]
#[command(about = "zcmatrix checks, natively on this host (as PID 1 it runs the guest manifest)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run checks against each DIR on the running kernel: a table on a terminal, one JSON
    /// record a line otherwise (or with --json); --out writes the report in every format.
    Run {
        /// Directory on a filesystem under test; repeatable, one per filesystem to test.
        #[arg(long = "dir", required = true)]
        dirs: Vec<PathBuf>,
        /// Only checks whose id matches this glob (repeatable), e.g. 'dio.*'.
        #[arg(long = "check")]
        checks: Vec<String>,
        /// JSON lines even on a terminal.
        #[arg(long, conflicts_with = "ktap")]
        json: bool,
        /// KTAP (the kernel's test-result format) on stdout, for kselftest's, KernelCI's and
        /// LKFT's runners: a test per directory, the check ids as its subtests.
        #[arg(long)]
        ktap: bool,
        /// Write report.json, report.md, report.html and junit.xml here: one cell per DIR.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `full` runs every check at every size; `quick` leaves out what the default matrix
        /// of guests has no time for. A host is fast enough for everything.
        #[arg(long, value_enum, default_value = "full")]
        profile: ProfileArg,
        /// Judge the observations by the rules of another kernel series (`7.2`, `5.10.160`)
        /// instead of the running kernel's: to study this kernel against another's
        /// expectations. Results that differ are `fail`.
        #[arg(long)]
        judge_as: Option<String>,
    },
    /// List the checks, one JSON object a line: the catalogue (`zcmatrix_protocol::catalogue::CheckInfo`:
    /// id, scope, description, evidence, hazards, requirements, targets).
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Quick,
    Full,
}

impl From<ProfileArg> for checks::Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Quick => checks::Profile::Quick,
            ProfileArg::Full => checks::Profile::Full,
        }
    }
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
            for c in checks::catalogue() {
                writeln!(out, "{}", serde_json::to_string(&c)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            dirs,
            checks,
            json,
            ktap,
            out,
            profile,
            judge_as,
        } => {
            if let Some(series) = &judge_as {
                harness::runner::judge_as(series)?;
            }
            // Scripts and tests read the records: JSON unless a person is looking.
            let format = if ktap {
                native::Format::Ktap
            } else if json || !std::io::stdout().is_terminal() {
                native::Format::Json
            } else {
                native::Format::Table
            };
            let code = native::run(&dirs, &checks, profile.into(), format, out.as_deref())?;
            Ok(ExitCode::from(code))
        }
    }
}
