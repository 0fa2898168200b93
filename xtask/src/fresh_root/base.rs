//! The minimal Debian 12 root: debootstrap from the host's own mirror, kept as a tarball keyed
//! by everything that went into it, so that a second run on the same clone skips debootstrap.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use vm::apt::{Mirror, Suite, DEBIAN_KEYRING};
use xshell::{cmd, Shell};

pub const SUITE: &str = "bookworm";
const VARIANT: &str = "minbase";
/// What a fresh Debian 12 machine "with Rust installed" has besides the base system: git, a C
/// compiler with its C library's headers (crates that build C), certificates for https, and
/// sudo (a normal user installs through it, as on a GitHub runner).
pub const PACKAGES: &[&str] = &["ca-certificates", "gcc", "git", "libc6-dev", "sudo"];

/// The host programs this needs, and their packages. Only CI and contributors run a fresh
/// root, so they are installed here rather than by `cargo xtask setup`.
const TOOLS: &[(&str, &str)] = &[("debootstrap", "debootstrap"), ("zstd", "zstd")];

/// The suites a Debian 12 machine's sources name (the security archive may be elsewhere).
const SUITES: &[Suite] = &[
    Suite {
        name: "bookworm",
        security: false,
    },
    Suite {
        name: "bookworm-updates",
        security: false,
    },
    Suite {
        name: "bookworm-security",
        security: true,
    },
];

/// The cache key: suite, variant, package list and mirror.
pub fn key(mirror: &str) -> String {
    let mut h = Sha256::new();
    for part in [SUITE, VARIANT, mirror]
        .into_iter()
        .chain(PACKAGES.iter().copied())
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..12].to_string()
}

pub fn tarball(work: &Path, mirror: &str) -> PathBuf {
    work.join(format!("{SUITE}-{}.tar.zst", key(mirror)))
}

/// debootstrap's arguments: the archive keyring checks every index (never --no-check-gpg).
pub fn debootstrap_args(target: &Path, mirror: &str) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        format!("--variant={VARIANT}").into(),
        format!("--include={}", PACKAGES.join(",")).into(),
        format!("--keyring={DEBIAN_KEYRING}").into(),
        "--components=main".into(),
        SUITE.into(),
    ];
    v.push(target.into());
    v.push(mirror.into());
    v
}

/// The root's apt sources (one-line format, signed by the archive keyring) and the host's
/// network settings (proxies, whether Release files may be past their date: a host behind a
/// frozen mirror needs the same).
pub fn apt_files(mirror: &Mirror) -> (String, String) {
    (
        vm::apt::sources_list(mirror, SUITES),
        vm::apt::inherited_host_settings(),
    )
}

/// Installs debootstrap and zstd with apt-get when missing.
pub fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(prog, _)| vm::tools::which(prog).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("fresh-root: installing {} on this host", missing.join(" "));
    let sh = Shell::new()?;
    sh.set_var("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -q").run()?;
    cmd!(
        sh,
        "apt-get install -y -q --no-install-recommends {missing...}"
    )
    .run()?;
    Ok(())
}

/// Unpacks the cached root into `root`, first making it with debootstrap when there is no
/// tarball for this key. Returns whether the tarball was already there.
pub fn unpack(work: &Path, root: &Path, mirror: &str) -> anyhow::Result<bool> {
    let tar = tarball(work, mirror);
    let cached = tar.is_file();
    fs::create_dir_all(root)?;
    let sh = Shell::new()?;
    if !cached {
        println!(
            "fresh-root: debootstrap {SUITE} from {mirror} (cached as {})",
            tar.display()
        );
        let args = debootstrap_args(root, mirror);
        cmd!(sh, "debootstrap {args...}")
            .run()
            .context("debootstrap failed")?;
        // Made under another name and renamed when whole: an interrupted run leaves no tarball
        // that looks complete.
        let partial = tar.with_extension("partial");
        cmd!(sh, "tar --zstd --numeric-owner -cf {partial} -C {root} .").run()?;
        fs::rename(&partial, &tar)?;
        return Ok(false);
    }
    cmd!(sh, "tar --zstd --numeric-owner -xf {tar} -C {root}").run()?;
    if !root.join("usr/bin/apt-get").is_file() {
        bail!("{} holds no Debian root: remove it", tar.display());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debootstrap_gets_the_package_list_and_the_keyring() {
        let args = debootstrap_args(Path::new("/t/root"), "http://m.example/debian");
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--variant=minbase",
                "--include=ca-certificates,gcc,git,libc6-dev,sudo",
                "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
                "--components=main",
                "bookworm",
                "/t/root",
                "http://m.example/debian"
            ]
        );
    }

    #[test]
    fn the_tarball_is_keyed_by_what_went_into_it() {
        let a = tarball(Path::new("/w"), "http://a.example/debian");
        let b = tarball(Path::new("/w"), "http://b.example/debian");
        assert_ne!(a, b);
        assert_eq!(a, tarball(Path::new("/w"), "http://a.example/debian"));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("bookworm-") && name.ends_with(".tar.zst"),
            "{name}"
        );
    }

    #[test]
    fn the_root_names_the_three_suites_of_a_debian_12_machine() {
        let m = Mirror {
            main: "http://m.example/debian".into(),
            security: "http://s.example/debian-security".into(),
        };
        let (sources, _) = apt_files(&m);
        let suites: Vec<&str> = sources
            .lines()
            .map(|l| l.split_whitespace().nth(3).unwrap())
            .collect();
        assert_eq!(
            suites,
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        assert!(sources.contains("http://s.example/debian-security bookworm-security"));
    }
}
