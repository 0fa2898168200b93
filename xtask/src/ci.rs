//! `cargo xtask ci …`: what a workflow asks of zcmatrix, so that the YAML holds no logic (and no
//! list of kernels) of its own.

use crate::cli::MatrixArgs;
use crate::{exit, UsageError};
use vm::kernel::KernelSpec;
use vm::plan::ShardSpec;
use vm::shard;

/// The shard list for `strategy.matrix`. Never more shards than kernels: a shard is whole
/// kernels' guests, so a runner beyond that would have nothing to boot; and, once the cache's
/// guest-times.json has timed every guest, no more than keep the longest shard as short
/// ([`vm::shard::shard_count`]). Each entry also names the kernels its shard will run, for
/// the shard's kernel cache key: computed as the shard computes them, which agrees while both
/// read the same guest-times.json (in a workflow, the one the plan job took from the last
/// scheduled run that kept one: every shard downloads it from that very run, by its id, into
/// its cache before anything else runs).
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
    let plan = args.plan()?;
    let costs = shard::costs(&plan);
    let n = shard::shard_count(&costs.each, shards as usize) as u32;
    if let Some(why) = fewer_shards(n, shards, plan.kernels.len(), costs.timed) {
        eprintln!("{why}");
    }
    let include: Vec<serde_json::Value> = (1..=n)
        .map(|index| {
            let kernels = shard::kernels_of(&plan, ShardSpec { index, count: n })
                .iter()
                .map(KernelSpec::label)
                .collect::<Vec<_>>()
                .join(" ");
            serde_json::json!({ "shard": format!("{index}/{n}"), "kernels": kernels })
        })
        .collect();
    Ok(serde_json::json!({ "include": include }).to_string())
}

/// Why the plan has `n` shards when `asked` were asked for (None when it has them all): too few
/// kernels, or more shards would not end the run sooner, by the guests' times when `timed`,
/// else because every kernel then counts alike.
fn fewer_shards(n: u32, asked: u32, kernels: usize, timed: bool) -> Option<String> {
    if n >= asked {
        None
    } else if n as usize >= kernels {
        Some(format!(
            "{n} shard(s), not {asked}: the selection has {kernels} kernel(s) and a shard runs \
             whole kernels"
        ))
    } else if timed {
        Some(format!(
            "{n} shard(s), not {asked}: by the guest times of the last run (the cache's \
             guest-times.json), more would not end the run sooner"
        ))
    } else {
        Some(format!(
            "{n} shard(s), not {asked}: not every kernel has a guest time (the cache's \
             guest-times.json), so the {kernels} kernels count alike: {asked} shards would end \
             no sooner than {n} shards of {} kernel(s) each",
            kernels.div_ceil(n.max(1) as usize)
        ))
    }
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
        let (args, shards) = plan_args(args);
        plan_json(&args, shards)
    }

    fn plan_args(args: &[&str]) -> (MatrixArgs, u32) {
        let mut v = vec!["cargo xtask", "ci", "matrix-plan"];
        v.extend(args);
        let cli = crate::Cli::try_parse_from(v).unwrap();
        let crate::cli::Cmd::Ci {
            cmd: crate::cli::CiCmd::MatrixPlan { args, shards },
        } = cli.cmd
        else {
            panic!()
        };
        (args, shards)
    }

    /// The default matrix's arguments, as `test-matrix` alone parses them.
    fn matrix_args() -> MatrixArgs {
        let cli = crate::Cli::try_parse_from(["cargo xtask", "test-matrix"]).unwrap();
        let crate::cli::Cmd::TestMatrix(args) = cli.cmd else {
            panic!()
        };
        args
    }

    #[test]
    fn the_shard_list_is_a_strategy_matrix() {
        // A cache of its own: the split depends on the guest times kept there.
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path().to_str().unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&json(&["--shards", "3", "--cache", cache]).unwrap()).unwrap();
        let include = v["include"].as_array().unwrap();
        let shards: Vec<&str> = include
            .iter()
            .map(|e| e["shard"].as_str().unwrap())
            .collect();
        assert_eq!(shards, ["1/3", "2/3", "3/3"]);
        // Every default kernel in exactly one shard's list.
        let mut listed: Vec<&str> = include
            .iter()
            .flat_map(|e| e["kernels"].as_str().unwrap().split(' '))
            .collect();
        listed.sort_unstable();
        let default = matrix_args().plan().unwrap();
        let mut all: Vec<String> = default.kernels.iter().map(KernelSpec::label).collect();
        all.sort_unstable();
        assert_eq!(listed, all);
        // Two kernels: two shards at most, one kernel each (in the order the shards run them:
        // plan order with no times, the longest first with them).
        let two = [
            "--kernel", "6.1", "--kernel", "5.10", "--shards", "4", "--cache", cache,
        ];
        assert_eq!(
            json(&two).unwrap(),
            r#"{"include":[{"kernels":"6.1","shard":"1/2"},{"kernels":"5.10","shard":"2/2"}]}"#
        );
        let plan = plan_args(&two).0.plan().unwrap();
        let key = vm::guest_times::key(&plan);
        let mut times = vm::guest_times::GuestTimes::default();
        times.insert(&plan.kernels[0], &key, 30_000);
        times.insert(&plan.kernels[1], &key, 31_000);
        times.save(&plan.cache.join(vm::guest_times::FILE)).unwrap();
        assert_eq!(
            json(&two).unwrap(),
            r#"{"include":[{"kernels":"5.10","shard":"1/2"},{"kernels":"6.1","shard":"2/2"}]}"#
        );
        // One kernel: one shard, 1/1 (its artifact is unpacked flat; `report merge` copes).
        assert_eq!(
            json(&["--kernel", "6.1", "--shards", "4", "--cache", cache]).unwrap(),
            r#"{"include":[{"kernels":"6.1","shard":"1/1"}]}"#
        );
    }

    /// What each shard of the plan runs is what its entry says.
    #[test]
    fn each_entry_names_the_kernels_its_shard_runs() {
        let args = matrix_args();
        let plan = args.plan().unwrap();
        let v: serde_json::Value = serde_json::from_str(&plan_json(&args, 3).unwrap()).unwrap();
        for e in v["include"].as_array().unwrap() {
            let spec = ShardSpec::parse(e["shard"].as_str().unwrap()).unwrap();
            let ks: Vec<String> = shard::kernels_of(&plan, spec)
                .iter()
                .map(KernelSpec::label)
                .collect();
            assert_eq!(e["kernels"], ks.join(" "));
        }
    }

    /// The message says what made the count: the kernels, the times, or their absence.
    #[test]
    fn fewer_shards_say_why() {
        assert_eq!(fewer_shards(4, 4, 6, false), None);
        let few = fewer_shards(2, 4, 2, true).unwrap();
        assert!(few.contains("has 2 kernel(s)"), "{few}");
        let timed = fewer_shards(3, 6, 6, true).unwrap();
        assert!(timed.contains("by the guest times"), "{timed}");
        let untimed = fewer_shards(3, 4, 6, false).unwrap();
        assert!(
            untimed.contains("not every kernel has a guest time"),
            "{untimed}"
        );
        assert!(
            untimed.contains("3 shards of 2 kernel(s) each"),
            "{untimed}"
        );
        assert!(!untimed.contains("by the guest times"), "{untimed}");
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
