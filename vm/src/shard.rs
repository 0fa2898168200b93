//! `--shard K/N`: which kernels' guests shard K of N runs. The unit is a guest (one kernel with
//! every cell of the selection), not a single cell: cells of one kernel share a guest, and some
//! checks (cfr.cross_fs) look at every filesystem of their guest at once, so splitting a
//! kernel's cells over guests would change results, and merged shards must equal one run.

use crate::guest_times;
use crate::kernel::KernelSpec;
use crate::plan::{Plan, ShardSpec};
use crate::report::{KernelFile, RunInfo, Selection, Shard};

/// What one run of a plan boots, and what its report records about the run.
#[derive(Debug, Clone)]
pub struct Slice {
    /// The plan's kernels, or its shard's, in plan order.
    pub kernels: Vec<KernelSpec>,
    /// The report's `run` (selection, shard, lock, version), so that shard reports can be
    /// merged and checked against each other.
    pub run: RunInfo,
}

/// The kernels the plan's run boots (all of them, or its shard's) and the report's `run`.
pub fn slice(plan: &Plan) -> Slice {
    match plan.shard {
        None => Slice {
            kernels: plan.kernels.clone(),
            run: run_info(plan, None),
        },
        Some(s) => {
            let kernels = kernels_of(plan, s);
            let run = run_info(plan, Some((s, &kernels)));
            Slice { kernels, run }
        }
    }
}

/// Splits units of the given costs over `count` shards: the costliest first, each to the shard
/// with the least so far (the lower index on a tie), the classic longest-processing-time rule,
/// within 4/3 of the best split. Each shard's units are in plan order. Deterministic: it depends
/// only on the costs and their order.
pub fn assign(costs: &[u64], count: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    // A stable sort keeps plan order among equal costs.
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    let mut shards = vec![Vec::new(); count];
    let mut load = vec![0u64; count];
    for i in order {
        let s = (0..count)
            .min_by_key(|&s| (load[s], s))
            .expect("count >= 1");
        load[s] += costs[i];
        shards[s].push(i);
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    shards
}

/// How many of at most `max` shards to use: the fewest whose longest shard is no longer than
/// with `max` (the run takes as long, on fewer runners). With equal costs (no times yet) `max`
/// shards would hold ⌈units / max⌉ units at most, so it is the fewest shards that hold that many
/// each: one unit a shard when there are no more units than `max`, else e.g. six units on at
/// most four shards make three shards of two. With the last run's times, short guests share a
/// shard while the longest runs alone.
pub fn shard_count(costs: &[u64], max: usize) -> usize {
    let max = max.min(costs.len()).max(1);
    let longest = |n: usize| -> u64 {
        assign(costs, n)
            .iter()
            .map(|s| s.iter().map(|&i| costs[i]).sum::<u64>())
            .max()
            .unwrap_or(0)
    };
    let best = longest(max);
    (1..=max).find(|&n| longest(n) <= best).unwrap_or(max)
}

/// The expected cost of each of a plan's kernels, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costs {
    pub each: Vec<u64>,
    /// Whether they are the guests' times (else cell counts, equal for every kernel): what
    /// decides how many shards end the run as soon, and so what explains that count.
    pub timed: bool,
}

/// Each kernel's expected cost: how long its guest took last time with the same filesystems and
/// checks (the cache's guest-times.json) when every kernel has been timed so; otherwise its
/// number of cells (then equal for all, since every guest has every target). Times of some
/// kernels and counts of others would not compare.
pub fn costs(plan: &Plan) -> Costs {
    let ms = guest_times::expected_ms(plan);
    if ms.iter().all(Option::is_some) {
        Costs {
            each: ms
                .into_iter()
                .map(|m| m.unwrap_or_default().max(1))
                .collect(),
            timed: true,
        }
    } else {
        Costs {
            each: vec![plan.targets().len() as u64; plan.kernels.len()],
            timed: false,
        }
    }
}

/// The kernels shard `s` runs, in plan order.
pub fn kernels_of(plan: &Plan, s: ShardSpec) -> Vec<KernelSpec> {
    assign(&costs(plan).each, s.count as usize)[s.index as usize - 1]
        .iter()
        .map(|&i| plan.kernels[i].clone())
        .collect()
}

/// What the report records about the run, so that `report merge` can tell shards of one run
/// from anything else.
fn run_info(plan: &Plan, shard: Option<(ShardSpec, &[KernelSpec])>) -> RunInfo {
    RunInfo {
        selection: Selection {
            kernels: plan.kernels.iter().map(KernelSpec::label).collect(),
            filesystems: plan.filesystems.clone(),
            geometries: plan.geometries.clone(),
            checks: plan.checks.clone(),
            memory_mb: plan.memory_mb,
            kernel_args: plan.kernel_args.clone(),
            profile: plan.profile,
        },
        shard: shard.map(|(s, ks)| Shard {
            index: s.index,
            count: s.count,
            kernels: ks.iter().map(KernelSpec::label).collect(),
        }),
        lock_sha256: crate::kernel::sha256_file(&plan.lock).ok(),
        zcmatrix_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_files: plan
            .kernels
            .iter()
            .flat_map(|k| {
                k.files().into_iter().map(move |f| KernelFile {
                    kernel: k.label(),
                    path: f.display().to_string(),
                    sha256: crate::kernel::sha256_file(&f).unwrap_or_default(),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_in_exactly_one_shard_and_the_split_is_deterministic() {
        let cases: Vec<Vec<u64>> = vec![
            vec![],
            vec![7],
            vec![7, 7, 7, 7],
            vec![54_000, 77_000, 90_000, 38_000],
            (1..=23).map(|i| (i * 7919) % 101 + 1).collect(),
        ];
        for costs in &cases {
            for n in 1..=6 {
                let a = assign(costs, n);
                assert_eq!(a.len(), n);
                let mut all: Vec<usize> = a.iter().flatten().copied().collect();
                all.sort_unstable();
                assert_eq!(all, (0..costs.len()).collect::<Vec<_>>(), "{costs:?} / {n}");
                assert_eq!(a, assign(costs, n), "deterministic");
                for s in &a {
                    assert!(s.windows(2).all(|w| w[0] < w[1]), "plan order in a shard");
                }
            }
        }
    }

    #[test]
    fn shards_are_balanced_by_cost() {
        // The greedy rule leaves no shard more than the costliest unit above the lightest.
        let costs: Vec<u64> = (1..=23).map(|i| (i * 7919) % 101 + 1).collect();
        for n in 1..=6 {
            let loads: Vec<u64> = assign(&costs, n)
                .iter()
                .map(|s| s.iter().map(|&i| costs[i]).sum())
                .collect();
            let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            assert!(hi - lo <= *costs.iter().max().unwrap(), "{loads:?}");
        }
        // Four kernels of which one takes as long as the other three: it gets a shard alone.
        assert_eq!(assign(&[30, 10, 10, 10], 2), [vec![0], vec![1, 2, 3]]);
        // Equal costs (no times yet): one kernel each, in plan order; the rest empty.
        assert_eq!(assign(&[1, 1], 3), [vec![0], vec![1], vec![]]);
        assert_eq!(assign(&[1, 1, 1, 1], 2), [vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn shards_are_as_few_as_keep_the_longest_shard() {
        // No times yet: one kernel a shard, up to the number asked for.
        assert_eq!(shard_count(&[6; 6], 6), 6);
        // Six equal guests on four shards would leave two with two guests: three shards of two
        // end as soon.
        assert_eq!(shard_count(&[6; 6], 4), 3);
        assert_eq!(shard_count(&[6; 2], 6), 2);
        assert_eq!(shard_count(&[], 6), 1);
        // The default full matrix as measured: four x86_64 guests of 8-11 min and two emulated
        // ones of 40 and 45: the four share two shards and the run takes as long.
        let full = [540, 600, 660, 480, 2400, 2700];
        assert_eq!(shard_count(&full, 6), 3);
        let a = assign(&full, 3);
        assert_eq!(a, [vec![5], vec![4], vec![0, 1, 2, 3]]);
        // A guest longer than all others together: it alone, the rest on one.
        assert_eq!(shard_count(&[10, 10, 100], 3), 2);
    }
}
