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
