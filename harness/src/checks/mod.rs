//! Checks declared as data: each family module exports a table of [`Check`]s, in the spirit of
//! LTP's `struct tst_test`: id, scope, description, rule with its evidence, and the probe.
//!
//! A probe never prints, exits or judges: it returns what it observed, and the runner compares
//! that with the rule.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zcmatrix_protocol::Scope;

use crate::kver::KernelVersion;

pub mod cow;
pub mod dio;
pub mod mmap;
pub mod sendfile;
pub mod splice;
pub mod tee;
pub mod vmsplice;

/// Every check this harness knows, in a stable order.
pub fn all() -> Vec<&'static Check> {
    [
        dio::CHECKS,
        mmap::CHECKS,
        sendfile::CHECKS,
        splice::CHECKS,
        tee::CHECKS,
        vmsplice::CHECKS,
    ]
    .into_iter()
    .chain(cow::CHECKS.iter().copied())
    .flatten()
    .collect()
}

pub struct Check {
    /// `family.name`; never renamed once published, reports are compared across runs by it.
    pub id: &'static str,
    pub variant: Option<&'static str>,
    pub scope: Scope,
    pub description: &'static str,
    pub rule: Rule,
    pub probe: fn(&Ctx) -> anyhow::Result<Observation>,
}

impl Check {
    pub fn full_id(&self) -> String {
        zcmatrix_protocol::full_id(self.id, self.variant)
    }
}

/// What the kernel is expected to do, and why we believe so.
#[derive(Clone, Copy)]
pub struct Rule {
    pub expect: Expect,
    /// A man page section or a commit title: where a reader can verify the rule.
    pub evidence: &'static str,
}

/// Accepted observations. Written down before anything runs, never derived from an observation.
/// Each value is a glob (`mem=* offset=*`); `{lbs}` stands for the disk's logical block size,
/// a property of the machine the rule speaks about, not of the observation.
#[derive(Clone, Copy)]
pub enum Expect {
    /// The same on every kernel and filesystem.
    Always(&'static [&'static str]),
    /// Changed in a kernel release.
    Since {
        version: KernelVersion,
        before: &'static [&'static str],
        since: &'static [&'static str],
    },
    /// Differs by filesystem; `otherwise` for those not listed.
    ByFs {
        cases: &'static [(&'static str, Expect)],
        otherwise: &'static Expect,
    },
}

impl Expect {
    /// The observations accepted on this kernel and filesystem.
    pub fn accepted(&self, kernel: KernelVersion, fs: Option<&str>) -> &'static [&'static str] {
        match self {
            Expect::Always(v) => v,
            Expect::Since {
                version,
                before,
                since,
            } => {
                if kernel >= *version {
                    since
                } else {
                    before
                }
            }
            Expect::ByFs { cases, otherwise } => cases
                .iter()
                .find(|(name, _)| Some(*name) == fs)
                .map(|(_, e)| e)
                .unwrap_or(otherwise)
                .accepted(kernel, fs),
        }
    }
}

/// The accepted values with `{lbs}` filled in, in the vocabulary of `observed`.
pub fn instantiate(accepted: &[&str], logical_block_size: Option<u32>) -> Vec<String> {
    let lbs = logical_block_size.map_or("none".to_string(), |b| b.to_string());
    accepted.iter().map(|a| a.replace("{lbs}", &lbs)).collect()
}

/// Whether `observed` is one of `accepted` (globs).
pub fn matches(accepted: &[String], observed: &str) -> bool {
    accepted.iter().any(|a| {
        glob::Pattern::new(a)
            .map(|p| p.matches(observed))
            .unwrap_or(a == observed)
    })
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Observation {
    /// `value` is compared with the rule; `detail` explains it to a human.
    Saw { value: String, detail: String },
    /// The probe could not run here (a feature the kernel lacks, a precondition that failed).
    Skip { reason: String },
}

impl Observation {
    pub fn saw(value: impl Into<String>, detail: impl Into<String>) -> Self {
        Observation::Saw {
            value: value.into(),
            detail: detail.into(),
        }
    }
    pub fn skip(reason: impl Into<String>) -> Self {
        Observation::Skip {
            reason: reason.into(),
        }
    }
}

/// Where and on what a probe runs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub kernel: KernelVersion,
    /// For `fs` scope the mounted filesystem under test; for `kernel` scope a scratch directory.
    pub dir: PathBuf,
    pub fs: Option<String>,
    /// Logical block size of the disk under `dir`, when the guest knows it.
    pub logical_block_size: Option<u32>,
    /// The block device under `dir`, when there is one and the harness knows it.
    pub device: Option<PathBuf>,
    /// True in a guest, where probes may change machine-wide settings.
    pub owns_machine: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in all() {
            let id = c.full_id();
            assert!(seen.insert(id.clone()), "duplicate id {id}");
            let (family, name) = c.id.split_once('.').expect("family.name");
            assert!(!family.is_empty() && !name.is_empty(), "{id}");
            assert!(
                c.id.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._".contains(ch)),
                "{id}"
            );
            assert!(
                !c.description.is_empty() && !c.rule.evidence.is_empty(),
                "{id}"
            );
        }
    }

    #[test]
    fn accepted_values_are_globs_with_the_block_size_filled_in() {
        let acc = instantiate(&["offset={lbs} len={lbs}", "mem=* offset=*"], Some(4096));
        assert_eq!(acc[0], "offset=4096 len=4096");
        assert!(matches(&acc, "offset=4096 len=4096"));
        assert!(!matches(&acc, "offset=512 len=512"));
        assert!(matches(&acc, "mem=512 offset=4096"));
        assert!(!matches(&acc, "unsupported"));
        assert!(matches(&instantiate(&["EINVAL"], None), "EINVAL"));
    }

    #[test]
    fn expectations_follow_version_and_fs() {
        // tmpfs opens O_DIRECT from 6.6; everything else always.
        const E: Expect = dio::DIRECT_OPEN;
        assert_eq!(
            E.accepted(KernelVersion::new(6, 1, 0), Some("tmpfs")),
            ["EINVAL"]
        );
        assert_eq!(
            E.accepted(KernelVersion::new(6, 12, 0), Some("tmpfs")),
            ["ok"]
        );
        assert_eq!(
            E.accepted(KernelVersion::new(5, 10, 0), Some("ext4")),
            ["ok"]
        );
    }
}
