//! The validated plan of a run: kernels × geometries × filesystems × checks. Everything the user
//! typed is checked here, before anything is fetched or booted.

use std::path::PathBuf;
use std::time::Duration;

use vm::arch::Arch;
use vm::declared;
use vm::disk::{self, Backing};
use vm::guest::AccelChoice;
use vm::kernel::{all_series, DebianKernel, KernelSpec};
use vm::qemu::Deadlines;
use zcmatrix_protocol::catalogue::{self, CheckInfo};
use zcmatrix_protocol::target;
use zcmatrix_protocol::{FsTarget, Profile};

use crate::cli::{AccelArg, GeometryArg, MatrixArgs, ProfileArg};
use crate::UsageError;

#[derive(Debug)]
pub struct Plan {
    pub kernels: Vec<KernelSpec>,
    pub filesystems: Vec<String>,
    pub geometries: Vec<u32>,
    pub checks: Vec<String>,
    pub profile: Profile,
    /// `--judge-as`: a series (`X.Y` or `X.Y.Z`) whose rules judge every guest.
    pub judge_as: Option<String>,
    pub accel: AccelChoice,
    pub out: PathBuf,
    pub deadlines: Deadlines,
    pub kernel_args: Vec<String>,
    pub memory_mb: u32,
    /// The pins this run reads and updates.
    pub lock: PathBuf,
    /// Guests at once.
    pub jobs: usize,
    pub cache: PathBuf,
    pub retries: u32,
    /// `--shard K/N`: run only this slice of the kernels.
    pub shard: Option<crate::cli::ShardSpec>,
    /// `--exec`: the user's KTAP programs, a binary per guest architecture.
    pub user_checks: Vec<vm::user::UserProgram>,
}

/// How many times matrix.toml's run deadline a guest of the full profile gets by default.
const FULL_PROFILE_DEADLINE_FACTOR: u64 = 6;

impl Plan {
    pub fn from_args(a: &MatrixArgs) -> Result<Plan, UsageError> {
        // Empty words come from the environment's lists ($ZCMATRIX_KERNELS set to "", or
        // doubled spaces): a workflow input left empty means the default.
        let words = |v: &[String]| -> Vec<String> {
            v.iter().filter(|w| !w.trim().is_empty()).cloned().collect()
        };
        let (mut a_kernels, mut a_filesystems, mut checks) =
            (words(&a.kernels), words(&a.filesystems), words(&a.checks));
        if let Some(name) = &a.selection {
            let m = declared::matrix();
            let p = m
                .selections
                .iter()
                .find(|p| p.name == *name)
                .ok_or_else(|| {
                    UsageError(format!(
                        "unknown selection {name:?}: matrix.toml has {}",
                        m.selections
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if a_kernels.is_empty() {
                a_kernels = p.kernels.clone();
            }
            if checks.is_empty() {
                checks = p.checks.clone();
            }
            if a_filesystems.is_empty() {
                a_filesystems = p.filesystems.clone();
            }
        }
        let mut arches: Vec<Arch> = Vec::new();
        for w in words(&a.arches) {
            let arch = Arch::parse(&w).ok_or_else(|| {
                UsageError(format!(
                    "unknown architecture {w:?}: choose from {}",
                    Arch::ALL.map(Arch::name).join(", ")
                ))
            })?;
            if !arches.contains(&arch) {
                arches.push(arch);
            }
        }
        let kernels = kernels_of(&a_kernels, &arches)?;
        let mut guest_arches: Vec<Arch> = kernels.iter().map(KernelSpec::arch).collect();
        guest_arches.sort();
        guest_arches.dedup();
        let user_checks = vm::user::parse(&words(&a.exec), &guest_arches).map_err(UsageError)?;
        let m = declared::matrix();
        let filesystems: Vec<String> = if a_filesystems.is_empty() {
            m.filesystems.iter().map(|s| s.to_string()).collect()
        } else {
            let mut v: Vec<String> = Vec::new();
            for f in &a_filesystems {
                if target::find(f).is_none() {
                    return Err(UsageError(format!(
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
        let geometries = match a.geometry {
            GeometryArg::B512 => vec![512],
            GeometryArg::B4096 => vec![4096],
            GeometryArg::All => m.geometries.clone(),
        };
        // The full profile's guests do several times the work (every mTHP size, 2 GiB reads,
        // 8 MiB cost transfers on every target and through the NIC): a 6.1 guest's cost family
        // alone ran past 300 s under TCG.
        let timeout = a.timeout.unwrap_or(match a.profile {
            ProfileArg::Quick => m.timeout_s,
            ProfileArg::Full => m.timeout_s * FULL_PROFILE_DEADLINE_FACTOR,
        });
        let memory = a.memory.unwrap_or(m.memory_mb);
        let boot_timeout = a.boot_timeout.unwrap_or(m.boot_timeout_s);
        if timeout == 0 {
            return Err(UsageError("--timeout must be at least 1 second".into()));
        }
        if boot_timeout == 0 {
            return Err(UsageError(
                "--boot-timeout must be at least 1 second".into(),
            ));
        }
        if a.jobs == Some(0) {
            return Err(UsageError("--jobs must be at least 1".into()));
        }
        let shard = a
            .shard
            .as_deref()
            .map(crate::cli::ShardSpec::parse)
            .transpose()?;
        if memory < 128 {
            return Err(UsageError("--memory must be at least 128 MiB".into()));
        }
        let pmem = filesystems
            .iter()
            .filter(|f| disk::backing(f) == Backing::Pmem)
            .count();
        if pmem > 0 && memory < vm::pmem::min_memory_mb(pmem) {
            return Err(UsageError(format!(
                "--memory {} is too little for the DAX targets, whose persistent memory sits \
                 in the guest's low memory: give at least {} or leave out --fs ext4-dax/xfs-dax",
                memory,
                vm::pmem::min_memory_mb(pmem)
            )));
        }
        Ok(Plan {
            kernels,
            filesystems,
            geometries,
            checks,
            profile: match a.profile {
                ProfileArg::Quick => Profile::Quick,
                ProfileArg::Full => Profile::Full,
            },
            judge_as: a
                .judge_as
                .as_deref()
                .map(|s| {
                    let ok = s.split('.').count() >= 2
                        && s.split('.')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                    ok.then(|| s.to_string()).ok_or_else(|| {
                        UsageError(format!(
                            "--judge-as {s:?}: expected a kernel series like 7.2 or 5.10.160"
                        ))
                    })
                })
                .transpose()?,
            accel: match a.accel {
                AccelArg::Auto => AccelChoice::Auto,
                AccelArg::Kvm => AccelChoice::Kvm,
                AccelArg::Tcg => AccelChoice::Tcg,
            },
            out: a.out.clone(),
            deadlines: Deadlines {
                // A boot deadline past the run's would never fire.
                boot: Duration::from_secs(boot_timeout.min(timeout)),
                run: Duration::from_secs(timeout),
            },
            kernel_args: a.kernel_args.clone(),
            memory_mb: memory,
            lock: a.lock.clone().unwrap_or_else(crate::lock_path),
            jobs: a.jobs.unwrap_or_else(vm::matrix::default_jobs),
            cache: a.cache.clone().unwrap_or_else(crate::cache_dir),
            retries: a.retries,
            shard,
            user_checks,
        })
    }

    /// The quick profile's narrowing of guests the host emulates (matrix.toml's `[quick]`),
    /// unless the command line named checks: the user asked for those everywhere.
    pub fn emulated(&self) -> Option<vm::matrix::Narrowed> {
        if self.profile != Profile::Quick || !self.checks.is_empty() {
            return None;
        }
        let s = declared::matrix().quick_emulated.as_ref()?;
        Some(vm::matrix::Narrowed {
            checks: s.checks.clone(),
            filesystems: s.filesystems.clone(),
        })
    }

    /// The filesystems one guest prepares: each disk filesystem once per geometry, tmpfs once.
    pub fn targets(&self) -> Vec<FsTarget> {
        let mut out = Vec::new();
        for fs in &self.filesystems {
            match disk::backing(fs) {
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
                // (vm::pmem).
                Backing::Pmem => out.push(FsTarget {
                    fs: fs.clone(),
                    logical_block_size: Some(512),
                    ..FsTarget::default()
                }),
            }
        }
        out
    }

    pub fn needs_debian(&self) -> bool {
        self.kernels
            .iter()
            .any(|k| matches!(k, KernelSpec::Debian(_)))
    }
}

/// The kernels of `--kernel` words on `--arch` architectures: a bare series once per
/// architecture (its default flavour there), a series with a flavour once, if its architecture
/// is among those asked for. No words: matrix.toml's default kernels, or with `--arch` every
/// series that is not opt-in in that architecture's default flavour (where Debian builds one).
fn kernels_of(words: &[String], arches: &[Arch]) -> Result<Vec<KernelSpec>, UsageError> {
    if words.is_empty() {
        let mut v = Vec::new();
        for series in all_series().iter().filter(|s| !s.opt_in()) {
            if arches.is_empty() {
                for name in series.default_flavours {
                    let flavour = vm::declared::flavour(name).expect("matrix.toml is checked");
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
            vec![KernelSpec::parse(w).map_err(|e| UsageError(e.to_string()))?]
        } else {
            let bare = all_series().iter().any(|s| s.spec == w);
            let mut specs = Vec::new();
            let mut first_err = None;
            for &arch in arches {
                match KernelSpec::parse_for(w, Some(arch)) {
                    Ok(s) => specs.push(s),
                    Err(e) if bare || first_err.is_some() => return Err(UsageError(e.to_string())),
                    Err(e) => first_err = Some(e),
                }
            }
            match (specs.is_empty(), first_err) {
                (true, Some(e)) => return Err(UsageError(e.to_string())),
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
/// catalogue's [`catalogue::select`], as a usage error.
pub fn validate_checks(
    filters: &[String],
    checks: &[CheckInfo],
    profile: Profile,
) -> Result<(), UsageError> {
    catalogue::select(checks, filters, profile)
        .map(drop)
        .map_err(|e| UsageError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan, UsageError> {
        let mut v = vec!["cargo xtask", "test-matrix"];
        v.extend(args);
        let cli = crate::Cli::try_parse_from(v).unwrap();
        let crate::cli::Cmd::TestMatrix(a) = cli.cmd else {
            panic!()
        };
        Plan::from_args(&a)
    }

    #[test]
    fn default_matrix_is_every_series_and_filesystem() {
        let p = plan(&[]).unwrap();
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
    }

    #[test]
    fn unknown_kernel_and_filesystem_name_the_choices() {
        let e = plan(&["--kernel", "4.19"]).unwrap_err().0;
        assert!(e.contains("5.10, 6.1, 6.12, 7.2, next"), "{e}");
        let e = plan(&["--arch", "riscv64"]).unwrap_err().0;
        assert!(e.contains("x86_64, arm64, ppc64le"), "{e}");
        let e = plan(&["--fs", "zfs"]).unwrap_err().0;
        assert!(e.contains("ext4, xfs, btrfs, tmpfs, overlay"), "{e}");
    }

    #[test]
    fn arch_picks_the_flavour_of_a_bare_series() {
        let labels = |args: &[&str]| -> Vec<String> {
            plan(args)
                .unwrap()
                .kernels
                .iter()
                .map(|k| k.label())
                .collect()
        };
        assert_eq!(
            labels(&["--kernel", "7.2", "--arch", "arm64"]),
            ["7.2-cloud-arm64"]
        );
        assert_eq!(
            labels(&["--kernel", "7.2", "--arch", "x86_64", "--arch", "ppc64le"]),
            ["7.2", "7.2-powerpc64le-64k"]
        );
        assert_eq!(
            labels(&[
                "--kernel",
                "7.2-arm64-16k",
                "--arch",
                "arm64",
                "--arch",
                "x86_64"
            ]),
            ["7.2-arm64-16k"]
        );
        assert_eq!(labels(&["--kernel", "next"]), ["next"]);
        // A flavour of an architecture not asked for is an error, not silently nothing.
        assert!(plan(&["--kernel", "7.2-arm64-16k", "--arch", "ppc64le"]).is_err());
        // --arch alone: every default series in that architecture's first flavour.
        assert_eq!(
            labels(&["--arch", "ppc64le"]),
            ["6.12-powerpc64le-64k", "7.2-powerpc64le-64k"]
        );
    }

    #[test]
    fn judge_as_takes_a_series_and_refuses_anything_else() {
        assert_eq!(
            plan(&["--judge-as", "7.2"]).unwrap().judge_as.as_deref(),
            Some("7.2")
        );
        assert_eq!(
            plan(&["--judge-as", "5.10.160"])
                .unwrap()
                .judge_as
                .as_deref(),
            Some("5.10.160")
        );
        assert!(plan(&[]).unwrap().judge_as.is_none());
        for bad in ["seven", "7", "7.x", "7..2"] {
            assert!(plan(&["--judge-as", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_full_profile_gets_a_longer_run_deadline_unless_one_is_given() {
        let run = |args: &[&str]| plan(args).unwrap().deadlines.run.as_secs();
        assert_eq!(run(&[]), 300);
        assert_eq!(run(&["--profile", "full"]), 1800);
        assert_eq!(run(&["--profile", "full", "--timeout", "60"]), 60);
    }

    #[test]
    fn quick_narrows_emulated_guests_unless_checks_are_named() {
        let p = plan(&[]).unwrap();
        let labels: Vec<String> = p.kernels.iter().map(KernelSpec::label).collect();
        for k in ["7.2", "7.2-arm64-16k", "7.2-powerpc64le-64k"] {
            assert!(labels.contains(&k.to_string()), "{k} not in {labels:?}");
        }
        let n = p
            .emulated()
            .expect("the default quick run narrows emulated guests");
        assert!(n.checks.contains(&"sendfile.max_count".to_string()));
        assert!(!n.filesystems.contains(&"ext4-dax".to_string()));
        assert!(plan(&["--profile", "full"]).unwrap().emulated().is_none());
        assert!(plan(&["--check", "dio.*"]).unwrap().emulated().is_none());
    }

    #[test]
    fn a_selection_stands_for_kernels_and_checks_not_given() {
        let p = plan(&["--selection", "pages"]).unwrap();
        let labels: Vec<String> = p.kernels.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["7.2", "7.2-arm64-16k", "7.2-powerpc64le-64k"]);
        assert!(p.checks.contains(&"sendfile.max_count".to_string()));
        assert_eq!(p.filesystems, ["ext4", "xfs", "btrfs", "tmpfs"]);
        let p = plan(&[
            "--selection",
            "pages",
            "--kernel",
            "6.12",
            "--check",
            "dio.*",
        ])
        .unwrap();
        assert_eq!(p.kernels.len(), 1);
        assert_eq!(p.checks, ["dio.*"]);
        let e = plan(&["--selection", "fast"]).unwrap_err().0;
        assert!(e.contains("pages"), "{e}");
    }

    #[test]
    fn geometry_all_doubles_disk_targets_but_not_tmpfs() {
        let p = plan(&["--fs", "ext4", "--fs", "tmpfs", "--geometry", "all"]).unwrap();
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
    }

    #[test]
    fn dax_targets_need_room_below_their_persistent_memory() {
        let e = plan(&["--fs", "ext4-dax", "--fs", "xfs-dax", "--memory", "256"])
            .unwrap_err()
            .0;
        assert!(e.contains("at least 448"), "{e}");
        assert!(plan(&["--fs", "ext4", "--memory", "256"]).is_ok());
    }

    #[test]
    fn repeated_values_are_deduplicated() {
        let p = plan(&[
            "--kernel", "6.1", "--kernel", "6.1", "--fs", "ext4", "--fs", "ext4",
        ])
        .unwrap();
        assert_eq!(p.kernels.len(), 1);
        assert_eq!(p.filesystems, ["ext4"]);
    }

    #[test]
    fn empty_words_mean_the_default() {
        // What `--kernel ""` or ZCMATRIX_KERNELS="" (a workflow input left empty) gives.
        let p = plan(&["--kernel", "", "--fs", "", "--check", ""]).unwrap();
        assert_eq!(p.kernels.len(), 6);
        assert_eq!(p.filesystems.len(), target::TARGETS.len());
        assert!(p.checks.is_empty());
        // Words separated by spaces are separate values.
        let p = plan(&["--kernel", "6.1  6.12", "--check", "dio.* tee.*"]).unwrap();
        assert_eq!(p.kernels.len(), 2);
        assert_eq!(p.checks, ["dio.*", "tee.*"]);
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
        let swap = |f: &[&str], p| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            needs_swap(&f, &ids, p)
        };
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
        let net = |f: &[&str]| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            needs_net(&f, &ids, Profile::Quick)
        };
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

    /// Set in the child process [`zcmatrix_accel_stands_for_the_flag`] starts: the environment is
    /// the child's own from its start (setting it here would race with every test thread that
    /// parses a command line).
    const ACCEL_CHILD: &str = "ZCMATRIX_TEST_ACCEL_CHILD";

    #[test]
    fn zcmatrix_accel_stands_for_the_flag() {
        if std::env::var_os(ACCEL_CHILD).is_some() {
            let parse = |args: &[&str]| {
                let argv = ["cargo xtask", "test-matrix"].iter().chain(args);
                let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| e.kind());
                cli.map(|c| match c.cmd {
                    crate::cli::Cmd::TestMatrix(a) => a.accel,
                    other => panic!("{other:?}"),
                })
            };
            match std::env::var("ZCMATRIX_ACCEL").as_deref() {
                Ok("tcg") => {
                    assert_eq!(parse(&[]), Ok(AccelArg::Tcg));
                    assert_eq!(
                        parse(&["--accel", "kvm"]),
                        Ok(AccelArg::Kvm),
                        "the flag wins"
                    );
                }
                Ok("warp") => {
                    assert_eq!(
                        crate::run(["cargo xtask", "test-matrix"]),
                        crate::exit::USAGE
                    );
                }
                other => panic!("{other:?}"),
            }
            return;
        }
        for value in ["tcg", "warp"] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "plan::tests::zcmatrix_accel_stands_for_the_flag",
                    "--test-threads=1",
                ])
                .env(ACCEL_CHILD, "1")
                .env("ZCMATRIX_ACCEL", value)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "ZCMATRIX_ACCEL={value}: {said}");
            assert!(said.contains("1 passed"), "the child ran the test: {said}");
        }
    }

    #[test]
    fn bad_usage_is_exit_2() {
        assert_eq!(
            crate::run(["cargo xtask", "test-matrix", "--fs", "zfs"]),
            crate::exit::USAGE
        );
        assert_eq!(
            crate::run(["cargo xtask", "test-matrix", "--accel", "warp"]),
            crate::exit::USAGE
        );
        assert_eq!(crate::run(["cargo xtask", "bogus"]), crate::exit::USAGE);
        for bad in ["0/3", "4/3", "x"] {
            assert_eq!(
                crate::run(["cargo xtask", "test-matrix", "--shard", bad]),
                crate::exit::USAGE,
                "{bad}"
            );
        }
    }
}
