//! `cargo xtask setup`: installs the host packages a fresh Debian or Ubuntu machine lacks.

use std::path::Path;

use anyhow::bail;
use xshell::{cmd, Shell};

use crate::exit;

/// (program or file that proves it is installed, package).
const NEEDS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
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
    if !removed.is_empty() {
        eprintln!("{}", refusal(&missing, &removed));
        return Ok(exit::INFRA);
    }
    // --no-remove all the same: if the archive moved since the simulation, apt fails rather
    // than removing anything.
    let wanted = missing.clone();
    let installed = cmd!(
        sh,
        "{prog} {pre...} install -y -q --no-install-recommends --no-remove {wanted...}"
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

/// Packages an `apt-get install -s` transcript would remove (its `Remv name [version]` lines).
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
}
