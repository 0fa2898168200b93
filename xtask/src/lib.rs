//! `cargo xtask`: the command line over `vm`. It parses, validates and wires; the work is in `vm`
//! and in the harness.

mod bench;
mod ci;
mod cli;
mod fresh_root;
pub mod harness_bin;
mod kernels_cmd;
mod matrix;
mod plan;
mod progress;
mod report_cmd;
mod setup;
mod shard;

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
    match cli::dispatch(cli) {
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
