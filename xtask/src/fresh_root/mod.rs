//! `cargo xtask ci fresh-root`: proves the README's install on a fresh Debian 12 machine with
//! Rust installed, on every CI run. It makes a minimal root with debootstrap (cached as a
//! tarball), gives it this host's rustup toolchain without the guests' targets, clones the
//! commit under test, runs `cargo xtask setup` there as root, then as a normal user with
//! passwordless sudo (as on a GitHub runner) `cargo xtask setup` again (it adds that user's Rust
//! targets), `cargo xtask setup --check` where it exists, and the README's main command on a
//! selection that boots every default kernel and architecture with one cheap check. It fails
//! unless every cell is `completed`. docs/fresh-root.md says what it costs.

mod base;
mod mounts;
mod run;
mod toolchain;
mod trust;
mod verdict;

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::exit;
use run::Who;

/// The non-root user, named as on a GitHub-hosted runner.
const USER: &str = "runner";
/// The clone of the commit under test, in the user's home.
const CLONE: &str = "zcmatrix";
const CHECKOUT: &str = "/home/runner/zcmatrix";

/// The matrix run: the default kernels and architectures (no --kernel, no --arch), one kernel
/// check that runs on every guest, on tmpfs (no disk to make); the README's defaults otherwise
/// (guests booted in 4 to 10 s under TCG on a loaded 2-core machine, against the 30 s and 60 s
/// boot deadlines).
const MATRIX_ARGS: &[&str] = &["--check", "mmap.offset_4k", "--fs", "tmpfs"];

pub use crate::cli::{FreshRootArgs, KvmArg};

/// Prints one line per phase with its duration, and all of them at the end.
struct Phases {
    done: Vec<(String, f64)>,
    start: Instant,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            done: Vec::new(),
            start: Instant::now(),
        }
    }

    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        if run::stop_on_signals().load(std::sync::atomic::Ordering::Relaxed) {
            bail!("interrupted before {name}");
        }
        println!("fresh-root: {name} ...");
        let t = Instant::now();
        let r = f();
        let s = t.elapsed().as_secs_f64();
        let verdict = if r.is_ok() { "" } else { " (failed)" };
        println!("fresh-root: {name}: {s:.1} s{verdict}");
        self.done.push((format!("{name}{verdict}"), s));
        r
    }

    fn summary(&self) {
        println!("fresh-root: phases:");
        for (name, s) in &self.done {
            println!("  {s:7.1} s  {name}");
        }
        println!("  {:7.1} s  in all", self.start.elapsed().as_secs_f64());
    }
}

pub fn run(args: &FreshRootArgs) -> anyhow::Result<u8> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("a fresh root is made by root (debootstrap, chroot, mounts): run it as root");
    }
    let mut phases = Phases::new();
    let r = fresh_root(args, &mut phases);
    phases.summary();
    match r {
        Err(e) if run::stop_on_signals().load(std::sync::atomic::Ordering::Relaxed) => {
            eprintln!("fresh-root: stopped ({e:#})");
            Ok(exit::INTERRUPTED)
        }
        r => r,
    }
}

fn fresh_root(args: &FreshRootArgs, phases: &mut Phases) -> anyhow::Result<u8> {
    let stop = run::stop_on_signals();
    let mirror = vm::apt::Mirror::discover()?;
    let toolchain = toolchain::HostToolchain::discover()?;
    let (commit, expected) = (head_commit()?, default_kernels()?);
    fs::create_dir_all(&args.work)?;
    let work = fs::canonicalize(&args.work)?;
    let root = work.join("root");
    phases.time("host tools (debootstrap, zstd)", base::ensure_tools)?;
    mounts::private_namespace()?;
    mounts::remove_root(&root)?;
    let cached = phases.time("base root", || base::unpack(&work, &root, &mirror.main))?;
    println!(
        "fresh-root: base root {} (Debian {}: {})",
        if cached {
            "from the cached tarball"
        } else {
            "made with debootstrap"
        },
        base::SUITE,
        base::PACKAGES.join(" ")
    );
    // Declared after `root` exists and dropped before it is removed: unmounts on every return.
    let mut m = mounts::Mounts::default();
    let kvm = match (args.kvm, mounts::host_kvm()) {
        (KvmArg::Visible, Some(rdev)) => Some(rdev),
        (KvmArg::Visible, None) => {
            println!("fresh-root: this host has no /dev/kvm; the root has none either");
            None
        }
        (KvmArg::Hidden, _) => None,
    };
    phases.time("configure the root", || {
        configure(&root, &mirror, kvm, &mut m, &work)?;
        for home in [root.join("root"), root.join("home").join(USER)] {
            let left_out = toolchain.install(&home)?;
            if home.ends_with(USER) && !left_out.is_empty() {
                println!(
                    "fresh-root: Rust {} with the host's target only (left out: {})",
                    toolchain.name,
                    left_out.join(" ")
                );
            }
        }
        clone(&commit, &root.join("home").join(USER).join(CLONE))?;
        if let Some(cache) = &args.kernel_debs {
            seed_kernel_debs(cache, &root.join("home").join(USER).join(CLONE))?;
        }
        Ok(())
    })?;
    // Root runs setup in the user's checkout, as an administrator would after `sudo -i`, and
    // hands the tree back. (The user's build still compiles xtask again: cargo's fingerprints
    // hold the path of each crate's source, and root's crates are under /root/.cargo.)
    let in_checkout = |what: &str| format!("cd {CHECKOUT} && {what}");
    phases.time("cargo xtask setup (root)", || {
        run::in_root(&root, Who::Root, &in_checkout("cargo xtask setup"), &stop)?;
        run::in_root(
            &root,
            Who::Root,
            &format!("chown -R {USER}: /home/{USER}"),
            &stop,
        )
    })?;
    let user = Who::User(USER);
    phases.time(&format!("cargo xtask setup ({USER})"), || {
        run::in_root(&root, user, &in_checkout("cargo xtask setup"), &stop)
    })?;
    let help = run::output_in_root(&root, user, &in_checkout("cargo xtask setup --help"))?;
    if help.contains("--check") {
        phases.time(&format!("cargo xtask setup --check ({USER})"), || {
            run::in_root(
                &root,
                user,
                &in_checkout("cargo xtask setup --check"),
                &stop,
            )
        })?;
    } else {
        println!("fresh-root: this commit's `cargo xtask setup` has no --check: step left out");
    }
    let matrix = in_checkout(&format!(
        "cargo xtask test-matrix {}",
        MATRIX_ARGS.join(" ")
    ));
    let ran = phases.time(&format!("cargo xtask test-matrix ({USER})"), || {
        run::in_root(&root, user, &matrix, &stop)
    });
    let report_dir = root
        .join("home")
        .join(USER)
        .join(CLONE)
        .join("target/zcmatrix");
    let kept = work.join("report");
    copy_report(&report_dir, &kept)?;
    let problems = match zcmatrix_report::Report::load(&kept) {
        Ok(r) => verdict::problems(&r, &expected),
        Err(e) => vec![format!("no report: {e}")],
    };
    drop(m);
    if !args.keep {
        mounts::remove_root(&root)?;
    }
    if run::stop_on_signals().load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("fresh-root: stopped");
        return Ok(exit::INTERRUPTED);
    }
    if !problems.is_empty() {
        eprintln!(
            "fresh-root: the matrix in a fresh root did not complete (report: {}):",
            kept.display()
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        return Ok(exit::CHECK_FAILED);
    }
    ran?;
    println!(
        "fresh-root: every default kernel and architecture completed in a fresh Debian 12 root \
         (report: {})",
        kept.display()
    );
    Ok(exit::OK)
}

/// What makes the unpacked root a machine: apt sources and the host's network settings,
/// resolv.conf and certificate authorities, /proc, /sys, /dev, a normal user with passwordless sudo, apt's package cache.
fn configure(
    root: &Path,
    mirror: &vm::apt::Mirror,
    kvm: Option<u64>,
    m: &mut mounts::Mounts,
    work: &Path,
) -> anyhow::Result<()> {
    let (sources, network) = base::apt_files(mirror);
    fs::write(root.join("etc/apt/sources.list"), sources)?;
    fs::write(root.join("etc/apt/apt.conf.d/90host-network"), network)?;
    let resolv = fs::read("/etc/resolv.conf").context("reading the host's /etc/resolv.conf")?;
    let _ = fs::remove_file(root.join("etc/resolv.conf"));
    fs::write(root.join("etc/resolv.conf"), resolv)?;
    let stop = run::stop_on_signals();
    let mut groups = vec!["sudo"];
    let kvm_dev = match kvm {
        Some(rdev) => {
            run::in_root(root, Who::Root, "groupadd -f --system kvm", &stop)?;
            groups.push("kvm");
            Some(mounts::Kvm {
                rdev,
                gid: group_id(root, "kvm")?,
            })
        }
        None => None,
    };
    m.machine(root, kvm_dev.as_ref())?;
    let authorities = trust::install(root)?;
    if authorities > 0 {
        println!(
            "fresh-root: {authorities} certificate authorit(y/ies) of this host's network added"
        );
        run::in_root(root, Who::Root, "update-ca-certificates >/dev/null", &stop)?;
    }
    // apt verifies every package against the signed index, so a package kept from an earlier
    // run on this clone is as good as a downloaded one.
    let archives = work.join("apt-archives");
    fs::create_dir_all(archives.join("partial"))?;
    m.bind(&archives, &root.join("var/cache/apt/archives"))?;
    let groups = groups.join(",");
    run::in_root(
        root,
        Who::Root,
        &format!("useradd --create-home --shell /bin/bash --groups {groups} {USER}"),
        &stop,
    )?;
    let sudoers = root.join("etc/sudoers.d").join(USER);
    fs::write(&sudoers, format!("{USER} ALL=(ALL) NOPASSWD:ALL\n"))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o440))?;
    Ok(())
}

fn group_id(root: &Path, name: &str) -> anyhow::Result<u32> {
    let group = fs::read_to_string(root.join("etc/group"))?;
    gid_in(&group, name).with_context(|| format!("the root has no group {name}"))
}

/// The id of group `name` in an /etc/group text.
fn gid_in(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?
    })
}

/// The commit under test: HEAD of the workspace this command runs from.
fn head_commit() -> anyhow::Result<String> {
    let sh = Shell::new()?;
    sh.change_dir(crate::workspace_root());
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no").read()?;
    if !dirty.trim().is_empty() {
        println!("fresh-root: the work tree has uncommitted changes: they are not in the test");
    }
    Ok(cmd!(sh, "git rev-parse HEAD").read()?.trim().to_string())
}

fn clone(commit: &str, dst: &Path) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    let src = crate::workspace_root();
    cmd!(sh, "git clone --quiet --no-checkout {src} {dst}").run()?;
    cmd!(sh, "git -C {dst} checkout --quiet --detach {commit}").run()?;
    Ok(())
}

/// The plan of the run inside the root, as this commit's command line makes it.
fn matrix_plan() -> anyhow::Result<vm::plan::Plan> {
    use clap::Parser;
    let mut argv = vec!["cargo xtask", "test-matrix"];
    argv.extend(MATRIX_ARGS);
    let crate::cli::Cmd::TestMatrix(args) = crate::Cli::try_parse_from(argv)?.cmd else {
        unreachable!("parsed as test-matrix")
    };
    Ok(args.plan()?)
}

/// The kernel labels of the default matrix, as the run inside the root selects them.
fn default_kernels() -> anyhow::Result<Vec<String>> {
    Ok(matrix_plan()?.kernels.iter().map(|k| k.label()).collect())
}

fn seed_kernel_debs(cache: &Path, clone: &Path) -> anyhow::Result<()> {
    let to = clone.join("target/zcmatrix-cache/debs");
    fs::create_dir_all(&to)?;
    let mut n = 0;
    for e in fs::read_dir(cache.join("debs"))
        .with_context(|| format!("{} has no debs/", cache.display()))?
    {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            fs::copy(&p, to.join(p.file_name().unwrap()))?;
            n += 1;
        }
    }
    println!(
        "fresh-root: {n} kernel package(s) from {} (checked against kernels.lock when used)",
        cache.display()
    );
    Ok(())
}

fn copy_report(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(to);
    if !from.is_dir() {
        return Ok(());
    }
    let sh = Shell::new()?;
    cmd!(sh, "cp -r {from} {to}").run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_group_id_is_read_from_etc_group() {
        let group = "root:x:0:\nsudo:x:27:runner\nkvm:x:998:runner\n";
        assert_eq!(gid_in(group, "kvm"), Some(998));
        assert_eq!(gid_in(group, "sudo"), Some(27));
        assert_eq!(gid_in(group, "kv"), None);
    }

    #[test]
    fn the_checkout_is_the_users_clone() {
        assert_eq!(
            Path::new(CHECKOUT),
            Path::new("/home").join(USER).join(CLONE)
        );
    }

    #[test]
    fn the_matrix_boots_every_default_kernel_and_architecture() {
        let plan = matrix_plan().unwrap();
        for arch in vm::arch::Arch::ALL {
            assert!(
                plan.kernels.iter().any(|k| k.arch() == arch),
                "no {arch} guest in {:?}",
                default_kernels().unwrap()
            );
        }
        assert_eq!(plan.checks, ["mmap.offset_4k"]);
        assert_eq!(plan.filesystems, ["tmpfs"]);
        // The same kernels as the README's main command.
        let all = crate::Cli::try_parse_from(["cargo xtask", "test-matrix"]).unwrap();
        let crate::cli::Cmd::TestMatrix(all) = all.cmd else {
            panic!()
        };
        let all = all.plan().unwrap();
        let labels =
            |p: &vm::plan::Plan| -> Vec<String> { p.kernels.iter().map(|k| k.label()).collect() };
        assert_eq!(labels(&plan), labels(&all));
    }
}
