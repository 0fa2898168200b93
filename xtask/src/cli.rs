//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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

/// `--shard K/N`: shard K (1-based) of N (see [`crate::shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    pub fn parse(s: &str) -> Result<ShardSpec, UsageError> {
        let bad = || {
            UsageError(format!(
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
    use clap::CommandFactory;

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
        let mut cmd = super::Cli::command();
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
