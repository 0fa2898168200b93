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
    },
}

pub fn run(out: &Path, cmd: Option<ReportCmd>) -> anyhow::Result<u8> {
    match cmd {
        None => rerender(out),
        Some(ReportCmd::Diff { old, new, md }) => diff(&old, &new, md),
    }
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

fn diff(old: &Path, new: &Path, md: bool) -> anyhow::Result<u8> {
    let (old, new) = (load(old)?, load(new)?);
    let d = zcmatrix_report::diff::Diff::new(&old, &new);
    print!("{}", if md { d.markdown() } else { d.text() });
    Ok(if d.is_empty() { exit::OK } else { 1 })
}
