//! `cargo xtask`: the command line over `vm`. It parses, validates and wires; the work is in `vm`
//! and in the harness.

mod bench;
mod ci;
mod cli;
mod docs_cmd;
mod fresh_root;
pub mod harness_bin;
mod kernels_cmd;
mod matrix;
mod progress;
mod report_cmd;
mod setup;

use std::path::{Path, PathBuf};

use clap::Parser;

pub use cli::Cli;

/// Exit statuses a script can branch on; the policy lives with the run, in `vm::matrix`.
pub use vm::matrix::exit;

/// Errors of the user's making: exit 2, nothing booted.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The plan's refusals are the user's doing.
impl From<vm::plan::PlanError> for UsageError {
    fn from(e: vm::plan::PlanError) -> Self {
        UsageError(e.0)
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Everything expensive (kernels, images, initramfs) is kept here between runs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("ZCMATRIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/zcmatrix-cache"))
}

/// The committed pins, or another lock file named by `ZCMATRIX_LOCK` (to try other builds
/// without touching the committed one).
pub fn lock_path() -> PathBuf {
    std::env::var_os("ZCMATRIX_LOCK")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("kernels.lock"))
}

/// Runs the command line and returns the process exit status.
pub fn run<I, S>(args: I) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                exit::USAGE
            } else {
                exit::INFRA
            }
        }
    }
}

/// Runs a parsed command: here, above every command's module, so that the command line's types
/// (`cli`) import none of the commands.
fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    use cli::{CiCmd, Cmd, KernelsCmd};
    match cli.cmd {
        Cmd::TestMatrix(args) => matrix::run(&args.plan()?),
        Cmd::Kernels {
            cmd: KernelsCmd::Update { kernels },
        } => kernels_cmd::update(&kernels),
        Cmd::Kernels {
            cmd: KernelsCmd::List,
        } => kernels_cmd::list(),
        Cmd::Report { out, cmd } => report_cmd::run(&out, cmd),
        Cmd::Ci {
            cmd: CiCmd::MatrixPlan { args, shards },
        } => ci::matrix_plan(&args, shards),
        Cmd::Ci { cmd: CiCmd::Mirror } => ci::mirror(),
        Cmd::Ci {
            cmd: CiCmd::FreshRoot(args),
        } => fresh_root::run(&args),
        Cmd::Setup { check } => setup::run(check),
        Cmd::Bench { reps, matrix_reps } => bench::run(reps.max(1), matrix_reps),
        Cmd::Docs => docs_cmd::run(),
    }
}

#[cfg(test)]
mod readme_tests {
    /// Figures from one run drift as the code and the machine change: each figure the README
    /// or docs/ quote sits in a paragraph that says when it was measured and with which command.
    #[test]
    fn figures_in_the_docs_are_dated_with_their_command() {
        let root = super::workspace_root();
        let mut files = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
        let texts: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
            .collect();
        for figure in [
            "| read\\_write µs/MiB |",
            "1025 on DAX",
            "146 % of read+write",
            "~210 µs/MiB",
            "sendfile costs 13–32 %",
            "30 to 36 natively",
            "14 of 4 KiB",
        ] {
            let (file, paragraphs, i) = texts
                .iter()
                .find_map(|(file, text)| {
                    let paragraphs: Vec<&str> = text.split("\n\n").collect();
                    let i = paragraphs.iter().position(|p| p.contains(figure))?;
                    Some((file, paragraphs, i))
                })
                .unwrap_or_else(|| panic!("{figure:?} is no longer in README.md or docs/"));
            // A table's date and command are in the paragraph before it.
            let around = format!("{}\n{}", paragraphs[i.saturating_sub(1)], paragraphs[i]);
            assert!(
                around.contains("2026-") && around.contains('`'),
                "{figure:?} in {file} is not dated with the command that made it:\n{}",
                paragraphs[i]
            );
        }
    }
}
