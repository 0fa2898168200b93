//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use vm::guest::AccelChoice;
use vm::plan::{Plan, Request};
use zcmatrix_protocol::Profile;

use crate::report_cmd;
use crate::UsageError;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "zcmatrix: measure Linux zero-copy I/O rules in real kernels"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Boot one guest per kernel, run the checks on every filesystem, write the report.
    TestMatrix(MatrixArgs),
    /// Show or refresh the pinned Debian kernels (kernels.lock).
    Kernels {
        #[command(subcommand)]
        cmd: KernelsCmd,
    },
    /// Render every format (report.md, report.html, junit.xml) again from report.json; or
    /// `report diff OLD NEW`, or `report merge DIR… --out DIR`.
    Report {
        /// The folder holding report.json.
        #[arg(long, default_value_os_t = crate::workspace_root().join("target/zcmatrix"))]
        out: PathBuf,
        #[command(subcommand)]
        cmd: Option<report_cmd::ReportCmd>,
    },
    /// Helpers for CI workflows.
    Ci {
        #[command(subcommand)]
        cmd: CiCmd,
    },
    /// Install the host packages zcmatrix needs (QEMU and its firmware, the cross linkers and
    /// C libraries, mkfs tools, the Debian keyring, a browser) and prove them by linking the
    /// static harness of every guest architecture.
    Setup {
        /// Only list what is missing, installing nothing: exit 1 when something is, else 0.
        #[arg(long)]
        check: bool,
    },
    /// Time a bare boot against a one-check guest, and the default matrix with --jobs 1 against
    /// the default jobs (docs/performance.md).
    Bench {
        /// Repetitions of the bare boot and the one-check guest.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Repetitions of each default matrix (0 skips them).
        #[arg(long, default_value_t = 1)]
        matrix_reps: usize,
    },
    /// Write the generated documents (docs/families.md, from `harness list`) again.
    Docs,
}

#[derive(Subcommand, Debug)]
pub enum KernelsCmd {
    /// Resolve the newest build of each series and write kernels.lock.
    Update {
        /// Only these series (repeatable); all when omitted.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
    },
    /// What kernels.lock pins and what is in the cache.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// What fits the default matrix's time budget: one mTHP size, no multi-gigabyte reads.
    Quick,
    /// Every check at every size (see docs/performance.md for what it costs).
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM where a guest really runs under it, else TCG (said once; see docs/acceleration.md).
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GeometryArg {
    #[value(name = "512")]
    B512,
    #[value(name = "4096")]
    B4096,
    All,
}

#[derive(clap::Args, Debug)]
pub struct MatrixArgs {
    // The help names matrix.toml's series (see [`kernel_help`]).
    #[arg(
        long = "kernel",
        env = "ZCMATRIX_KERNELS",
        value_delimiter = ' ',
        help = kernel_help()
    )]
    pub kernels: Vec<String>,
    /// Guest architecture (x86_64, arm64, ppc64le); repeatable. A series given without a
    /// flavour (`7.2`) means the architecture's default flavour: cloud-amd64, cloud-arm64
    /// (4 KiB pages), powerpc64le-64k. Default: x86_64. Or $ZCMATRIX_ARCHES, separated by
    /// spaces.
    #[arg(long = "arch", env = "ZCMATRIX_ARCHES", value_delimiter = ' ')]
    pub arches: Vec<String>,
    // The help names the target table's filesystems (see [`fs_help`]).
    #[arg(
        long = "fs",
        env = "ZCMATRIX_FILESYSTEMS",
        value_delimiter = ' ',
        help = fs_help()
    )]
    pub filesystems: Vec<String>,
    /// Check filter, a glob over ids such as 'dio.*'; repeatable. Default: every check. Or
    /// $ZCMATRIX_CHECKS, separated by spaces.
    #[arg(long = "check", env = "ZCMATRIX_CHECKS", value_delimiter = ' ')]
    pub checks: Vec<String>,
    /// quick: what fits the default matrix's time budget; full: every check at every size. Or
    /// $ZCMATRIX_PROFILE.
    #[arg(long, value_enum, default_value = "quick", env = "ZCMATRIX_PROFILE")]
    pub profile: ProfileArg,
    /// Judge every guest's observations by the rules of another kernel series (`7.2`,
    /// `5.10.160`) instead of its own: to study a kernel against another's expectations.
    /// Where they differ the results are `fail` and the run exits 1.
    #[arg(long)]
    pub judge_as: Option<String>,
    /// A named selection from matrix.toml (`pages`: 7.2 on x86_64, arm64-16k and
    /// powerpc64le-64k with the page-size checks): its kernels and checks stand for --kernel
    /// and --check when those are not given.
    #[arg(long)]
    pub selection: Option<String>,
    /// Logical block size of the virtio disks (`all`: matrix.toml's geometries).
    #[arg(long, value_enum, default_value = "all")]
    pub geometry: GeometryArg,
    /// auto: KVM where a guest really runs under it (a probe vCPU, then the first guests on
    /// trial; the verdict is kept in the cache), else TCG, said once. kvm, tcg: the user's word.
    /// Or $ZCMATRIX_ACCEL.
    #[arg(long, value_enum, default_value = "auto", env = "ZCMATRIX_ACCEL")]
    pub accel: AccelArg,
    /// Where report.json, report.md and the per-guest logs go.
    #[arg(long, default_value_os_t = crate::workspace_root().join("target/zcmatrix"))]
    pub out: PathBuf,
    /// Seconds a guest may run before it is killed and reported as timed out (default:
    /// matrix.toml's run.timeout_s, 300; six times that with --profile full).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Guest memory in MiB (default: matrix.toml's run.memory_mb, 512).
    #[arg(long)]
    pub memory: Option<u32>,
    /// The kernels.lock to read and update instead of the committed one (default:
    /// $ZCMATRIX_LOCK, else kernels.lock in the workspace), to try other builds.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// The cache of kernels, images and initramfs (default: $ZCMATRIX_CACHE, else
    /// target/zcmatrix-cache).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Guests run at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Times a guest that ended for an infrastructure reason (no guest, boot_timeout,
    /// qemu_exited) is started again; a failed check or a kernel's panic never is.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Seconds a guest may take to send its first record before it is killed and reported as
    /// boot_timeout (default: matrix.toml's run.boot_timeout_s, 30; twice that for a guest of
    /// another architecture than the host's, which QEMU emulates).
    #[arg(long)]
    pub boot_timeout: Option<u64>,
    /// A word appended to every guest's kernel command line (later words win); repeatable.
    #[arg(long = "kernel-arg")]
    pub kernel_args: Vec<String>,
    /// A user check: a static program that prints KTAP, run in every filesystem target of
    /// every guest after the built-in checks (results `user.NAME[TEST]`); PATH, or ARCH=PATH
    /// to give each guest architecture its own build; repeatable. Or $ZCMATRIX_EXEC,
    /// separated by spaces.
    #[arg(
        long = "exec",
        env = "ZCMATRIX_EXEC",
        value_delimiter = ' ',
        value_name = "[ARCH=]PATH"
    )]
    pub exec: Vec<String>,
    /// Run only shard K of N (1-based) of the selected matrix: whole kernels' guests, balanced
    /// by how long they took last time; `cargo xtask report merge` joins the shards' reports.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}

impl MatrixArgs {
    /// The run's plan: the flags as vm's [`Request`], checked by [`Plan::new`] (a refusal is
    /// a usage error).
    pub fn plan(&self) -> Result<Plan, UsageError> {
        Ok(Plan::new(&self.request())?)
    }

    fn request(&self) -> Request {
        Request {
            kernels: self.kernels.clone(),
            arches: self.arches.clone(),
            filesystems: self.filesystems.clone(),
            checks: self.checks.clone(),
            profile: match self.profile {
                ProfileArg::Quick => Profile::Quick,
                ProfileArg::Full => Profile::Full,
            },
            judge_as: self.judge_as.clone(),
            selection: self.selection.clone(),
            geometry: match self.geometry {
                GeometryArg::B512 => Some(512),
                GeometryArg::B4096 => Some(4096),
                GeometryArg::All => None,
            },
            accel: match self.accel {
                AccelArg::Auto => AccelChoice::Auto,
                AccelArg::Kvm => AccelChoice::Kvm,
                AccelArg::Tcg => AccelChoice::Tcg,
            },
            out: self.out.clone(),
            timeout: self.timeout,
            memory: self.memory,
            lock: self.lock.clone().unwrap_or_else(crate::lock_path),
            cache: self.cache.clone().unwrap_or_else(crate::cache_dir),
            jobs: self.jobs,
            retries: self.retries,
            boot_timeout: self.boot_timeout,
            kernel_args: self.kernel_args.clone(),
            exec: self.exec.clone(),
            shard: self.shard.clone(),
        }
    }
}

// Parsed once per process: the size of a variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum CiCmd {
    /// Print the shard list of the selected matrix as JSON for a workflow's `strategy.matrix`:
    /// `{"include":[{"shard":"1/3"},…]}`, at most one shard per kernel.
    MatrixPlan {
        #[command(flatten)]
        args: MatrixArgs,
        /// Shards wanted (fewer when the selection has fewer kernels).
        #[arg(long)]
        shards: u32,
    },
    /// Say which Debian mirror kernels will come from, or fail at once (exit 3) naming the
    /// variable to set, also in $GITHUB_STEP_SUMMARY when there is one: a fork's first run
    /// says what it lacks before any runner boots a guest.
    Mirror,
    /// Prove the README's install in a fresh Debian 12 root (debootstrap from this host's
    /// mirror, this host's Rust toolchain): `cargo xtask setup` as root, then as a normal user
    /// with sudo `setup` and the main command on every default kernel and architecture; fails
    /// unless every cell completes (docs/fresh-root.md). Run as root.
    FreshRoot(FreshRootArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvmArg {
    /// /dev/kvm as on a Debian machine whose user is in the `kvm` group (when the host has it).
    Visible,
    /// No /dev/kvm: a machine without KVM (every guest under TCG).
    Hidden,
}

/// `cargo xtask ci fresh-root`'s options (see `crate::fresh_root`).
#[derive(clap::Args, Debug)]
pub struct FreshRootArgs {
    /// Whether the root's /dev has the host's KVM device.
    #[arg(
        long,
        value_enum,
        default_value = "visible",
        env = "ZCMATRIX_FRESH_ROOT_KVM"
    )]
    pub kvm: KvmArg,
    /// Where the root, its cached tarball, apt's package cache and the matrix's report go.
    #[arg(long, default_value_os_t = crate::workspace_root().join("target/fresh-root"))]
    pub work: PathBuf,
    /// A zcmatrix cache (`$ZCMATRIX_CACHE`, `target/zcmatrix-cache`) whose kernel packages
    /// (debs/*.deb) the root's run starts with instead of downloading them; each is used only if
    /// its sha256 is kernels.lock's, and unpacked anew.
    #[arg(long)]
    pub kernel_debs: Option<PathBuf>,
    /// Leave the root in WORK/root after the run (it is removed before the next one).
    #[arg(long)]
    pub keep: bool,
}

/// `--kernel`'s help, naming the series matrix.toml declares.
fn kernel_help() -> String {
    let series: Vec<&str> = vm::kernel::all_series().iter().map(|s| s.spec).collect();
    format!(
        "Kernel series ({}; a flavour after a dash: 7.2-arm64-16k), a distribution's kernel \
         package (FILE.deb; a split build's files joined by commas: IMAGE.deb,MODULES.deb), or \
         an image path (/boot/vmlinuz-X finds /lib/modules/X; or PATH:MODULES_DIR); repeatable. \
         Default: matrix.toml's defaults. $ZCMATRIX_KERNELS, words separated by spaces, stands \
         for the flags when none is given (how a workflow passes its inputs without putting \
         them into a shell command).",
        series.join(", ")
    )
}

/// `--fs`'s help, naming every filesystem target.
fn fs_help() -> String {
    format!(
        "Filesystem to test ({}); repeatable. Default: matrix.toml's filesystems. Or \
         $ZCMATRIX_FILESYSTEMS, separated by spaces.",
        zcmatrix_protocol::target::names().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, UsageError> {
        let mut v = vec!["cargo xtask", "test-matrix"];
        v.extend(args);
        let cli = Cli::try_parse_from(v).unwrap();
        let Cmd::TestMatrix(a) = cli.cmd else {
            panic!()
        };
        a.plan()
    }

    /// Each flag reaches the plan (what vm decides with them is tested in `vm::plan`).
    #[test]
    fn the_flags_become_the_plan() {
        let p = plan(&[
            "--kernel",
            "6.1",
            "--fs",
            "ext4",
            "--check",
            "dio.*",
            "--profile",
            "full",
            "--judge-as",
            "7.2",
            "--geometry",
            "4096",
            "--accel",
            "tcg",
            "--out",
            "/tmp/zc-out",
            "--timeout",
            "70",
            "--boot-timeout",
            "50",
            "--memory",
            "640",
            "--lock",
            "/tmp/zc.lock",
            "--cache",
            "/tmp/zc-cache",
            "--jobs",
            "3",
            "--retries",
            "2",
            "--kernel-arg",
            "quiet",
            "--shard",
            "1/2",
        ])
        .unwrap();
        let labels: Vec<String> = p.kernels.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["6.1"]);
        assert_eq!(p.filesystems, ["ext4"]);
        assert_eq!(p.checks, ["dio.*"]);
        assert_eq!(p.profile, Profile::Full);
        assert_eq!(p.judge_as.as_deref(), Some("7.2"));
        assert_eq!(p.geometries, [4096]);
        assert_eq!(p.accel, AccelChoice::Tcg);
        assert_eq!(p.out, PathBuf::from("/tmp/zc-out"));
        assert_eq!(p.deadlines.run.as_secs(), 70);
        assert_eq!(p.deadlines.boot.as_secs(), 50);
        assert_eq!(p.memory_mb, 640);
        assert_eq!(p.lock, PathBuf::from("/tmp/zc.lock"));
        assert_eq!(p.cache, PathBuf::from("/tmp/zc-cache"));
        assert_eq!((p.jobs, p.retries), (3, 2));
        assert_eq!(p.kernel_args, ["quiet"]);
        assert_eq!(p.shard, Some(vm::plan::ShardSpec { index: 1, count: 2 }));
        let p = plan(&["--geometry", "512"]).unwrap();
        assert_eq!(p.geometries, [512]);
        assert_eq!(plan(&[]).unwrap().geometries, [512, 4096]);
    }

    #[test]
    fn words_separated_by_spaces_are_separate_values() {
        let p = plan(&["--kernel", "6.1  6.12", "--check", "dio.* tee.*"]).unwrap();
        assert_eq!(p.kernels.len(), 2);
        assert_eq!(p.checks, ["dio.*", "tee.*"]);
        let e = plan(&["--fs", "zfs"]).unwrap_err().0;
        assert!(e.contains("unknown filesystem \"zfs\""), "{e}");
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
                let cli = Cli::try_parse_from(argv).map_err(|e| e.kind());
                cli.map(|c| match c.cmd {
                    Cmd::TestMatrix(a) => a.accel,
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
                    "cli::tests::zcmatrix_accel_stands_for_the_flag",
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

    /// Tidy: `test-matrix --help` names every filesystem target and kernel series matrix.toml
    /// declares, read from the file itself rather than through the code that builds the help.
    #[test]
    fn help_lists_every_target_and_kernel_that_matrix_toml_declares() {
        let text = std::fs::read_to_string(crate::workspace_root().join("matrix.toml")).unwrap();
        let m: toml::Table = text.parse().unwrap();
        let strings = |v: &toml::Value| v.as_str().unwrap().to_string();
        let filesystems: Vec<String> = m["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        let series: Vec<String> = m["kernel"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| strings(&k["series"]))
            .collect();
        assert!(filesystems.len() >= 7 && series.len() >= 5);
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("test-matrix")
            .unwrap()
            .render_long_help()
            .to_string();
        let arg_help = |flag: &str| {
            let start = help
                .find(flag)
                .unwrap_or_else(|| panic!("{flag} in {help}"));
            let rest = &help[start + flag.len()..];
            // Its words, up to the next option (whole words: `6.12` does not stand for `6.1`).
            rest[..rest.find("\n  -").unwrap_or(rest.len())]
                .split(|c: char| c.is_whitespace() || "(),;:".contains(c))
                .map(str::to_string)
                .collect::<Vec<String>>()
        };
        let fs = arg_help("--fs <");
        for f in &filesystems {
            assert!(fs.contains(f), "--fs help lacks {f}: {fs:?}");
        }
        let kernel = arg_help("--kernel <");
        for s in &series {
            assert!(kernel.contains(s), "--kernel help lacks {s}: {kernel:?}");
        }
    }
}
