//! `cargo xtask`: the command line over `vm`. It parses, validates and wires; the work is in `vm`
//! and in the harness.

mod cli;
mod harness_bin;
mod kernels_cmd;
mod matrix;
mod plan;
mod progress;
mod report_cmd;
mod setup;

use std::path::{Path, PathBuf};

use clap::Parser;

pub use cli::Cli;

/// Exit statuses a script can branch on. When several apply, the highest in this order wins:
/// `INFRA`, `GUEST_DIED`, `CHECK_FAILED`, `OK` (see `matrix::exit_status`).
pub mod exit {
    /// Every guest finished cleanly and no result is `fail` or `error` (`xfail`, `xpass`,
    /// `skip` and `info` do not fail a run).
    pub const OK: u8 = 0;
    /// A result is `fail` (the kernel contradicts a rule) or `error` (a probe could not finish).
    pub const CHECK_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// zcmatrix could not give the checks the machine they were promised: a kernel could not be
    /// fetched or built, a guest could not be started or never reached the harness, or the
    /// guest's set-up failed (a mount, a module, swap, loopback, the harness itself). Rerun
    /// after fixing the host; the report holds what was measured.
    pub const INFRA: u8 = 3;
    /// A guest timed out or panicked after the harness had started: the kernel (or a probe)
    /// misbehaved mid-run. Results measured before are in the report; console.log says how.
    pub const GUEST_DIED: u8 = 4;
}

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
