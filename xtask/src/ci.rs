//! `cargo xtask ci …`: what a workflow asks of zcmatrix, so that the YAML holds no logic (and no
//! list of kernels) of its own.

use crate::cli::MatrixArgs;
use crate::plan::Plan;
use crate::{exit, UsageError};

/// The shard list for `strategy.matrix`. Never more shards than kernels: a shard is whole
/// kernels' guests, so a runner beyond that would have nothing to boot.
pub fn matrix_plan(args: &MatrixArgs, shards: u32) -> anyhow::Result<u8> {
    println!("{}", plan_json(args, shards)?);
    Ok(exit::OK)
}

fn plan_json(args: &MatrixArgs, shards: u32) -> Result<String, UsageError> {
    if args.shard.is_some() {
        return Err(UsageError(
            "--shard is for test-matrix; matrix-plan takes --shards N".into(),
        ));
    }
    if shards == 0 {
        return Err(UsageError("--shards must be at least 1".into()));
    }
    let plan = Plan::from_args(args)?;
    let n = shards.min(plan.kernels.len().max(1) as u32);
    if n < shards {
        eprintln!(
            "{n} shard(s), not {shards}: the selection has {} kernel(s) and a shard runs whole \
             kernels",
            plan.kernels.len()
        );
    }
    let include: Vec<serde_json::Value> = (1..=n)
        .map(|k| serde_json::json!({ "shard": format!("{k}/{n}") }))
        .collect();
    Ok(serde_json::json!({ "include": include }).to_string())
}

/// What a run without a Debian mirror is told, in Markdown for a job summary.
const NO_MIRROR: &str = "### zcmatrix: no Debian mirror\n\n\
This runner has no Debian apt sources to take the kernels' archive from. Set the repository \
variable `ZCMATRIX_DEBIAN_MIRROR` (Settings → Secrets and variables → Actions → Variables) to \
the URL of a Debian archive mirror (the one ending in `/debian`), and run the workflow again.\n";

pub fn mirror() -> anyhow::Result<u8> {
    match vm::apt::Mirror::discover() {
        Ok(m) => {
            println!("Debian mirror: {} (security: {})", m.main, m.security);
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(summary)?;
                f.write_all(NO_MIRROR.as_bytes())?;
            }
            Ok(exit::INFRA)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn json(args: &[&str]) -> Result<String, UsageError> {
        let mut v = vec!["cargo xtask", "ci", "matrix-plan"];
        v.extend(args);
        let cli = crate::Cli::try_parse_from(v).unwrap();
        let crate::cli::Cmd::Ci {
            cmd: crate::cli::CiCmd::MatrixPlan { args, shards },
        } = cli.cmd
        else {
            panic!()
        };
        plan_json(&args, shards)
    }

    #[test]
    fn the_shard_list_is_a_strategy_matrix() {
        assert_eq!(
            json(&["--shards", "3"]).unwrap(),
            r#"{"include":[{"shard":"1/3"},{"shard":"2/3"},{"shard":"3/3"}]}"#
        );
        // Two kernels: two shards at most.
        assert_eq!(
            json(&["--kernel", "6.1", "--kernel", "5.10", "--shards", "4"]).unwrap(),
            r#"{"include":[{"shard":"1/2"},{"shard":"2/2"}]}"#
        );
    }

    #[test]
    fn a_missing_mirror_names_the_variable_to_set() {
        assert!(NO_MIRROR.contains("`ZCMATRIX_DEBIAN_MIRROR`"));
        // This host either has Debian sources (0) or has none (3): never a usage error.
        let code = crate::run(["cargo xtask", "ci", "mirror"]);
        assert!(code == exit::OK || code == exit::INFRA, "{code}");
    }

    #[test]
    fn bad_selections_are_usage_errors() {
        assert!(json(&["--shards", "0"]).is_err());
        assert!(json(&["--shards", "2", "--fs", "zfs"]).is_err());
        assert!(json(&["--shards", "2", "--shard", "1/2"]).is_err());
        assert_eq!(
            crate::run(["cargo xtask", "ci", "matrix-plan", "--shards", "0"]),
            exit::USAGE
        );
        assert_eq!(
            crate::run(["cargo xtask", "ci", "matrix-plan", "--shards", "2"]),
            exit::OK
        );
    }
}
