//! Kernel versions as rules compare them.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses the leading `X.Y[.Z]` of a `uname -r` string such as `6.1.0-47-cloud-amd64`.
    /// Debian keeps `.0` in the release and puts the real sublevel only in /proc/version, so rules
    /// should name the mainline release (X.Y) a change landed in.
    pub fn parse(release: &str) -> Option<Self> {
        let head: String = release
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut it = head.split('.').filter(|s| !s.is_empty());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion::new(major, minor, patch))
    }

    /// The running kernel's release and version, the version with its real point release: a
    /// Debian release reads `5.10.0-46-cloud-amd64`, and /proc/version carries the point release
    /// the build is of (`Debian 5.10.262-1`), which rules with stable backports need.
    pub fn running() -> anyhow::Result<(String, Self)> {
        let uts = nix::sys::utsname::uname()?;
        let release = uts.release().to_string_lossy().into_owned();
        let v = Self::parse(&release)
            .ok_or_else(|| anyhow::anyhow!("cannot parse kernel release {release:?}"))?;
        let proc = std::fs::read_to_string("/proc/version").unwrap_or_default();
        Ok((release, v.with_build(debian_build(&proc).as_deref())))
    }

    /// This version with the point release of a distribution build (`5.10.262-1`) when the
    /// build is of the same X.Y and a later point release.
    pub fn with_build(self, build: Option<&str>) -> Self {
        match build.and_then(Self::parse) {
            Some(b) if (b.major, b.minor) == (self.major, self.minor) && b.patch > self.patch => b,
            _ => self,
        }
    }
}

/// The Debian package version a kernel was built as, from /proc/version
/// (`... #1 SMP Debian 5.10.262-1 (2025-10-01)` → `5.10.262-1`); `None` for other builds.
pub fn debian_build(proc_version: &str) -> Option<String> {
    let rest = proc_version.split(" Debian ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    word.starts_with(|c: char| c.is_ascii_digit())
        .then(|| word.to_string())
}

/// The running kernel's distribution build, when /proc/version names one.
pub fn running_build() -> Option<String> {
    debian_build(&std::fs::read_to_string("/proc/version").ok()?)
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_and_mainline_releases() {
        assert_eq!(
            KernelVersion::parse("6.1.0-47-cloud-amd64"),
            Some(KernelVersion::new(6, 1, 0))
        );
        assert_eq!(
            KernelVersion::parse("7.2.13+deb14-cloud-amd64"),
            Some(KernelVersion::new(7, 2, 13))
        );
        assert_eq!(
            KernelVersion::parse("6.6"),
            Some(KernelVersion::new(6, 6, 0))
        );
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::new(5, 10, 0) < KernelVersion::new(6, 1, 0));
    }

    /// Debian's release says 5.10.0; /proc/version says which point release it is.
    #[test]
    fn the_real_point_release_comes_from_proc_version() {
        let proc = "Linux version 5.10.0-46-cloud-amd64 (debian-kernel@lists.debian.org) \
                    (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for \
                    Debian) 2.35.2) #1 SMP Debian 5.10.262-1 (2025-10-04)";
        assert_eq!(debian_build(proc).as_deref(), Some("5.10.262-1"));
        let v = KernelVersion::parse("5.10.0-46-cloud-amd64").unwrap();
        assert_eq!(
            v.with_build(debian_build(proc).as_deref()),
            KernelVersion::new(5, 10, 262)
        );
        let six = "Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 \
                   (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) \
                   #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-01-10)";
        assert_eq!(debian_build(six).as_deref(), Some("6.1.192-2"));
        // Not Debian's, or another series: the release stands.
        let other = "Linux version 6.18.44-fc (builder@sandboxing) (gcc (GCC) 15.3.0) #1 SMP";
        assert_eq!(debian_build(other), None);
        assert_eq!(v.with_build(Some("6.1.192-2")), v);
        assert_eq!(v.with_build(None), v);
    }
}
