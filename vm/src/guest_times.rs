//! How long each kernel's guest took the last time it completed a selection, kept in the cache
//! (guest-times.json): a run starts its longest guests first, and `--shard` balances by it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zcmatrix_protocol::{FsTarget, Profile};

use crate::kernel::KernelSpec;
use crate::plan::Plan;

/// The file's name: in the cache, the wall time of each kernel's last complete guest; beside a
/// report, what that run measured.
pub const FILE: &str = "guest-times.json";

/// What, besides the kernel, makes a guest long: its filesystems and check filters.
pub fn key(plan: &Plan) -> String {
    guest_key(&plan.targets(), &plan.checks, plan.profile)
}

fn guest_key(targets: &[FsTarget], checks: &[String], profile: Profile) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|t| match t.logical_block_size {
            Some(b) => format!("{}/{b}", t.fs),
            None => t.fs.clone(),
        })
        .collect();
    // Quick keeps the keys earlier runs wrote.
    match profile {
        Profile::Quick => format!("[{}] [{}]", targets.join(" "), checks.join(" ")),
        Profile::Full => format!("[{}] [{}] full", targets.join(" "), checks.join(" ")),
    }
}

/// Milliseconds each kernel's guest took last time it completed, by kernel label and [`key`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GuestTimes(BTreeMap<String, u64>);

impl GuestTimes {
    /// The times kept in `path` (none when the file is missing or unreadable: they are only a
    /// hint).
    pub fn load(path: &Path) -> GuestTimes {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The times kept in `path`, or why they cannot be read: for a file that should be there
    /// (a shard's, a previous run's), where [`GuestTimes::load`] would quietly find none.
    pub fn read(path: &Path) -> anyhow::Result<GuestTimes> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::cache::write_atomically(path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// How long `kernel`'s guest took for the selection of `key`, if it was timed so.
    pub fn get(&self, kernel: &KernelSpec, key: &str) -> Option<u64> {
        self.0.get(&entry(kernel, key)).copied()
    }

    pub fn insert(&mut self, kernel: &KernelSpec, key: &str, ms: u64) {
        self.0.insert(entry(kernel, key), ms);
    }

    /// `other`'s times, replacing any of the same kernel and selection.
    pub fn extend(&mut self, other: GuestTimes) {
        self.0.extend(other.0);
    }

    /// How many guests (kernel and selection) are timed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Indices into `kernels`, the longest first; a kernel never timed counts as the longest
    /// (it may well be), in plan order among themselves.
    pub fn longest_first(&self, kernels: &[KernelSpec], key: &str) -> Vec<usize> {
        let mut order: Vec<usize> = (0..kernels.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.get(&kernels[i], key).unwrap_or(u64::MAX)));
        order
    }
}

fn entry(kernel: &KernelSpec, key: &str) -> String {
    format!("{} {key}", kernel.label())
}

/// How long each of the plan's kernels' guests took the last time it completed the plan's
/// targets and checks, `None` for a kernel never timed so: the expected cost that `--shard`
/// balances.
pub fn expected_ms(plan: &Plan) -> Vec<Option<u64>> {
    let times = GuestTimes::load(&plan.cache.join(FILE));
    let key = key(plan);
    plan.kernels.iter().map(|k| times.get(k, &key)).collect()
}

/// What [`join`] made of its files.
#[derive(Debug, Default)]
pub struct Joined {
    pub times: GuestTimes,
    /// Each file that could not be read or parsed, and why; its times are left out (times are
    /// a hint, so a bad file costs only its hint).
    pub skipped: Vec<anyhow::Error>,
}

/// Lays the guest-times.json files that runs (the shards of one run) left beside their
/// reports over `previous` (an earlier run's times), for the next run's cache: a later file's
/// entry wins a key met twice, so this run's time replaces the previous one and a guest that
/// did not complete this time keeps its last known time (shards of one run never time one
/// guest twice). `--shard` sizes by times only once every kernel has one, so without the
/// previous times one guest that failed to complete would leave the next run unsized.
pub fn join(previous: GuestTimes, files: &[PathBuf]) -> Joined {
    let mut joined = Joined {
        times: previous,
        skipped: Vec::new(),
    };
    for f in files {
        match GuestTimes::read(f) {
            Ok(one) => joined.times.extend(one),
            Err(e) => joined.skipped.push(e),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_guests_start_first_and_new_ones_before_them() {
        let k = |s: &str| KernelSpec::parse(s).unwrap();
        let kernels = [k("5.10"), k("6.1"), k("6.12"), k("7.2")];
        let mut t = GuestTimes::default();
        t.insert(&kernels[0], "K", 54_000);
        t.insert(&kernels[1], "K", 77_000);
        t.insert(&kernels[3], "K", 38_000);
        t.insert(&kernels[2], "other checks", 1);
        // 6.12 was never timed with these checks: it goes first.
        assert_eq!(t.longest_first(&kernels, "K"), [2, 1, 0, 3]);
        assert_eq!(t.longest_first(&kernels, "L"), [0, 1, 2, 3]);
        // The file's entries keep the form earlier runs wrote.
        assert!(t.0.contains_key("5.10 K"));
    }

    /// This run's shards over the previous run's times: this run's time wins, a guest that did
    /// not complete this time keeps its previous one, and a bad file is skipped, saying which.
    #[test]
    fn this_runs_times_win_and_a_missing_guest_keeps_the_previous() {
        let k = |s: &str| KernelSpec::parse(s).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut previous = GuestTimes::default();
        previous.insert(&k("5.10"), "K", 50_000);
        previous.insert(&k("6.1"), "K", 60_000);
        let mut shard = GuestTimes::default();
        shard.insert(&k("6.1"), "K", 61_000);
        shard.insert(&k("7.2"), "K", 72_000);
        let (good, bad) = (dir.path().join("good.json"), dir.path().join("bad.json"));
        shard.save(&good).unwrap();
        fs::write(&bad, "{not json").unwrap();

        let joined = join(previous, &[bad.clone(), good]);
        let t = &joined.times;
        assert_eq!(t.get(&k("6.1"), "K"), Some(61_000), "this run's time wins");
        assert_eq!(t.get(&k("5.10"), "K"), Some(50_000), "not completed: kept");
        assert_eq!(t.get(&k("7.2"), "K"), Some(72_000));
        assert_eq!(t.len(), 3);
        assert_eq!(joined.skipped.len(), 1);
        let why = format!("{:#}", joined.skipped[0]);
        assert!(why.contains(&bad.display().to_string()), "{why}");
    }

    #[test]
    fn the_key_names_targets_with_their_geometry_and_the_checks() {
        let t = |fs: &str, lbs| FsTarget {
            fs: fs.into(),
            logical_block_size: lbs,
            ..FsTarget::default()
        };
        let targets = [t("ext4", Some(512)), t("tmpfs", None)];
        let checks = ["dio.*".to_string()];
        assert_eq!(
            guest_key(&targets, &checks, Profile::Quick),
            "[ext4/512 tmpfs] [dio.*]"
        );
        assert_eq!(
            guest_key(&targets, &checks, Profile::Full),
            "[ext4/512 tmpfs] [dio.*] full"
        );
    }
}
