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

    /// The running kernel's version.
    pub fn running() -> anyhow::Result<(String, Self)> {
        let uts = nix::sys::utsname::uname()?;
        let release = uts.release().to_string_lossy().into_owned();
        let v = Self::parse(&release)
            .ok_or_else(|| anyhow::anyhow!("cannot parse kernel release {release:?}"))?;
        Ok((release, v))
    }
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
}
