//! Checks declared as data: each family module exports a table of [`Check`]s, in the spirit of
//! LTP's `struct tst_test`: id, scope, description, rule with its evidence, and the probe.
//!
//! A probe never prints, exits or judges: it returns what it observed, or [`Stop`]s (LTP's TCONF
//! and TBROK), and the runner compares the observation with the rule.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zcmatrix_protocol::catalogue::{CheckInfo, PagesUpTo, SettingInfo};
pub use zcmatrix_protocol::Measure;
pub use zcmatrix_protocol::Profile;
use zcmatrix_protocol::Scope;

use crate::kver::KernelVersion;

pub mod cfr;
pub mod common;
pub mod cost;
pub mod cow;
pub mod dax;
pub mod dio;
pub mod mmap;
pub mod net;
pub mod overlay;
pub mod reflink;
pub mod sendfile;
pub mod splice;
pub mod tee;
pub mod uring;
pub mod vmsplice;

mod rule;

pub use rule::{base_target, Expect, Pred, Rule, Tolerance, Verdict, Where, FAULT_NOISE};

/// Every check this harness knows, in a stable order.
pub fn all() -> Vec<&'static Check> {
    [
        dio::CHECKS,
        mmap::CHECKS,
        sendfile::CHECKS,
        splice::CHECKS,
        tee::CHECKS,
        vmsplice::CHECKS,
        cow::checks(),
        cfr::checks(),
        reflink::checks(),
        uring::checks(),
        overlay::checks(),
        dax::checks(),
        net::checks(),
        cost::checks(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What a probe is: it observes, or stops.
pub type Probe = fn(&Ctx) -> Result<Observation, Stop>;

#[derive(Clone, Copy)]
pub struct Check {
    /// `family.name`; never renamed once published, reports are compared across runs by it.
    pub id: &'static str,
    /// The backing or flavour a check runs over (`thp`, `memfd`, ...); the probe reads it from
    /// [`Ctx::variant`].
    pub variant: Option<&'static str>,
    pub scope: Scope,
    pub description: &'static str,
    pub rule: Rule,
    /// Machine-wide settings the probe needs: written by the runner (the parent) before the
    /// probe's child starts, restored after it ends however it ends. Guests only.
    pub settings: &'static [Setting],
    /// Whether the disk's logical block size can change the answer (direct I/O): such a check
    /// runs on every geometry of a filesystem in every profile; the others run on one
    /// geometry per filesystem in `quick` (see [`Check::block_size_matters`]).
    pub per_block_size: bool,
    /// The probe pushes pages out to swap: the host gives the guest a swap disk only when a
    /// selected check needs one (its set-up costs every other guest boot time).
    pub needs_swap: bool,
    /// The probe talks to the host end through the guest's virtio-net device, or needs a
    /// network module (kernel TLS): the host gives the guest its network only when a selected
    /// check needs it (its modules cost every other guest boot time).
    pub needs_net: bool,
    /// The probe uses 2 MiB hugetlb pages: the guest reserves its pool only when a selected
    /// check needs it (reserving costs every other guest boot time).
    pub needs_hugetlb: bool,
    /// The filesystem targets the check means something on (empty: every one); elsewhere it
    /// is not run at all rather than reported as a skip on every other cell.
    pub only_on: &'static [&'static str],
    /// Filesystem targets the check runs on only with `--profile full`: in `quick` it is not run
    /// there at all (the default matrix's time), rather than reported as a skip.
    pub full_profile_on: &'static [&'static str],
    /// The least profile the check runs in: `Full` for what the default matrix's time budget
    /// leaves out (see [`Profile`]).
    pub profile: Profile,
    /// The largest page size (bytes) the check means something with, and why: with larger
    /// pages it is not run at all (`harness list` gives the reason), rather than a skip.
    pub pages_up_to: Option<(u32, &'static str)>,
    pub probe: Probe,
}

impl Check {
    /// A check run once per filesystem under test.
    pub const fn fs(id: &'static str, description: &'static str, rule: Rule, probe: Probe) -> Self {
        Check {
            id,
            variant: None,
            scope: Scope::Fs,
            description,
            rule,
            settings: &[],
            per_block_size: false,
            needs_swap: false,
            needs_net: false,
            needs_hugetlb: false,
            only_on: &[],
            full_profile_on: &[],
            profile: Profile::Quick,
            pages_up_to: None,
            probe,
        }
    }

    /// A check run once per kernel, on a scratch directory.
    pub const fn kernel(
        id: &'static str,
        description: &'static str,
        rule: Rule,
        probe: Probe,
    ) -> Self {
        Check {
            scope: Scope::Kernel,
            ..Check::fs(id, description, rule, probe)
        }
    }

    pub const fn variant(self, variant: &'static str) -> Self {
        Check {
            variant: Some(variant),
            ..self
        }
    }

    pub const fn settings(self, settings: &'static [Setting]) -> Self {
        Check { settings, ..self }
    }

    /// Runs only with `--profile full`: it costs more guest time than the default matrix has.
    pub const fn full_profile_only(self) -> Self {
        Check {
            profile: Profile::Full,
            ..self
        }
    }

    /// Marks a check whose answer the logical block size can change: it opens O_DIRECT.
    pub const fn per_block_size(self) -> Self {
        Check {
            per_block_size: true,
            ..self
        }
    }

    /// Every `dio` check, any check marked [`Check::per_block_size`], and any whose rule
    /// speaks of the block size: the page cache does not care about the disk's sector size,
    /// direct I/O does.
    pub fn block_size_matters(&self) -> bool {
        self.per_block_size || self.family() == "dio" || self.rule.expect.needs_lbs()
    }

    /// Marks a check whose probe swaps pages out (MADV_PAGEOUT).
    pub const fn needs_swap(self) -> Self {
        Check {
            needs_swap: true,
            ..self
        }
    }

    /// Marks a check that needs the guest's network (see [`Check::needs_net`]).
    pub const fn needs_net(self) -> Self {
        Check {
            needs_net: true,
            ..self
        }
    }

    /// Marks a check whose probe maps 2 MiB hugetlb pages.
    pub const fn needs_hugetlb(self) -> Self {
        Check {
            needs_hugetlb: true,
            ..self
        }
    }

    /// Runs only on these filesystem targets (a check about one of them, like overlayfs's
    /// copy-up).
    pub const fn only_on(self, filesystems: &'static [&'static str]) -> Self {
        Check {
            only_on: filesystems,
            ..self
        }
    }

    /// Means something only with pages of at most `bytes` (see [`Check::pages_up_to`]).
    pub const fn pages_up_to(self, bytes: u32, why: &'static str) -> Self {
        Check {
            pages_up_to: Some((bytes, why)),
            ..self
        }
    }

    /// On these filesystem targets only with `--profile full` (see [`Check::full_profile_on`]).
    pub const fn full_profile_on(self, filesystems: &'static [&'static str]) -> Self {
        Check {
            full_profile_on: filesystems,
            ..self
        }
    }

    pub fn full_id(&self) -> String {
        zcmatrix_protocol::full_id(self.id, self.variant)
    }

    /// The family, the part of the id before the dot.
    pub fn family(&self) -> &'static str {
        self.id.split_once('.').map_or(self.id, |(f, _)| f)
    }

    /// The check as the catalogue lists it (`harness list`), and as [`zcmatrix_protocol::catalogue::select`] and
    /// [`CheckInfo::runs_at`] decide where it runs.
    pub fn info(&self) -> CheckInfo {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CheckInfo {
            id: self.full_id(),
            family: self.family().to_string(),
            scope: self.scope,
            description: self.description.to_string(),
            evidence: self.rule.evidence.to_string(),
            measurement: matches!(self.rule.expect, Expect::Measure),
            hazards: strings(self.rule.hazards),
            profile: self.profile,
            needs_swap: self.needs_swap,
            needs_net: self.needs_net,
            needs_hugetlb: self.needs_hugetlb,
            settings: self
                .settings
                .iter()
                .map(|s| SettingInfo {
                    path: s.path.to_string(),
                    value: s.value.to_string(),
                })
                .collect(),
            only_on: strings(self.only_on),
            full_profile_on: strings(self.full_profile_on),
            pages_up_to: self.pages_up_to.map(|(bytes, why)| PagesUpTo {
                bytes,
                why: why.to_string(),
            }),
            block_size_matters: self.block_size_matters(),
        }
    }
}

/// The catalogue of every check, in the order of [`all`].
pub fn catalogue() -> Vec<CheckInfo> {
    all().iter().map(|c| c.info()).collect()
}

/// A machine-wide knob (a sysfs or procfs file) and the value a check needs in it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub path: &'static str,
    pub value: &'static str,
    /// Why the check needs it; the skip reason names it when the file is missing or refuses.
    pub why: &'static str,
    /// Written only where the file exists (a per-size THP control of one page size's PMD), left
    /// alone elsewhere; a missing file of any other setting is a skip.
    pub if_present: bool,
}

/// What a probe saw: `value` is compared with the rule; `detail` explains it to a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub value: String,
    pub detail: String,
    /// Why this value is not judged although the check has a rule here: the harness's own
    /// limits cut the measurement short (the cost family's repetitions ran out before their
    /// minimum measuring time). The result is `info` and says why, never a verdict on the kernel.
    #[serde(default)]
    pub unjudged: Option<String>,
    /// The numbers of `value`, typed by the probe, for the host's charts, diffs and tables:
    /// every number `value` holds has its measure here (see [`Observation::numbers`]).
    #[serde(default)]
    pub measures: Vec<Measure>,
}

impl Observation {
    pub fn saw(value: impl Into<String>, detail: impl Into<String>) -> Self {
        Observation {
            value: value.into(),
            detail: detail.into(),
            unjudged: None,
            measures: Vec::new(),
        }
    }

    /// An observation that is labelled numbers `(name, value, unit)`: written `name=value …`
    /// for people and typed as measures for the host, both from the same values.
    pub fn numbers(values: &[(&str, f64, &str)], detail: impl Into<String>) -> Self {
        let text: Vec<String> = values.iter().map(|(n, v, _)| format!("{n}={v}")).collect();
        Observation::saw(text.join(" "), detail).measured(
            values
                .iter()
                .map(|&(n, v, u)| Measure::new(n, v, u))
                .collect(),
        )
    }

    /// An observation that is one number: written as it is for people and typed for the host
    /// as the measure named `""` (the value itself), in `unit`.
    pub fn number(value: f64, unit: &str, detail: impl Into<String>) -> Self {
        Observation::saw(value.to_string(), detail).measured(vec![Measure::new("", value, unit)])
    }

    /// This observation with its numbers, typed by the probe that measured them.
    pub fn measured(self, measures: Vec<Measure>) -> Self {
        Observation { measures, ..self }
    }

    /// This observation, shown but not judged, for the reason given.
    pub fn unjudged(self, why: impl Into<String>) -> Self {
        Observation {
            unjudged: Some(why.into()),
            ..self
        }
    }
}

/// Why a probe observed nothing: LTP's TCONF and TBROK.
#[derive(Debug)]
pub enum Stop {
    /// The precondition could not be created here (no THP, O_DIRECT refused, too little
    /// memory): the check does not apply, and the reason says why.
    Skip(String),
    /// The probe itself broke: an unexpected errno, a failed set-up step, a child that died.
    Broken(anyhow::Error),
    /// zcmatrix's own machinery failed under the probe (the NIC path's host end could not be
    /// reached): an error of the guest, reported with its cell, not of the kernel or the check.
    Infra(String),
}

/// `?` on any error inside a probe is a broken probe, never an observation.
impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Broken(e.into())
    }
}

/// A precondition that failed: `return Err(skip(...))` or `.map_err(|e| skip(...))?`.
pub fn skip(reason: impl Into<String>) -> Stop {
    Stop::Skip(reason.into())
}

/// A probe that cannot go on: `return Err(broken(...))`.
pub fn broken(why: impl Into<String>) -> Stop {
    Stop::Broken(anyhow::anyhow!(why.into()))
}

/// Turns a failed precondition into a skip with a reason: `open(...).or_skip("O_DIRECT")?`.
pub trait OrSkip<T> {
    fn or_skip(self, what: &str) -> Result<T, Stop>;
}

impl<T, E: std::fmt::Display> OrSkip<T> for Result<T, E> {
    fn or_skip(self, what: &str) -> Result<T, Stop> {
        self.map_err(|e| Stop::Skip(format!("{what}: {e}")))
    }
}

impl<T> OrSkip<T> for Option<T> {
    fn or_skip(self, what: &str) -> Result<T, Stop> {
        self.ok_or_else(|| Stop::Skip(what.to_string()))
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
    /// The check's variant, for probes shared by several variants.
    pub variant: Option<&'static str>,
    /// Every filesystem target mounted in this guest as (filesystem, directory), this one
    /// included, for checks that move data between filesystems (`cfr.cross_fs`); empty where
    /// the runner knows of none.
    pub mounts: Vec<(String, PathBuf)>,
    /// The run's profile, for probes that measure less in `quick` (see [`Profile`]).
    pub profile: Profile,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use zcmatrix_protocol::Outcome;

    /// The text people read and the numbers the host reads come from the same values.
    #[test]
    fn numbers_are_written_and_typed_alike() {
        let o = Observation::numbers(
            &[("major", 129.0, "faults"), ("cost_ratio", 3.0, "×")],
            "why",
        );
        assert_eq!(o.value, "major=129 cost_ratio=3");
        assert_eq!(
            o.measures,
            [
                Measure::new("major", 129.0, "faults"),
                Measure::new("cost_ratio", 3.0, "×")
            ]
        );
        let one = Observation::number(2147479552.0, "bytes", "why");
        assert_eq!(one.value, "2147479552", "written as the integer it is");
        assert_eq!(one.measures, [Measure::new("", 2147479552.0, "bytes")]);
    }

    #[test]
    fn checks_that_swap_or_map_hugetlb_pages_say_so_so_the_guest_prepares_them() {
        for c in all() {
            let v = c.variant.unwrap_or("");
            assert_eq!(c.needs_hugetlb, v.contains("hugetlb_2m"), "{}", c.full_id());
            assert_eq!(c.needs_swap, v.contains("swapped"), "{}", c.full_id());
        }
    }

    #[test]
    fn checks_about_one_filesystem_run_only_there() {
        let copy_up = all()
            .into_iter()
            .find(|c| c.id == "overlay.copy_up_ro_fd")
            .unwrap()
            .info();
        assert!(copy_up.applies_to(Some("overlay")));
        assert!(!copy_up.applies_to(Some("ext4")) && !copy_up.applies_to(None));
        let anywhere = all()
            .into_iter()
            .find(|c| c.id == "dio.open")
            .unwrap()
            .info();
        assert!(anywhere.applies_to(Some("ext4")) && anywhere.applies_to(Some("overlay")));
        // The cost family measures overlay and DAX with --profile full only.
        let cost = all()
            .into_iter()
            .find(|c| c.id == "cost.sendfile")
            .unwrap()
            .info();
        assert!(cost.runs_on(Some("ext4"), Profile::Quick));
        assert!(!cost.runs_on(Some("ext4-dax"), Profile::Quick));
        assert!(cost.runs_on(Some("ext4-dax"), Profile::Full));
    }

    #[test]
    fn every_check_that_opens_o_direct_runs_on_every_block_size() {
        let missed: Vec<String> = all()
            .iter()
            .filter(|c| {
                c.scope == Scope::Fs
                    && (c.description.contains("O_DIRECT") || c.description.contains("direct I/O"))
                    && !c.block_size_matters()
            })
            .map(|c| c.full_id())
            .collect();
        assert!(
            missed.is_empty(),
            "mark these .per_block_size(): {missed:?}"
        );
        assert!(all().iter().any(|c| !c.block_size_matters()));
    }

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

    /// Every combination a rule can speak about: the default kernels and each version at which
    /// a rule changes (and the one before), every filesystem, both disk geometries.
    fn every_case(check: &Check) -> Vec<Where<'static>> {
        let mut kernels = vec![
            KernelVersion::new(5, 10, 0),
            KernelVersion::new(6, 1, 0),
            KernelVersion::new(6, 12, 0),
            KernelVersion::new(7, 2, 0),
        ];
        let mut bounds = Vec::new();
        check.rule.expect.boundaries(&mut bounds);
        for b in bounds {
            kernels.push(b);
            // The release before: the point release before a stable backport, else the X.Y
            // before a mainline change.
            kernels.push(match b.patch {
                0 => KernelVersion::new(b.major, b.minor.saturating_sub(1), 0),
                p => KernelVersion::new(b.major, b.minor, p - 1),
            });
        }
        let places: Vec<(Option<&str>, Option<u32>)> = match check.scope {
            Scope::Kernel => vec![(None, None)],
            Scope::Fs => ["ext4", "xfs", "btrfs"]
                .iter()
                .flat_map(|f| [(Some(*f), Some(512)), (Some(*f), Some(4096))])
                .chain([
                    (Some("tmpfs"), None),
                    (Some("overlay"), Some(4096)),
                    (Some("ext4-dax"), None),
                    (Some("ext4-dax-async"), None),
                    (Some("xfs-dax"), None),
                ])
                .collect(),
        };
        // Every page size a guest may have: 4 KiB, arm64's 16 KiB, ppc64le's 64 KiB.
        kernels
            .iter()
            .flat_map(|&kernel| {
                places.iter().flat_map(move |&(fs, logical_block_size)| {
                    [4096, 16384, 65536].map(|page_size| Where {
                        kernel,
                        fs,
                        logical_block_size,
                        page_size,
                    })
                })
            })
            .collect()
    }

    /// A rule that no observation could fail is a defect: for every case where a check has a
    /// rule (not a measurement), some value the probe can produce (its declared domain, see
    /// `Rule::least`; an integer where the rule speaks of integers) must be judged `fail` or
    /// `xpass`. Where an axis value leaves none, the result there is `info` saying why, and the
    /// case is one of those listed here, so a new one is noticed.
    #[test]
    fn every_rule_can_fail() {
        // (check, page size) where a rule cannot fail on any filesystem it speaks of.
        const CANNOT_FAIL: &[(&str, u32)] = &[("mmap.fault_around", 65536)];
        let mut found: Vec<(String, u32)> = Vec::new();
        for c in all() {
            for on in every_case(c) {
                let (kernel, fs, lbs) = (on.kernel, on.fs, on.logical_block_size);
                let Some(pred) = c.rule.expect.resolve(kernel, fs) else {
                    continue;
                };
                let here = format!("{} on {kernel} {fs:?} lbs {lbs:?}", c.full_id());
                if pred.needs_lbs() && lbs.is_none() {
                    // No disk, so no block size to judge against (tmpfs): the probe needs the
                    // disk too and skips, and `judge` would say `info`, never `pass`.
                    continue;
                }
                let Some(cex) = c.rule.counterexample(&pred, on.geom()) else {
                    let seen = pred.counterexample_from(on.geom(), i64::MIN).map(|_| {
                        // Any accepted value: the least the probe can produce.
                        c.rule.least.to_string()
                    });
                    let seen = seen.unwrap_or_default();
                    let v = c.rule.judge(&on, &seen);
                    assert_eq!(v.outcome, Outcome::Info, "{here} {}: {v:?}", on.page_size);
                    assert!(v.expected.contains("cannot fail here"), "{here}: {v:?}");
                    let key = (c.full_id(), on.page_size);
                    if !found.contains(&key) {
                        found.push(key);
                    }
                    continue;
                };
                let v = c.rule.judge(&on, &cex);
                assert!(
                    matches!(v.outcome, Outcome::Fail | Outcome::Xpass),
                    "{here}: {cex:?} judged {:?}",
                    v.outcome
                );
            }
        }
        let want: Vec<(String, u32)> = CANNOT_FAIL
            .iter()
            .map(|(id, p)| (id.to_string(), *p))
            .collect();
        assert_eq!(found, want);
    }

    /// A DAX file on a region that is not synchronous (virtio-pmem, natively): MAP_SYNC is
    /// rightly refused there, and every other rule is the DAX target's.
    #[test]
    fn an_asynchronous_dax_target_has_rules_of_its_own_for_map_sync_only() {
        let on = |fs| Where {
            kernel: KernelVersion::new(6, 12, 0),
            fs: Some(fs),
            logical_block_size: None,
            page_size: 4096,
        };
        let judged = |id: &str, fs, seen: &str| {
            let c = all().into_iter().find(|c| c.full_id() == id).unwrap();
            c.rule.judge(&on(fs), seen).outcome
        };
        for id in ["dax.map_sync", "mmap.map_sync"] {
            assert_eq!(judged(id, "ext4-dax", "ok"), Outcome::Pass, "{id}");
            assert_eq!(judged(id, "ext4-dax", "EOPNOTSUPP"), Outcome::Fail, "{id}");
            assert_eq!(
                judged(id, "xfs-dax-async", "EOPNOTSUPP"),
                Outcome::Pass,
                "{id}"
            );
            assert_eq!(judged(id, "ext4-dax-async", "ok"), Outcome::Fail, "{id}");
        }
        assert_eq!(judged("dax.mounted", "ext4-dax-async", "on"), Outcome::Pass);
        assert_eq!(judged("dax.dio", "ext4-dax-async", "ok"), Outcome::Pass);
        let cost = all()
            .into_iter()
            .find(|c| c.full_id() == "cost.sendfile[file_warm]")
            .unwrap()
            .info();
        assert!(!cost.runs_on(Some("xfs-dax-async"), Profile::Quick));
        let dax = all()
            .into_iter()
            .find(|c| c.id == "dax.mounted")
            .unwrap()
            .info();
        assert!(dax.runs_on(Some("ext4-dax-async"), Profile::Quick));
    }

    /// Evidence cites sources (a commit, a man page, a document), never what our own runs saw:
    /// an observation is the report's, and a rule built on one would be judged by itself.
    #[test]
    fn evidence_cites_sources_not_our_observations() {
        const OURS: &[&str] = &[
            "seen on ",
            "in our ",
            "our runs",
            "we saw",
            "we measured",
            " guests, an ",
            "-7.2 guests",
            "on a 6.18 host",
        ];
        for c in all() {
            for phrase in OURS {
                assert!(
                    !c.rule.evidence.contains(phrase),
                    "{}: {phrase:?} in {:?}",
                    c.full_id(),
                    c.rule.evidence
                );
            }
        }
    }

    /// Counts that are facts compare exactly in `report diff`; only measurements that move with
    /// the machine declare a tolerance, and each record carries its check's.
    #[test]
    fn only_noisy_measurements_declare_a_tolerance() {
        const NOISY: &[&str] = &[
            "mmap.fault_cold_scan",
            "mmap.fault_populate",
            "mmap.fault_sequential",
            "dax.fault_scan",
        ];
        for c in all() {
            let want = if c.family() == "cost" || c.id == "net.msg_zerocopy_small" {
                Tolerance::OutcomeOnly
            } else if NOISY.contains(&c.id) {
                FAULT_NOISE
            } else {
                Tolerance::Exact
            };
            match (c.rule.tolerance, want) {
                (Tolerance::Numbers { .. }, Tolerance::Numbers { .. }) => {}
                (got, want) => assert_eq!(got, want, "{}", c.full_id()),
            }
        }
        for id in ["mmap.large_folio", "uring.opcodes", "mmap.fault_around"] {
            let c = all().into_iter().find(|c| c.id == id).unwrap();
            assert_eq!(c.rule.tolerance, Tolerance::Exact, "{id}");
        }
    }

    /// Every value an exact predicate names, to catch leftovers of the old string rules.
    fn named(p: &Pred, out: &mut Vec<&'static str>) {
        match p {
            Pred::Is(v) => out.push(v),
            Pred::OneOf(vs) => out.extend_from_slice(vs),
            Pred::Fields(fs) => fs.iter().for_each(|(_, p)| named(p, out)),
            Pred::AtLeast(_)
            | Pred::Between(..)
            | Pred::Lbs
            | Pred::MaxRwCount
            | Pred::Pages(_)
            | Pred::AtLeastPagesOf(_)
            | Pred::PageRoundUp(_) => {}
            Pred::ByPage { at_4k, larger } => out.extend([*at_4k, *larger]),
            Pred::PagesBelow { below, from, .. } => out.extend([*below, *from]),
        }
    }

    /// Values are values: no glob or template survives in a rule; and a rule that is a
    /// measurement anywhere says what it measures.
    #[test]
    fn rules_name_values_and_measurements_say_so() {
        for c in all() {
            let mut preds = Vec::new();
            c.rule.expect.leaves(&mut preds);
            let mut values = Vec::new();
            preds.iter().for_each(|p| named(p, &mut values));
            for v in values {
                assert!(
                    !v.contains(['*', '?', '{', '}', '[']),
                    "{}: {v:?} is a glob or template, not a value",
                    c.full_id()
                );
            }
            let measures = (preds.is_empty()
                || every_case(c)
                    .iter()
                    .any(|on| c.rule.expect.resolve(on.kernel, on.fs).is_none()))
                || matches!(
                    c.rule.expect,
                    Expect::ByFs {
                        otherwise: Expect::Measure,
                        ..
                    }
                );
            if measures {
                assert!(
                    c.rule.evidence.contains("measure"),
                    "{}: a measurement must say what it measures and why",
                    c.full_id()
                );
            }
        }
    }

    /// Every check that can expect a hazard says so, so it cannot show as a green tick.
    #[test]
    fn hazard_values_are_never_judged_pass() {
        for c in all() {
            for on in every_case(c) {
                for h in c.rule.hazards {
                    let o = c.rule.judge(&on, h).outcome;
                    assert_ne!(o, Outcome::Pass, "{} on {on:?}: {h}", c.full_id());
                }
            }
        }
    }

    #[test]
    fn a_question_mark_on_any_error_is_a_broken_probe() {
        fn probe() -> Result<Observation, Stop> {
            std::fs::read("/nonexistent/zcmatrix")?;
            Ok(Observation::saw("ok", ""))
        }
        assert!(matches!(probe(), Err(Stop::Broken(_))));
        let r: Result<(), Stop> = Err::<(), _>("EINVAL").or_skip("O_DIRECT open");
        assert!(matches!(r, Err(Stop::Skip(s)) if s == "O_DIRECT open: EINVAL"));
    }
}
