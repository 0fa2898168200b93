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
    cmd!(
        sh,
        "{prog} {pre...} install -y -q --no-install-recommends {missing...}"
    )
    .run()?;
    Ok(exit::OK)
}
