//! `cargo xtask setup`: installs what a fresh Debian or Ubuntu machine lacks, by the file each
//! step needs, under the distribution's own package names, and proves it by doing what a run
//! does first (link the static harness of every guest architecture, run each QEMU).
//! `--check` only lists what is missing.

mod distro;
mod needs;
mod prove;

use std::path::Path;

use vm::arch::Arch;
use xshell::{cmd, Shell};

use crate::exit;
use distro::Distro;
use needs::Need;

/// The guest architectures of matrix.toml.
fn guest_arches() -> Vec<Arch> {
    let mut a: Vec<Arch> = vm::declared::matrix()
        .flavours
        .iter()
        .map(|f| f.arch)
        .collect();
    a.sort();
    a.dedup();
    a
}

fn all_needs() -> Vec<Need> {
    needs::needs(
        &guest_arches(),
        Arch::host(),
        &vm::declared::matrix().filesystems,
    )
}

pub fn run(check: bool) -> anyhow::Result<u8> {
    let root = Path::new("/");
    let distro = Distro::of_root(root);
    if let Some(n) = distro.notice() {
        eprintln!("{n}");
    }
    let needs = all_needs();
    let targets = missing_targets(&guest_arches(), &rust_sysroot());
    if check {
        let (lines, code) = check_report(&distro, &needs::missing(&needs, root), &targets);
        for l in lines {
            println!("{l}");
        }
        return Ok(code);
    }
    let missing = needs::missing(&needs, root);
    let (installable, unavailable) = packages_for(&distro, &missing);
    if !installable.is_empty() {
        let wanted: Vec<&str> = installable.iter().map(String::as_str).collect();
        let code = install_packages(&wanted, &distro)?;
        if code != exit::OK {
            return Ok(code);
        }
    }
    let code = rust_targets(&targets)?;
    if code != exit::OK {
        return Ok(code);
    }
    // What apt installed must now be there: a file still missing is a package that does not
    // hold it on this system.
    let mut gaps: Vec<String> = unavailable;
    for n in needs::missing(&needs, root) {
        if distro.package(n.package).is_some() {
            gaps.push(format!(
                "{} ({}) is still missing after installing {}: on {} another package has it; \
                 find it (apt-file search {}) and install it",
                n.probe,
                n.why,
                distro.package(n.package).unwrap_or(n.package),
                distro.name(),
                n.probe
            ));
        }
    }
    if gaps.is_empty() {
        let name = |p: &str| distro.package(p).unwrap_or(p).to_string();
        gaps = prove::prove(&guest_arches(), &needs, &name);
    }
    if gaps.is_empty() {
        println!(
            "setup: everything zcmatrix needs is installed and works (harness linked for {}, \
             QEMU runs)",
            guest_arches()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(exit::OK);
    }
    for g in &gaps {
        eprintln!("setup: {g}");
    }
    Ok(exit::INFRA)
}

/// What linking the static `arch` harness reads and this machine lacks, as a message naming
/// each file, its package and the command; `None` when all is there. A run asks before it
/// builds, so that a gap is named, not met by the linker.
pub fn link_gap(arch: Arch) -> Option<String> {
    link_gap_at(arch, Path::new("/"))
}

fn link_gap_at(arch: Arch, root: &Path) -> Option<String> {
    let needs = needs::harness_link(arch, Arch::host());
    let missing = needs::missing(&needs, root);
    if missing.is_empty() {
        return None;
    }
    let distro = Distro::of_root(root);
    let what: Vec<String> = missing
        .iter()
        .map(|n| {
            format!(
                "{} (package {})",
                n.probe,
                distro.package(n.package).unwrap_or(n.package)
            )
        })
        .collect();
    Some(format!(
        "building the {arch} harness needs {}: run `cargo xtask setup`",
        what.join(", ")
    ))
}

/// The packages to install for `missing`, in this distribution's names, and a message for each
/// need it has no package for.
fn packages_for(distro: &Distro, missing: &[&Need]) -> (Vec<String>, Vec<String>) {
    let mut install: Vec<String> = Vec::new();
    let mut unavailable = Vec::new();
    for n in missing {
        match distro.package(n.package) {
            Some(p) if !install.iter().any(|i| i == p) => install.push(p.to_string()),
            Some(_) => {}
            None => unavailable.push(format!(
                "{} is missing ({}): {}",
                n.probe,
                n.why,
                distro.no_package_hint(n.package)
            )),
        }
    }
    (install, unavailable)
}

/// What `--check` prints, and its exit status: 1 when anything is missing, else 0.
fn check_report(distro: &Distro, missing: &[&Need], targets: &[&str]) -> (Vec<String>, u8) {
    if missing.is_empty() && targets.is_empty() {
        return (
            vec!["setup: everything zcmatrix needs is installed".into()],
            exit::OK,
        );
    }
    let mut lines = vec!["setup --check: missing".to_string()];
    for n in missing {
        let package = match distro.package(n.package) {
            Some(p) => format!("package {p}"),
            None => distro.no_package_hint(n.package),
        };
        lines.push(format!("  {} ({}): {package}", n.probe, n.why));
    }
    for t in targets {
        lines.push(format!(
            "  the Rust target {t} (a guest harness is built for it): rustup target add {t}"
        ));
    }
    lines.push("Install it all with: cargo xtask setup".into());
    (lines, exit::CHECK_FAILED)
}

fn install_packages(missing: &[&str], distro: &Distro) -> anyhow::Result<u8> {
    println!("setup: installing {}", missing.join(" "));
    let sh = Shell::new()?;
    sh.set_var("DEBIAN_FRONTEND", "noninteractive");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (prog, pre): (&str, Vec<&str>) = if root {
        ("apt-get", vec![])
    } else if vm::tools::which("sudo").is_some() {
        ("sudo", vec!["-E", "apt-get"])
    } else {
        eprintln!(
            "setup: you are not root and sudo is not installed: as root, run apt-get install \
             --no-install-recommends {}, then `cargo xtask setup` again",
            missing.join(" ")
        );
        return Ok(exit::INFRA);
    };
    let pre2 = pre.clone();
    cmd!(sh, "{prog} {pre2...} update -q").run()?;
    // Ask apt first what it would do (a simulation needs no root): it may want to remove a
    // package the user chose (a backported qemu-utils, say) to satisfy ours, and that is the
    // user's call, not ours.
    let wanted = missing;
    let plan = cmd!(
        sh,
        "apt-get install -s -q --no-install-recommends {wanted...}"
    )
    .ignore_status()
    .output()?;
    let removed = removals(&String::from_utf8_lossy(&plan.stdout));
    // apt removes a package of the user's when it is built from the same source as one we
    // install, at another version (a fresh Debian 12 image carries qemu-utils from backports;
    // qemu-system-x86 from bookworm cannot sit beside it). Keeping it at the version that matches
    // removes nothing; anything else apt would remove is the user's to decide.
    let mut wanted: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    let mut kept = Vec::new();
    if !removed.is_empty() {
        kept = removed
            .iter()
            .filter_map(|p| matching_sibling(&sh, p, missing))
            .collect();
        let mut again = wanted.clone();
        again.extend(kept.iter().cloned());
        let simulated = again.clone();
        let plan = cmd!(
            sh,
            "apt-get install -s -q --no-install-recommends --allow-downgrades {simulated...}"
        )
        .ignore_status()
        .output()?;
        let still = removals(&String::from_utf8_lossy(&plan.stdout));
        if kept.len() < removed.len() || !still.is_empty() {
            eprintln!("{}", refusal(missing, &removed));
            return Ok(exit::INFRA);
        }
        let was: Vec<String> = removed
            .iter()
            .map(|p| {
                let format = "-f=${Version}";
                let v = cmd!(sh, "dpkg-query -W {format} {p}")
                    .ignore_stderr()
                    .read()
                    .unwrap_or_default();
                format!("{p} {v}")
            })
            .collect();
        println!(
            "setup: installing also {} in place of {}: built from the same source as what \
             zcmatrix installs, and apt cannot mix versions of one source; nothing is removed",
            kept.join(" "),
            was.join(", ")
        );
        wanted = again;
    }
    // --no-remove all the same: if the archive moved since the simulation, apt fails rather
    // than removing anything.
    let downgrades: &[&str] = if kept.is_empty() {
        &[]
    } else {
        &["--allow-downgrades"]
    };
    let installed = cmd!(
        sh,
        "{prog} {pre...} install -y -q --no-install-recommends --no-remove {downgrades...} {wanted...}"
    )
    .ignore_status()
    .output()?;
    if !installed.status.success() {
        let err = String::from_utf8_lossy(&installed.stderr);
        // On Ubuntu the cross toolchains and debian-archive-keyring come from universe, which a
        // minimal image may not enable.
        let universe = if matches!(distro, Distro::Ubuntu2204 | Distro::Ubuntu2404)
            && err.contains("Unable to locate package")
        {
            "\nOn Ubuntu some of these are in universe: sudo add-apt-repository universe"
        } else {
            ""
        };
        eprintln!(
            "setup: apt-get refused to install {}:\n{}{universe}\nNothing was removed. Install \
             them by hand (sudo apt-get install --no-install-recommends {}) and resolve what apt \
             names above.",
            missing.join(" "),
            err.trim(),
            missing.join(" ")
        );
        return Ok(exit::INFRA);
    }
    println!("setup: installed {}", missing.join(" "));
    Ok(exit::OK)
}

/// The sysroot of the toolchain cargo runs (`rustc` as its proxy resolves it here).
fn rust_sysroot() -> std::path::PathBuf {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().into())
        .unwrap_or_default()
}

/// The Rust targets of the guest harnesses whose standard library is not in the toolchain at
/// `sysroot` (by its directory, which is how rustc finds it, rustup or not).
fn missing_targets(arches: &[Arch], sysroot: &Path) -> Vec<&'static str> {
    let mut t: Vec<&'static str> = arches
        .iter()
        .map(|a| a.rust_target())
        .filter(|t| !sysroot.join("lib/rustlib").join(t).join("lib").is_dir())
        .collect();
    t.dedup();
    t
}

/// Adds the missing Rust targets with rustup (the Rust standard library of each: a few tens of
/// MB, no root needed).
fn rust_targets(missing: &[&str]) -> anyhow::Result<u8> {
    if missing.is_empty() {
        return Ok(exit::OK);
    }
    if vm::tools::which("rustup").is_none() {
        eprintln!(
            "setup: rustup is not installed, so setup cannot add the Rust targets {} the guest \
             harnesses are built for (the toolchain in {} lacks them); install them with your \
             toolchain's means",
            missing.join(" "),
            rust_sysroot().display()
        );
        return Ok(exit::INFRA);
    }
    let sh = Shell::new()?;
    println!("setup: adding Rust targets {}", missing.join(" "));
    cmd!(sh, "rustup target add {missing...}").run()?;
    Ok(exit::OK)
}

/// Packages an `apt-get install -s` transcript would remove (its `Remv name [version]` lines).
/// `pkg=version` keeping `pkg` installed at the version of a wanted package built from the same
/// source, when the archive has that version of it; `None` when `pkg` is no such sibling.
fn matching_sibling(sh: &Shell, pkg: &str, wanted: &[&str]) -> Option<String> {
    let format = "-f=${source:Package}";
    let installed_source = cmd!(sh, "dpkg-query -W {format} {pkg}")
        .ignore_stderr()
        .read()
        .ok()?;
    for w in wanted {
        let shown = cmd!(sh, "apt-cache show --no-all-versions {w}")
            .ignore_stderr()
            .read()
            .ok()?;
        let (source, version) = source_and_version(w, &shown);
        if source != installed_source.trim() {
            continue;
        }
        let madison = cmd!(sh, "apt-cache madison {pkg}")
            .ignore_stderr()
            .read()
            .ok()?;
        if madison
            .lines()
            .any(|l| l.split('|').nth(1).map(str::trim) == Some(version.as_str()))
        {
            return Some(format!("{pkg}={version}"));
        }
    }
    None
}

/// (source package, version) from `apt-cache show` of `pkg`; a package without a `Source:`
/// field is its own source.
fn source_and_version(pkg: &str, shown: &str) -> (String, String) {
    let field = |name: &str| {
        shown
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let source = field("Source:")
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| pkg.to_string());
    (source, field("Version:").unwrap_or_default())
}

fn removals(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What to tell a user whose packages ours would displace.
fn refusal(wanted: &[&str], removed: &[String]) -> String {
    format!(
        "setup: installing {w} would remove {r}, which you have installed; zcmatrix never removes \
         a package. Either install {w} yourself in a way that keeps {r} (for example from the \
         same release or backports suite: apt-get install -t <suite> {w}), or, if you do not \
         need {r}, remove it first and run `cargo xtask setup` again.",
        w = wanted.join(" "),
        r = removed.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_that_removes_a_package_is_refused_naming_it() {
        let sim = "\
NOTE: This is only a simulation!
Reading package lists...
The following packages will be REMOVED:
  qemu-utils
Remv qemu-utils [1:8.2.2+ds-0ubuntu1~bpo12+1]
Inst qemu-system-x86 (1:7.2+dfsg-7 Debian:12.5/stable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7 Debian:12.5/stable [amd64])
";
        let r = removals(sim);
        assert_eq!(r, ["qemu-utils"]);
        let msg = refusal(&["qemu-system-x86"], &r);
        assert!(msg.contains("would remove qemu-utils"), "{msg}");
        assert!(msg.contains("apt-get install -t"), "{msg}");
        assert!(removals("Inst e2fsprogs (1.47)\nConf e2fsprogs (1.47)\n").is_empty());
    }

    #[test]
    fn only_the_rust_targets_not_installed_are_added() {
        let sysroot = tempfile::tempdir().unwrap();
        let lib = |t: &str| sysroot.path().join("lib/rustlib").join(t).join("lib");
        std::fs::create_dir_all(lib("x86_64-unknown-linux-gnu")).unwrap();
        std::fs::create_dir_all(lib("aarch64-unknown-linux-musl")).unwrap();
        assert_eq!(
            missing_targets(&Arch::ALL, sysroot.path()),
            ["powerpc64le-unknown-linux-gnu"]
        );
    }

    fn need(probe: &str, package: &'static str) -> Need {
        Need {
            probe: needs::Probe::File(probe.into()),
            package,
            why: "a test".into(),
        }
    }

    #[test]
    fn check_exits_1_naming_each_package_and_0_when_nothing_is_missing() {
        let slof = need("/usr/share/qemu/slof.bin", "qemu-system-data");
        let browser = need("chromium", distro::BROWSER);
        let (lines, code) = check_report(&Distro::Debian12, &[&slof, &browser], &[]);
        assert_eq!(code, exit::CHECK_FAILED);
        let text = lines.join("\n");
        assert!(
            text.contains("/usr/share/qemu/slof.bin (a test): package qemu-system-data"),
            "{text}"
        );
        assert!(text.contains("package chromium"), "{text}");
        assert!(text.contains("cargo xtask setup"), "{text}");
        // On Ubuntu the browser has no deb: the line says what to install instead.
        let (lines, code) = check_report(&Distro::Ubuntu2404, &[&browser], &[]);
        assert_eq!(code, exit::CHECK_FAILED);
        assert!(lines.join("\n").contains("snap install chromium"));
        let (lines, code) =
            check_report(&Distro::Debian13, &[], &["powerpc64le-unknown-linux-gnu"]);
        assert_eq!(code, exit::CHECK_FAILED);
        assert!(lines
            .join("\n")
            .contains("rustup target add powerpc64le-unknown-linux-gnu"));
        assert_eq!(check_report(&Distro::Debian12, &[], &[]).1, exit::OK);
    }

    #[test]
    fn check_on_a_fake_root_exits_by_what_it_holds() {
        let root = tempfile::tempdir().unwrap();
        let n = vec![need("/usr/share/qemu/slof.bin", "qemu-system-data")];
        let code = |root: &Path| check_report(&Distro::Debian12, &needs::missing(&n, root), &[]).1;
        assert_eq!(code(root.path()), exit::CHECK_FAILED);
        std::fs::create_dir_all(root.path().join("usr/share/qemu")).unwrap();
        std::fs::write(root.path().join("usr/share/qemu/slof.bin"), b"").unwrap();
        assert_eq!(code(root.path()), exit::OK);
    }

    #[test]
    fn a_run_names_what_the_harness_link_lacks_before_linking() {
        if Arch::host() != Arch::X86_64 {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let gap = link_gap_at(Arch::Ppc64le, root.path()).unwrap();
        assert!(
            gap.contains("/usr/powerpc64le-linux-gnu/lib/libc.a (package libc6-dev-ppc64el-cross)"),
            "{gap}"
        );
        assert!(gap.contains("run `cargo xtask setup`"), "{gap}");
        // arm64's musl target needs nothing but its linker driver.
        let bin = root.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("aarch64-linux-gnu-gcc"), b"").unwrap();
        assert_eq!(link_gap_at(Arch::Arm64, root.path()), None);
    }

    #[test]
    fn a_package_a_distribution_lacks_is_named_not_installed() {
        let browser = need("chromium", distro::BROWSER);
        let keyring = need("/k.gpg", "debian-archive-keyring");
        let (install, unavailable) = packages_for(&Distro::Ubuntu2204, &[&browser, &keyring]);
        assert_eq!(install, ["debian-archive-keyring"]);
        assert_eq!(unavailable.len(), 1);
        assert!(unavailable[0].contains("google-chrome-stable"));
        let (install, unavailable) = packages_for(&Distro::Debian12, &[&browser, &browser]);
        assert_eq!(install, ["chromium"]);
        assert!(unavailable.is_empty());
    }

    #[test]
    fn a_sibling_is_known_by_its_source_and_version() {
        let shown = "Package: qemu-system-x86\nSource: qemu (1:7.2+dfsg-7+deb12u18)\n\
                     Version: 1:7.2+dfsg-7+deb12u18+b3\n";
        assert_eq!(
            source_and_version("qemu-system-x86", shown),
            ("qemu".into(), "1:7.2+dfsg-7+deb12u18+b3".into())
        );
        let own = "Package: dpkg\nVersion: 1.21.22\n";
        assert_eq!(
            source_and_version("dpkg", own),
            ("dpkg".into(), "1.21.22".into())
        );
    }
}
