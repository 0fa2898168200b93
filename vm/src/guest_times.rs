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

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_atomically(path, serde_json::to_string_pretty(self)?.as_bytes())
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

/// Joins the guest-times.json files that runs (the shards of one run) left beside their
/// reports into `into`, for the next run's cache: a later file's entry wins a key met twice
/// (shards of one run never time one guest twice). Returns how many guests it holds.
pub fn join(files: &[PathBuf], into: &Path) -> anyhow::Result<usize> {
    let mut all = GuestTimes::default();
    for f in files {
        let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let one: GuestTimes =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        all.extend(one);
    }
    all.save(into)?;
    Ok(all.0.len())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
