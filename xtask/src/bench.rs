//! `cargo xtask bench`: what zcmatrix costs over a bare boot, and what parallel guests buy, in
//! one run with alternating repetitions (the machine is shared, so only ratios measured side by
//! side mean anything):
//!
//! - (a) a bare boot: the same kernel and QEMU settings as a zcmatrix guest, with a tiny static
//!   init that powers off at once;
//! - (b) a zcmatrix guest with one trivial check, through `cargo xtask test-matrix` (the CLI,
//!   the harness build check and the KVM verdict included);
//! - (c) the warm default matrix with `--jobs 1` and with the default jobs;
//! - (d) the matrix of the runner issue's day: its families ([`FIRST_FAMILIES`]) on the four
//!   x86_64 kernels and its filesystems, the content its 50 s target was set for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vm::guest::{AccelChoice, AccelPolicy};
use vm::initramfs::{write_cpio, Entry};
use vm::kernel::{KernelSpec, KernelStore, LockFile};
use vm::qemu::{self, Deadlines, GuestSpec};

use crate::exit;

/// The check families zcmatrix had when the runner's time target (50 s for the warm default
/// matrix on 2 cores) was set; the families added since share a larger budget (120 s).
const FIRST_FAMILIES: &[&str] = &[
    "dio", "mmap", "sendfile", "splice", "tee", "vmsplice", "cow",
];

/// The filesystems of that day (before overlay and the DAX targets).
const FIRST_FILESYSTEMS: &[&str] = &["ext4", "xfs", "btrfs", "tmpfs"];

/// An init that powers the machine off, nothing else.
const POWEROFF_C: &str = r#"#include <sys/reboot.h>
#include <unistd.h>
int main(void) { sync(); reboot(RB_POWER_OFF); return 1; }
"#;

/// Wall time and the CPU time of the children it covered.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

impl Sample {
    /// CPU use as a share of all cores over the wall time.
    fn busy(&self, cores: usize) -> f64 {
        self.cpu.as_secs_f64() / (self.wall.as_secs_f64() * cores as f64)
    }
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_CHILDREN has no preconditions.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f` (which waits for its children) and measures it.
fn measure(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Sample> {
    let cpu = children_cpu();
    let t = Instant::now();
    f()?;
    Ok(Sample {
        wall: t.elapsed(),
        cpu: children_cpu() - cpu,
    })
}

fn median(v: &[Sample]) -> Sample {
    let mut w: Vec<Sample> = v.to_vec();
    w.sort_by_key(|s| s.wall);
    w[w.len() / 2]
}

/// The power-off init as a one-file initramfs, built with the host's C compiler.
fn bare_initrd(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let src = dir.join("poweroff.c");
    let bin = dir.join("poweroff");
    std::fs::write(&src, POWEROFF_C)?;
    let ok = Command::new("cc")
        .args(["-static", "-Os", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .context("running cc (install gcc or build-essential)")?
        .success();
    if !ok {
        bail!("cc could not build a static power-off init");
    }
    let cpio = dir.join("poweroff.cpio");
    let entries = [Entry::file("init", 0o755, std::fs::read(&bin)?)];
    write_cpio(&entries, std::fs::File::create(&cpio)?)?;
    Ok(cpio)
}

/// `cargo xtask test-matrix ARGS --out OUT`, as a user types it.
fn xtask_matrix(out: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["xtask", "test-matrix", "--out"])
        .arg(out)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    // 0 and 1 are runs that measured (1: some check failed); anything else did not.
    match st.code() {
        Some(0 | 1) => Ok(()),
        other => bail!(
            "test-matrix {args:?} ended with {other:?}; see {}",
            out.display()
        ),
    }
}

pub fn run(reps: usize, matrix_reps: usize) -> anyhow::Result<u8> {
    let cores = vm::plan::default_jobs();
    let cache = crate::cache_dir();
    let work = tempfile::tempdir()?;
    let spec = KernelSpec::parse("6.1")?;
    let mut lock = LockFile::load(&crate::lock_path())?;
    let kernel = KernelStore::new(&cache).ensure(&spec, &mut lock)?;
    let initrd = bare_initrd(&work.path().join("bare"))?;
    let one = ["--kernel", "6.1", "--fs", "tmpfs", "--check", "dio.open"];
    // Warm everything once (harness build, kernel, initramfs) so no repetition pays for it. The
    // bare boot's accelerator is decided after it: the warm run's KVM verdict, kept in the
    // cache, spares the bare boot a KVM that runs no guest.
    xtask_matrix(&work.path().join("warm"), &one)?;
    let accel = AccelPolicy::new(AccelChoice::Auto, &cache).accel();
    // The settings of a tmpfs-only zcmatrix guest running dio.open: its memory and command
    // line, and no disk (none of its checks swaps, so it gets no swap disk).
    let bare = GuestSpec {
        arch: kernel.arch,
        kernel: kernel.image.clone(),
        initrd,
        cmdline: qemu::kernel_cmdline(kernel.arch, 512),
        memory_mb: 512,
        cpus: 1,
        accel,
        paused: false,
        disks: Vec::new(),
        console: work.path().join("bare-console.log"),
        results: work.path().join("bare-results.jsonl"),
        ram_file: None,
        dt_pmem: Vec::new(),
        dtb: None,
        net: None,
    };
    eprintln!("bench: {cores} cores, accel {accel:?}; {reps} × (bare boot, one-check guest)");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let never = AtomicBool::new(false);
    for i in 0..reps {
        a.push(measure(|| {
            let run = qemu::run(
                &bare,
                work.path(),
                Deadlines {
                    boot: Duration::from_secs(120),
                    run: Duration::from_secs(120),
                },
                &never,
                // The bare init sends no records: "booted" from the start, no boot deadline.
                &mut || true,
            )?;
            match run.exit {
                qemu::Exit::Exited(0) => Ok(()),
                e => bail!("the bare boot ended with {e:?}: {}", run.stderr.trim()),
            }
        })?);
        b.push(measure(|| {
            xtask_matrix(&work.path().join(format!("b{i}")), &one)
        })?);
    }
    let (ma, mb) = (median(&a), median(&b));
    println!("(a) bare boot, power-off init:        {:>6.2} s", secs(ma));
    println!("(b) zcmatrix, one check, via xtask:   {:>6.2} s", secs(mb));
    println!(
        "b/a = {:.2}   (medians of {reps}, alternating)",
        secs(mb) / secs(ma)
    );
    if matrix_reps > 0 {
        eprintln!("bench: {matrix_reps} × (default matrix --jobs 1, default matrix)");
        let (mut c1, mut cn, mut d) = (Vec::new(), Vec::new(), Vec::new());
        xtask_matrix(&work.path().join("warm-matrix"), &[])?;
        let first: Vec<String> = FIRST_FAMILIES.iter().map(|f| format!("{f}.*")).collect();
        // The matrix of that day: four x86_64 kernels, ext4, xfs and btrfs on two geometries,
        // and tmpfs.
        let mut only_first: Vec<&str> = vec!["--arch", "x86_64"];
        for fs in FIRST_FILESYSTEMS {
            only_first.extend(["--fs", fs]);
        }
        for f in &first {
            only_first.extend(["--check", f]);
        }
        for i in 0..matrix_reps {
            d.push(measure(|| {
                xtask_matrix(&work.path().join(format!("d-{i}")), &only_first)
            })?);
            c1.push(measure(|| {
                xtask_matrix(&work.path().join(format!("c1-{i}")), &["--jobs", "1"])
            })?);
            cn.push(measure(|| {
                xtask_matrix(&work.path().join(format!("cn-{i}")), &[])
            })?);
        }
        let (m1, mn) = (median(&c1), median(&cn));
        println!(
            "(c) default matrix, --jobs 1:         {:>6.2} s, cores {:>3.0} % busy",
            secs(m1),
            100.0 * m1.busy(cores)
        );
        println!(
            "(c) default matrix, --jobs {cores}:         {:>6.2} s, cores {:>3.0} % busy",
            secs(mn),
            100.0 * mn.busy(cores)
        );
        println!(
            "c(jobs 1)/c(default) = {:.2}   (medians of {matrix_reps}, alternating)",
            secs(m1) / secs(mn)
        );
        let md = median(&d);
        println!(
            "(d) x86_64 kernels, {}, {} only, --jobs {cores}: {:>6.2} s, cores {:>3.0} % busy",
            FIRST_FILESYSTEMS.join(" "),
            FIRST_FAMILIES.join(" "),
            secs(md),
            100.0 * md.busy(cores)
        );
        println!(
            "targets on 2 cores: b/a <= 1.15; (d) <= 50 s; (c) with every family and axis <= 120 s"
        );
    }
    Ok(exit::OK)
}

fn secs(s: Sample) -> f64 {
    s.wall.as_secs_f64()
}
