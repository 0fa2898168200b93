//! `cargo xtask setup`: installs the host packages a fresh Debian or Ubuntu machine lacks.

use std::path::Path;

use anyhow::bail;
use xshell::{cmd, Shell};

use crate::exit;

/// (program or file that proves it is installed, package).
const NEEDS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    // Guests of the other architectures (arm64 with 4 KiB and 16 KiB pages, ppc64le with
    // 64 KiB), and the C cross compilers that link their static harness.
    ("qemu-system-aarch64", "qemu-system-arm"),
    ("qemu-system-ppc64", "qemu-system-ppc"),
    ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ("powerpc64le-linux-gnu-gcc", "gcc-powerpc64le-linux-gnu"),
    // The compiler only recommends its C library: the static ppc64le harness links its crt1.o
    // and libc.a, which --no-install-recommends leaves out.
    ("/usr/powerpc64le-linux-gnu/lib/libc.a", "libc6-dev-ppc64el-cross"),
    ("mkfs.ext4", "e2fsprogs"),
    ("mkfs.xfs", "xfsprogs"),
    ("mkfs.btrfs", "btrfs-progs"),
    ("dpkg-deb", "dpkg"),
    ("mkswap", "util-linux"),
    (vm::apt::DEBIAN_KEYRING, "debian-archive-keyring"),
    // The report.html test opens the page in a real headless browser.
    ("chromium", "chromium"),
];

pub fn run() -> anyhow::Result<u8> {
    let packages = install_packages()?;
    let targets = rust_targets()?;
    Ok(if packages != exit::OK {
        packages
    } else {
        targets
    })
}

fn install_packages() -> anyhow::Result<u8> {
    let missing: Vec<&str> = NEEDS
        .iter()
        .filter(|(what, _)| {
            if what.starts_with('/') {
                !Path::new(what).exists()
            } else {
                vm::tools::which(what).is_none()
            }
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        println!("setup: everything zcmatrix needs is installed");
        return Ok(exit::OK);
    }
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
        bail!(
            "not root and no sudo: install {} yourself",
            missing.join(" ")
        );
    };
    let pre2 = pre.clone();
    cmd!(sh, "{prog} {pre2...} update -q").run()?;
    // Ask apt first what it would do (a simulation needs no root): it may want to remove a
    // package the user chose (a backported qemu-utils, say) to satisfy ours, and that is the
    // user's call, not ours.
    let wanted = missing.clone();
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
            .filter_map(|p| matching_sibling(&sh, p, &missing))
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
            eprintln!("{}", refusal(&missing, &removed));
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
        eprintln!(
            "setup: apt-get refused to install {}:\n{}\nNothing was removed. Install them by hand \
             (apt-get install {}) and resolve what apt names above.",
            missing.join(" "),
            err.trim(),
            missing.join(" ")
        );
        return Ok(exit::INFRA);
    }
    println!("setup: installed {}", missing.join(" "));
    Ok(exit::OK)
}

/// The Rust targets of the guest harnesses other than the host's, added with rustup when
/// missing (the Rust standard library of each: a few tens of MB, no root needed).
fn rust_targets() -> anyhow::Result<u8> {
    let wanted: Vec<&str> = vm::arch::Arch::ALL
        .iter()
        .map(|a| a.rust_target())
        .collect();
    let sh = Shell::new()?;
    let Some(_) = vm::tools::which("rustup") else {
        let installed = cmd!(sh, "rustc --print target-libdir")
            .ignore_stderr()
            .read()
            .unwrap_or_default();
        eprintln!(
            "setup: rustup is not installed, so setup cannot add the Rust targets {} the \
             arm64 and ppc64le guest harnesses are built for (this toolchain's library is {}); \
             install them with your toolchain's means",
            wanted.join(" "),
            installed.trim()
        );
        return Ok(exit::INFRA);
    };
    let installed = cmd!(sh, "rustup target list --installed").read()?;
    let missing = missing_targets(&wanted, &installed);
    if missing.is_empty() {
        return Ok(exit::OK);
    }
    println!("setup: adding Rust targets {}", missing.join(" "));
    cmd!(sh, "rustup target add {missing...}").run()?;
    Ok(exit::OK)
}

fn missing_targets<'a>(wanted: &[&'a str], installed: &str) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == **t))
        .copied()
        .collect()
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
        let installed = "x86_64-unknown-linux-gnu\naarch64-unknown-linux-musl\n";
        assert_eq!(
            missing_targets(
                &[
                    "x86_64-unknown-linux-gnu",
                    "aarch64-unknown-linux-musl",
                    "powerpc64le-unknown-linux-gnu"
                ],
                installed
            ),
            ["powerpc64le-unknown-linux-gnu"]
        );
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
