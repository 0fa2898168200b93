//! The plan of a run, validated: kernels × geometries × filesystems × checks, and how each guest
//! runs. The command line hands its words over as a [`Request`]; [`Plan::new`] checks every one
//! of them before anything is fetched or booted, and the run, its shards and its report read the
//! plan it returns.

use std::path::PathBuf;
use std::time::Duration;

use zcmatrix_protocol::catalogue::{self, CheckInfo};
use zcmatrix_protocol::target::{self, Backing};
use zcmatrix_protocol::{FsTarget, Profile};

use crate::accel::AccelChoice;
use crate::arch::Arch;
use crate::declared;
use crate::kernel::{all_series, DebianKernel, KernelSpec};
use crate::qemu::Deadlines;
use crate::user::UserProgram;

/// A request the plan refuses: the user's doing (the command line says it with exit 2), the
/// message naming what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// What the command line asked for, as given: words and options not checked yet. Paths are
/// resolved by the caller (its defaults live with the workspace).
#[derive(Debug, Clone)]
pub struct Request {
    /// `--kernel` words (empty words are ignored: a workflow input left empty).
    pub kernels: Vec<String>,
    /// `--arch` words.
    pub arches: Vec<String>,
    /// `--fs` words.
    pub filesystems: Vec<String>,
    /// `--check` filters.
    pub checks: Vec<String>,
    pub profile: Profile,
    /// `--judge-as`, unchecked.
    pub judge_as: Option<String>,
    /// `--selection`: a name from matrix.toml.
    pub selection: Option<String>,
    /// `--geometry`: one logical block size, or `None` for matrix.toml's geometries.
    pub geometry: Option<u32>,
    pub accel: AccelChoice,
    pub out: PathBuf,
    /// `--timeout` in seconds (default: matrix.toml's, longer for the full profile).
    pub timeout: Option<u64>,
    /// `--memory` in MiB (default: matrix.toml's).
    pub memory: Option<u32>,
    pub lock: PathBuf,
    pub cache: PathBuf,
    /// `--jobs` (default: one guest per core).
    pub jobs: Option<usize>,
    pub retries: u32,
    /// `--boot-timeout` in seconds (default: matrix.toml's).
    pub boot_timeout: Option<u64>,
    pub kernel_args: Vec<String>,
    /// `--exec` words (`PATH` or `ARCH=PATH`).
    pub exec: Vec<String>,
    /// `--shard K/N`, unchecked.
    pub shard: Option<String>,
}

/// Everything a run needs, checked: what it boots, what each guest prepares and runs, where it
/// writes. The one plan of a run: the shards, the report's `run` and every guest read it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every kernel of the selection (a shard boots some of them, see [`crate::shard`]).
    pub kernels: Vec<KernelSpec>,
    pub filesystems: Vec<String>,
    pub geometries: Vec<u32>,
    /// Check filters (globs over ids); empty: every check.
    pub checks: Vec<String>,
    pub profile: Profile,
    /// `--judge-as`: a series (`X.Y` or `X.Y.Z`) whose rules judge every guest.
    pub judge_as: Option<String>,
    pub accel: AccelChoice,
    pub out: PathBuf,
    pub deadlines: Deadlines,
    /// Appended to every guest's kernel command line.
    pub kernel_args: Vec<String>,
    pub memory_mb: u32,
    /// The pins this run reads and updates.
    pub lock: PathBuf,
    /// Guests at once (at least 1).
    pub jobs: usize,
    pub cache: PathBuf,
    /// How many times a guest that ended for an infrastructure reason is started again.
    pub retries: u32,
    /// `--shard K/N`: run only this slice of the kernels.
    pub shard: Option<ShardSpec>,
    /// `--exec`: the user's KTAP programs, a binary per guest architecture.
    pub user_checks: Vec<UserProgram>,
}

/// `--shard K/N`: shard K (1-based) of N (see [`crate::shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    pub fn parse(s: &str) -> Result<ShardSpec, PlanError> {
        let bad = || {
            PlanError(format!(
                "--shard {s:?}: expected K/N with 1 <= K <= N, e.g. 2/3"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

/// The checks and filesystems an emulated guest is narrowed to (empty filesystems: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    pub checks: Vec<String>,
    pub filesystems: Vec<String>,
}

/// The default for `--jobs`: one guest per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many times matrix.toml's run deadline a guest of the full profile gets by default.
const FULL_PROFILE_DEADLINE_FACTOR: u64 = 6;

impl Plan {
    /// Checks every word of `r` against matrix.toml and the target table, fills in matrix.toml's
    /// defaults, and says what is wrong with the first word that does not fit.
    pub fn new(r: &Request) -> Result<Plan, PlanError> {
        // Empty words come from the environment's lists ($ZCMATRIX_KERNELS set to "", or
        // doubled spaces): a workflow input left empty means the default.
        let words = |v: &[String]| -> Vec<String> {
            v.iter().filter(|w| !w.trim().is_empty()).cloned().collect()
        };
        let (mut r_kernels, mut r_filesystems, mut checks) =
            (words(&r.kernels), words(&r.filesystems), words(&r.checks));
        if let Some(name) = &r.selection {
            let m = declared::matrix();
            let p = m
                .selections
                .iter()
                .find(|p| p.name == *name)
                .ok_or_else(|| {
                    PlanError(format!(
                        "unknown selection {name:?}: matrix.toml has {}",
                        m.selections
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if r_kernels.is_empty() {
                r_kernels = p.kernels.clone();
            }
            if checks.is_empty() {
                checks = p.checks.clone();
            }
            if r_filesystems.is_empty() {
                r_filesystems = p.filesystems.clone();
            }
        }
        let mut arches: Vec<Arch> = Vec::new();
        for w in words(&r.arches) {
            let arch = Arch::parse(&w).ok_or_else(|| {
                PlanError(format!(
                    "unknown architecture {w:?}: choose from {}",
                    Arch::ALL.map(Arch::name).join(", ")
                ))
            })?;
            if !arches.contains(&arch) {
                arches.push(arch);
            }
        }
        let kernels = kernels_of(&r_kernels, &arches)?;
        let mut guest_arches: Vec<Arch> = kernels.iter().map(KernelSpec::arch).collect();
        guest_arches.sort();
        guest_arches.dedup();
        let user_checks = crate::user::parse(&words(&r.exec), &guest_arches).map_err(PlanError)?;
        let m = declared::matrix();
        let filesystems: Vec<String> = if r_filesystems.is_empty() {
            m.filesystems.iter().map(|s| s.to_string()).collect()
        } else {
            let mut v: Vec<String> = Vec::new();
            for f in &r_filesystems {
                if target::find(f).is_none() {
                    return Err(PlanError(format!(
                        "unknown filesystem {f:?}: choose from {}",
                        target::names().join(", ")
                    )));
                }
                if !v.contains(f) {
                    v.push(f.clone());
                }
            }
            v
        };
        let geometries = match r.geometry {
            Some(lbs) => vec![lbs],
            None => m.geometries.clone(),
        };
        // The full profile's guests do several times the work (every mTHP size, 2 GiB reads,
        // 8 MiB cost transfers on every target and through the NIC): a 6.1 guest's cost family
        // alone ran past 300 s under TCG.
        let timeout = r.timeout.unwrap_or(match r.profile {
            Profile::Quick => m.timeout_s,
            Profile::Full => m.timeout_s * FULL_PROFILE_DEADLINE_FACTOR,
        });
        let memory = r.memory.unwrap_or(m.memory_mb);
        let boot_timeout = r.boot_timeout.unwrap_or(m.boot_timeout_s);
        if timeout == 0 {
            return Err(PlanError("--timeout must be at least 1 second".into()));
        }
        if boot_timeout == 0 {
            return Err(PlanError("--boot-timeout must be at least 1 second".into()));
        }
        if r.jobs == Some(0) {
            return Err(PlanError("--jobs must be at least 1".into()));
        }
        let shard = r.shard.as_deref().map(ShardSpec::parse).transpose()?;
        if memory < 128 {
            return Err(PlanError("--memory must be at least 128 MiB".into()));
        }
        let pmem = filesystems
            .iter()
            .filter(|f| target::backing(f) == Backing::Pmem)
            .count();
        // Only `memmap=` regions (x86_64) sit in the guest's low memory; arm64's sit above
        // all of --memory, so any size holds them.
        let low_pmem = kernels
            .iter()
            .any(|k| crate::pmem::declared(k.arch()) == Some(crate::pmem::Declared::Memmap));
        if pmem > 0 && low_pmem && memory < crate::pmem::min_memory_mb(pmem) {
            return Err(PlanError(format!(
                "--memory {} is too little for the DAX targets of x86_64 guests, whose \
                 persistent memory sits in the guest's low memory: give at least {} or leave \
                 out --fs ext4-dax/xfs-dax",
                memory,
                crate::pmem::min_memory_mb(pmem)
            )));
        }
        Ok(Plan {
            kernels,
            filesystems,
            geometries,
            checks,
            profile: r.profile,
            judge_as: r.judge_as.as_deref().map(judge_as).transpose()?,
            accel: r.accel,
            out: r.out.clone(),
            deadlines: Deadlines {
                // A boot deadline past the run's would never fire.
                boot: Duration::from_secs(boot_timeout.min(timeout)),
                run: Duration::from_secs(timeout),
            },
            kernel_args: r.kernel_args.clone(),
            memory_mb: memory,
            lock: r.lock.clone(),
            jobs: r.jobs.unwrap_or_else(default_jobs),
            cache: r.cache.clone(),
            retries: r.retries,
            shard,
            user_checks,
        })
    }

    /// The quick profile's narrowing of guests the host emulates (matrix.toml's `[quick]`),
    /// unless the command line named checks: the user asked for those everywhere.
    pub fn emulated(&self) -> Option<Narrowed> {
        if self.profile != Profile::Quick || !self.checks.is_empty() {
            return None;
        }
        let s = declared::matrix().quick_emulated.as_ref()?;
        Some(Narrowed {
            checks: s.checks.clone(),
            filesystems: s.filesystems.clone(),
        })
    }

    /// The filesystems one guest prepares: each disk filesystem once per geometry, tmpfs once.
    pub fn targets(&self) -> Vec<FsTarget> {
        let mut out = Vec::new();
        for fs in &self.filesystems {
            match target::backing(fs) {
                Backing::Disk => {
                    for &lbs in &self.geometries {
                        out.push(FsTarget {
                            fs: fs.clone(),
                            disk_serial: Some(format!("zc-{fs}-{lbs}")),
                            logical_block_size: Some(lbs),
                            ..FsTarget::default()
                        });
                    }
                }
                // One cell: what overlay adds to ext4 does not depend on the disk's geometry
                // (its direct I/O goes to the ext4 below it, whose rules follow the geometry
                // given), so it takes the largest one of the run.
                Backing::Overlay => {
                    let lbs = self.geometries.iter().copied().max().unwrap_or(4096);
                    out.push(FsTarget {
                        fs: fs.clone(),
                        disk_serial: Some(format!("zc-{fs}-{lbs}")),
                        logical_block_size: Some(lbs),
                        ..FsTarget::default()
                    });
                }
                Backing::Memory => out.push(FsTarget {
                    fs: fs.clone(),
                    ..FsTarget::default()
                }),
                // No virtio disk: the pmem block device's logical block size is 512 whatever
                // the run's geometries, and its region's place is the guest's business
                // (crate::pmem).
                Backing::Pmem => out.push(FsTarget {
                    fs: fs.clone(),
                    logical_block_size: Some(512),
                    ..FsTarget::default()
                }),
            }
        }
        out
    }

    /// The targets and check filters of `spec`'s guest: the plan's, or the narrowed ones for a
    /// guest the host emulates.
    pub fn for_guest(&self, spec: &KernelSpec) -> (Vec<FsTarget>, Vec<String>) {
        match self.emulated() {
            Some(n) if spec.arch() != Arch::host() => (
                self.targets()
                    .into_iter()
                    .filter(|t| n.filesystems.is_empty() || n.filesystems.contains(&t.fs))
                    .collect(),
                n.checks,
            ),
            _ => (self.targets(), self.checks.clone()),
        }
    }
}

/// Whether any of `kernels` comes from Debian's archive (so apt and dpkg are needed).
pub fn needs_debian(kernels: &[KernelSpec]) -> bool {
    kernels.iter().any(|k| matches!(k, KernelSpec::Debian(_)))
}

/// `--judge-as`: a series like `7.2` or a point release like `5.10.160`.
fn judge_as(s: &str) -> Result<String, PlanError> {
    zcmatrix_protocol::is_kernel_series(s)
        .then(|| s.to_string())
        .ok_or_else(|| PlanError(zcmatrix_protocol::not_a_series(s)))
}

/// The kernels of `--kernel` words on `--arch` architectures: a bare series once per
/// architecture (its default flavour there), a series with a flavour once, if its architecture
/// is among those asked for. No words: matrix.toml's default kernels, or with `--arch` every
/// series that is not opt-in in that architecture's default flavour (where Debian builds one).
fn kernels_of(words: &[String], arches: &[Arch]) -> Result<Vec<KernelSpec>, PlanError> {
    if words.is_empty() {
        let mut v = Vec::new();
        for series in all_series().iter().filter(|s| !s.opt_in()) {
            if arches.is_empty() {
                for name in series.default_flavours {
                    let flavour = declared::flavour(name).expect("matrix.toml is checked");
                    v.push(KernelSpec::Debian(DebianKernel { series, flavour }));
                }
            } else {
                for &arch in arches {
                    if let Some(flavour) = series.flavour_for(arch) {
                        v.push(KernelSpec::Debian(DebianKernel { series, flavour }));
                    }
                }
            }
        }
        return Ok(v);
    }
    let mut v: Vec<KernelSpec> = Vec::new();
    for w in words {
        let specs: Vec<KernelSpec> = if arches.is_empty() {
            vec![KernelSpec::parse(w).map_err(|e| PlanError(e.to_string()))?]
        } else {
            let bare = all_series().iter().any(|s| s.spec == w);
            let mut specs = Vec::new();
            let mut first_err = None;
            for &arch in arches {
                match KernelSpec::parse_for(w, Some(arch)) {
                    Ok(s) => specs.push(s),
                    Err(e) if bare || first_err.is_some() => return Err(PlanError(e.to_string())),
                    Err(e) => first_err = Some(e),
                }
            }
            match (specs.is_empty(), first_err) {
                (true, Some(e)) => return Err(PlanError(e.to_string())),
                _ => specs,
            }
        };
        for spec in specs {
            if !v.contains(&spec) {
                v.push(spec);
            }
        }
    }
    Ok(v)
}

/// Whether any check the run selects swaps pages out, so that its guests need a swap disk.
pub fn needs_swap(filters: &[String], checks: &[CheckInfo], profile: Profile) -> bool {
    catalogue::selects_any(checks, filters, profile, |c| c.needs_swap)
}

/// Whether any check the run selects needs the guest's network (the virtio-net path to the
/// host end, the network modules).
pub fn needs_net(filters: &[String], checks: &[CheckInfo], profile: Profile) -> bool {
    catalogue::selects_any(checks, filters, profile, |c| c.needs_net)
}

/// Every filter must match a check the harness has, and together they must select at least one
/// check of `profile` (a filter naming only checks of the full profile says so): the
/// catalogue's [`catalogue::select`], as a plan error.
pub fn validate_checks(
    filters: &[String],
    checks: &[CheckInfo],
    profile: Profile,
) -> Result<(), PlanError> {
    catalogue::select(checks, filters, profile)
        .map(drop)
        .map_err(|e| PlanError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo xtask test-matrix` with no flags asks for.
    fn request() -> Request {
        Request {
            kernels: Vec::new(),
            arches: Vec::new(),
            filesystems: Vec::new(),
            checks: Vec::new(),
            profile: Profile::Quick,
            judge_as: None,
            selection: None,
            geometry: None,
            accel: AccelChoice::Auto,
            out: PathBuf::from("out"),
            timeout: None,
            memory: None,
            lock: PathBuf::from("kernels.lock"),
            cache: PathBuf::from("cache"),
            jobs: None,
            retries: 0,
            boot_timeout: None,
            kernel_args: Vec::new(),
            exec: Vec::new(),
            shard: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn plan(edit: impl FnOnce(&mut Request)) -> Result<Plan, PlanError> {
        let mut r = request();
        edit(&mut r);
        Plan::new(&r)
    }

    #[test]
    fn default_matrix_is_every_series_and_filesystem() {
        let p = plan(|_| {}).unwrap();
        // Four x86_64 series, and the newest on arm64-16k and ppc64le-64k.
        assert_eq!(p.kernels.len(), 6);
        assert_eq!(
            p.filesystems,
            ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "ext4-dax", "xfs-dax"]
        );
        assert_eq!(p.geometries, [512, 4096]);
        // ext4, xfs and btrfs on both geometries; tmpfs has none; overlay one (the largest);
        // the DAX targets pmem's 512.
        let t = p.targets();
        assert_eq!(t.len(), 10);
        let overlay = t.iter().find(|t| t.fs == "overlay").unwrap();
        assert_eq!(overlay.logical_block_size, Some(4096));
        assert_eq!(overlay.disk_serial.as_deref(), Some("zc-overlay-4096"));
        let dax = t.iter().find(|t| t.fs == "xfs-dax").unwrap();
        assert_eq!(
            (dax.disk_serial.as_ref(), dax.logical_block_size),
            (None, Some(512))
        );
        assert_eq!(p.accel, AccelChoice::Auto);
        assert_eq!(p.shard, None);
    }

    #[test]
    fn unknown_kernel_and_filesystem_name_the_choices() {
        let e = plan(|r| r.kernels = strings(&["4.19"])).unwrap_err().0;
        assert!(e.contains("5.10, 6.1, 6.12, 7.2, next"), "{e}");
        let e = plan(|r| r.arches = strings(&["riscv64"])).unwrap_err().0;
        assert!(e.contains("x86_64, arm64, ppc64le"), "{e}");
        let e = plan(|r| r.filesystems = strings(&["zfs"])).unwrap_err().0;
        assert!(e.contains("ext4, xfs, btrfs, tmpfs, overlay"), "{e}");
    }

    #[test]
    fn arch_picks_the_flavour_of_a_bare_series() {
        let labels = |kernels: &[&str], arches: &[&str]| -> Vec<String> {
            plan(|r| {
                r.kernels = strings(kernels);
                r.arches = strings(arches);
            })
            .unwrap()
            .kernels
            .iter()
            .map(|k| k.label())
            .collect()
        };
        assert_eq!(labels(&["7.2"], &["arm64"]), ["7.2-cloud-arm64"]);
        assert_eq!(
            labels(&["7.2"], &["x86_64", "ppc64le"]),
            ["7.2", "7.2-powerpc64le-64k"]
        );
        assert_eq!(
            labels(&["7.2-arm64-16k"], &["arm64", "x86_64"]),
            ["7.2-arm64-16k"]
        );
        assert_eq!(labels(&["next"], &[]), ["next"]);
        // A flavour of an architecture not asked for is an error, not silently nothing.
        assert!(plan(|r| {
            r.kernels = strings(&["7.2-arm64-16k"]);
            r.arches = strings(&["ppc64le"]);
        })
        .is_err());
        // --arch alone: every default series in that architecture's first flavour.
        assert_eq!(
            labels(&[], &["ppc64le"]),
            ["6.12-powerpc64le-64k", "7.2-powerpc64le-64k"]
        );
    }

    #[test]
    fn judge_as_takes_a_series_and_refuses_anything_else() {
        let judge = |s: &str| plan(|r| r.judge_as = Some(s.into()));
        assert_eq!(judge("7.2").unwrap().judge_as.as_deref(), Some("7.2"));
        assert_eq!(
            judge("5.10.160").unwrap().judge_as.as_deref(),
            Some("5.10.160")
        );
        assert!(plan(|_| {}).unwrap().judge_as.is_none());
        for bad in [
            "seven",
            "7",
            "7.x",
            "7..2",
            "5.10.160.1",
            "5.10.99999999999",
            "+5.10",
        ] {
            assert!(judge(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_full_profile_gets_a_longer_run_deadline_unless_one_is_given() {
        let run = |profile, timeout| {
            let p = plan(|r| {
                r.profile = profile;
                r.timeout = timeout;
            });
            p.unwrap().deadlines.run.as_secs()
        };
        assert_eq!(run(Profile::Quick, None), 300);
        assert_eq!(run(Profile::Full, None), 1800);
        assert_eq!(run(Profile::Full, Some(60)), 60);
    }

    #[test]
    fn quick_narrows_emulated_guests_unless_checks_are_named() {
        let p = plan(|_| {}).unwrap();
        let labels: Vec<String> = p.kernels.iter().map(KernelSpec::label).collect();
        for k in ["7.2", "7.2-arm64-16k", "7.2-powerpc64le-64k"] {
            assert!(labels.contains(&k.to_string()), "{k} not in {labels:?}");
        }
        let n = p
            .emulated()
            .expect("the default quick run narrows emulated guests");
        assert!(n.checks.contains(&"sendfile.max_count".to_string()));
        assert!(!n.filesystems.contains(&"ext4-dax".to_string()));
        // An emulated guest gets the narrowing, the host's own kernels the plan.
        let arm = p.kernels.iter().find(|k| k.arch() != Arch::host()).unwrap();
        let (targets, checks) = p.for_guest(arm);
        assert_eq!(checks, n.checks);
        assert!(targets.iter().all(|t| n.filesystems.contains(&t.fs)));
        let host = p.kernels.iter().find(|k| k.arch() == Arch::host()).unwrap();
        assert_eq!(p.for_guest(host), (p.targets(), Vec::new()));
        let full = plan(|r| r.profile = Profile::Full).unwrap();
        assert!(full.emulated().is_none());
        assert!(plan(|r| r.checks = strings(&["dio.*"]))
            .unwrap()
            .emulated()
            .is_none());
    }

    #[test]
    fn a_selection_stands_for_kernels_and_checks_not_given() {
        let p = plan(|r| r.selection = Some("pages".into())).unwrap();
        let labels: Vec<String> = p.kernels.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["7.2", "7.2-arm64-16k", "7.2-powerpc64le-64k"]);
        assert!(p.checks.contains(&"sendfile.max_count".to_string()));
        assert_eq!(p.filesystems, ["ext4", "xfs", "btrfs", "tmpfs"]);
        let p = plan(|r| {
            r.selection = Some("pages".into());
            r.kernels = strings(&["6.12"]);
            r.checks = strings(&["dio.*"]);
        })
        .unwrap();
        assert_eq!(p.kernels.len(), 1);
        assert_eq!(p.checks, ["dio.*"]);
        let e = plan(|r| r.selection = Some("fast".into())).unwrap_err().0;
        assert!(e.contains("pages"), "{e}");
    }

    #[test]
    fn geometry_all_doubles_disk_targets_but_not_tmpfs() {
        let p = plan(|r| r.filesystems = strings(&["ext4", "tmpfs"])).unwrap();
        let t = p.targets();
        let names: Vec<_> = t
            .iter()
            .map(|t| {
                (
                    t.fs.as_str(),
                    t.logical_block_size,
                    t.disk_serial.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("ext4", Some(512), Some("zc-ext4-512")),
                ("ext4", Some(4096), Some("zc-ext4-4096")),
                ("tmpfs", None, None)
            ]
        );
        let one = plan(|r| r.geometry = Some(4096)).unwrap();
        assert_eq!(one.geometries, [4096]);
    }

    #[test]
    fn dax_targets_need_room_below_their_persistent_memory() {
        let e = plan(|r| {
            r.filesystems = strings(&["ext4-dax", "xfs-dax"]);
            r.memory = Some(256);
        })
        .unwrap_err()
        .0;
        assert!(e.contains("at least 448"), "{e}");
        assert!(plan(|r| {
            r.filesystems = strings(&["ext4"]);
            r.memory = Some(256);
        })
        .is_ok());
        // arm64's regions sit above --memory: any size holds them.
        assert!(plan(|r| {
            r.kernels = strings(&["7.2"]);
            r.arches = strings(&["arm64"]);
            r.filesystems = strings(&["ext4-dax", "xfs-dax"]);
            r.memory = Some(256);
        })
        .is_ok());
    }

    #[test]
    fn repeated_values_are_deduplicated() {
        let p = plan(|r| {
            r.kernels = strings(&["6.1", "6.1"]);
            r.filesystems = strings(&["ext4", "ext4"]);
        })
        .unwrap();
        assert_eq!(p.kernels.len(), 1);
        assert_eq!(p.filesystems, ["ext4"]);
    }

    #[test]
    fn empty_words_mean_the_default() {
        // What `--kernel ""` or ZCMATRIX_KERNELS="" (a workflow input left empty) gives.
        let p = plan(|r| {
            r.kernels = strings(&[""]);
            r.filesystems = strings(&[""]);
            r.checks = strings(&[""]);
        })
        .unwrap();
        assert_eq!(p.kernels.len(), 6);
        assert_eq!(p.filesystems.len(), target::TARGETS.len());
        assert!(p.checks.is_empty());
    }

    #[test]
    fn numbers_that_cannot_run_are_refused() {
        for (edit, says) in [
            (
                (|r: &mut Request| r.timeout = Some(0)) as fn(&mut Request),
                "--timeout",
            ),
            (|r| r.boot_timeout = Some(0), "--boot-timeout"),
            (|r| r.jobs = Some(0), "--jobs"),
            (|r| r.memory = Some(64), "--memory"),
            (|r| r.shard = Some("4/3".into()), "--shard"),
        ] {
            let e = plan(edit).unwrap_err().0;
            assert!(e.contains(says), "{e}");
        }
        // The boot deadline never outlasts the run's.
        let p = plan(|r| {
            r.timeout = Some(10);
            r.boot_timeout = Some(60);
        })
        .unwrap();
        assert_eq!(p.deadlines.boot, Duration::from_secs(10));
        assert_eq!(
            plan(|r| r.shard = Some("2/3".into())).unwrap().shard,
            Some(ShardSpec { index: 2, count: 3 })
        );
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(
            ShardSpec::parse("2/3").unwrap(),
            ShardSpec { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "1/3/4", "-1/3", ""] {
            assert!(ShardSpec::parse(bad).is_err(), "{bad}");
        }
    }

    fn listed_check(id: &str, profile: Profile, needs_swap: bool, needs_net: bool) -> CheckInfo {
        CheckInfo {
            needs_swap,
            needs_net,
            ..CheckInfo::new(id, zcmatrix_protocol::Scope::Fs, profile)
        }
    }

    #[test]
    fn a_swap_disk_only_for_runs_that_select_a_check_that_swaps() {
        let ids = vec![
            listed_check("dio.open", Profile::Quick, false, false),
            listed_check("cow.fork_basic[swapped_base]", Profile::Quick, true, false),
            listed_check(
                "cow.fork_basic[swapped_pte_thp_16k]",
                Profile::Full,
                true,
                false,
            ),
        ];
        let swap = |f: &[&str], p| needs_swap(&strings(f), &ids, p);
        assert!(swap(&[], Profile::Quick));
        assert!(!swap(&["dio.*"], Profile::Quick));
        assert!(swap(&["cow.*"], Profile::Quick));
        assert!(!swap(&["cow.*_16k]"], Profile::Quick));
        assert!(swap(&["cow.*_16k]"], Profile::Full));
    }

    #[test]
    fn a_network_only_for_runs_that_select_a_check_that_needs_it() {
        let listed = |id: &str, needs_net| listed_check(id, Profile::Quick, false, needs_net);
        let ids = vec![
            listed("dio.open", false),
            listed("net.msg_zerocopy_lo", false),
            listed("net.msg_zerocopy_nic", true),
        ];
        let net = |f: &[&str]| needs_net(&strings(f), &ids, Profile::Quick);
        assert!(net(&[]));
        assert!(net(&["net.*"]));
        assert!(!net(&["dio.*"]));
        assert!(!net(&["net.*_lo"]));
    }

    #[test]
    fn check_filters_must_match_a_known_id() {
        let listed = |id: &str, profile| listed_check(id, profile, false, false);
        let ids = vec![
            listed("dio.open", Profile::Quick),
            listed("sendfile.file_to_pipe", Profile::Quick),
            listed("cow.fork_basic[pte_thp_16k]", Profile::Full),
        ];
        let check = |f: &str, p| validate_checks(&[f.into()], &ids, p);
        assert!(check("sendfile.*", Profile::Quick).is_ok());
        let e = check("sendfil.*", Profile::Quick).unwrap_err().0;
        assert!(
            e.contains("sendfil.*") && e.contains("dio, sendfile, cow"),
            "{e}"
        );
        let e = check("cow.*", Profile::Quick).unwrap_err().0;
        assert!(e.contains("--profile full"), "{e}");
        assert!(check("cow.*", Profile::Full).is_ok());
        assert!(validate_checks(&[], &ids, Profile::Quick).is_ok());
    }
}
