//! Which distribution this is (from /etc/os-release) and what it calls each package setup
//! installs: apt installs in one transaction, so one name the archive lacks installs nothing.

use std::path::Path;

/// The distributions setup knows the package names of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distro {
    Debian12,
    Debian13,
    Ubuntu2204,
    Ubuntu2404,
    /// Anything else: setup says so and uses Debian 12's names.
    Other(String),
}

impl Distro {
    /// From the text of os-release(5): `ID` and `VERSION_ID`.
    pub fn from_os_release(text: &str) -> Distro {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let (id, version) = (field("ID"), field("VERSION_ID"));
        match (id.as_str(), version.as_str()) {
            ("debian", "12") => Distro::Debian12,
            ("debian", "13") => Distro::Debian13,
            ("ubuntu", "22.04") => Distro::Ubuntu2204,
            ("ubuntu", "24.04") => Distro::Ubuntu2404,
            _ => {
                let pretty = field("PRETTY_NAME");
                Distro::Other(if pretty.is_empty() {
                    format!("{id} {version}").trim().to_string()
                } else {
                    pretty
                })
            }
        }
    }

    /// The distribution of the machine whose root is `root` (`/` but in tests).
    pub fn of_root(root: &Path) -> Distro {
        ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
            .map(|t| Distro::from_os_release(&t))
            .unwrap_or_else(|| Distro::Other("a system without /etc/os-release".into()))
    }

    /// Its name as a user knows it.
    pub fn name(&self) -> String {
        match self {
            Distro::Debian12 => "Debian 12".into(),
            Distro::Debian13 => "Debian 13".into(),
            Distro::Ubuntu2204 => "Ubuntu 22.04".into(),
            Distro::Ubuntu2404 => "Ubuntu 24.04".into(),
            Distro::Other(name) => name.clone(),
        }
    }

    /// Its column in [`NAMES`].
    fn column(&self) -> usize {
        match self {
            Distro::Debian12 | Distro::Other(_) => 0,
            Distro::Debian13 => 1,
            Distro::Ubuntu2204 => 2,
            Distro::Ubuntu2404 => 3,
        }
    }

    /// What setup says about a distribution whose names it does not know.
    pub fn notice(&self) -> Option<String> {
        match self {
            Distro::Other(name) => Some(format!(
                "setup: {name} is not one of the systems whose package names setup knows (Debian \
                 12 and 13, Ubuntu 22.04 and 24.04); it uses Debian 12's names. If apt cannot \
                 find one, install what the message names by your system's name for it"
            )),
            _ => None,
        }
    }

    /// This distribution's name for the package Debian 12 calls `debian`; `None` when it has no
    /// package of it that apt can install. A package without a row keeps its Debian name (a
    /// unit test keeps every package setup asks for in the table).
    pub fn package<'a>(&self, debian: &'a str) -> Option<&'a str> {
        match NAMES.iter().find(|(name, _)| *name == debian) {
            Some((_, names)) => names[self.column()],
            None => Some(debian),
        }
    }

    /// Whether the table has a row for `debian`.
    #[cfg(test)]
    pub fn knows(debian: &str) -> bool {
        NAMES.iter().any(|(name, _)| *name == debian)
    }

    /// Why [`Distro::package`] is `None`, and what to do instead.
    pub fn no_package_hint(&self, debian: &str) -> String {
        match debian {
            BROWSER => format!(
                "{} has no installable chromium deb (its chromium package only installs \
                 the snap); install a browser the report.html test can run: Google Chrome's \
                 .deb (google-chrome-stable, from https://www.google.com/chrome/) or `sudo snap \
                 install chromium`",
                self.name()
            ),
            _ => format!(
                "{} has no package for what Debian calls {debian}",
                self.name()
            ),
        }
    }
}

/// Debian's browser package, in which the report.html test opens the page.
pub const BROWSER: &str = "chromium";

const fn same(name: &'static str) -> [Option<&'static str>; 4] {
    [Some(name); 4]
}

/// Debian 12's name of every package setup installs, and its name on Debian 12, Debian 13,
/// Ubuntu 22.04 and Ubuntu 24.04 (`None`: none apt can install). The rows say the names are
/// the same where they are: Ubuntu carries Debian's cross toolchains (libc6-dev-ppc64el-cross
/// included), QEMU's split into qemu-system-* and the firmware packages (qemu-system-data has
/// slof.bin; seabios; ipxe-qemu), and debian-archive-keyring (universe).
const NAMES: &[(&str, [Option<&'static str>; 4])] = &[
    ("qemu-system-x86", same("qemu-system-x86")),
    ("qemu-system-arm", same("qemu-system-arm")),
    ("qemu-system-ppc", same("qemu-system-ppc")),
    ("qemu-system-data", same("qemu-system-data")),
    ("seabios", same("seabios")),
    ("ipxe-qemu", same("ipxe-qemu")),
    ("gcc", same("gcc")),
    ("libc6-dev", same("libc6-dev")),
    ("gcc-aarch64-linux-gnu", same("gcc-aarch64-linux-gnu")),
    (
        "gcc-powerpc64le-linux-gnu",
        same("gcc-powerpc64le-linux-gnu"),
    ),
    ("libc6-dev-ppc64el-cross", same("libc6-dev-ppc64el-cross")),
    ("libc6-dev-arm64-cross", same("libc6-dev-arm64-cross")),
    ("libc6-dev-amd64-cross", same("libc6-dev-amd64-cross")),
    ("e2fsprogs", same("e2fsprogs")),
    ("xfsprogs", same("xfsprogs")),
    ("btrfs-progs", same("btrfs-progs")),
    ("util-linux", same("util-linux")),
    ("dpkg", same("dpkg")),
    ("apt", same("apt")),
    ("debian-archive-keyring", same("debian-archive-keyring")),
    // Ubuntu's chromium and chromium-browser are transitional packages that install the snap,
    // which needs snapd running: no use in a container or a CI job.
    (BROWSER, [Some("chromium"), Some("chromium"), None, None]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names_the_distribution() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(Distro::from_os_release(debian), Distro::Debian12);
        let trixie = "ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n";
        assert_eq!(Distro::from_os_release(trixie), Distro::Debian13);
        let jammy = "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(Distro::from_os_release(jammy), Distro::Ubuntu2204);
        let noble = "ID=ubuntu\nVERSION_ID=\"24.04\"\n";
        assert_eq!(Distro::from_os_release(noble), Distro::Ubuntu2404);
        // Debian testing and sid have no VERSION_ID; a derivative has its own ID.
        let sid = "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nID=debian\n";
        assert_eq!(
            Distro::from_os_release(sid),
            Distro::Other("Debian GNU/Linux forky/sid".into())
        );
        let mint = "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"\n";
        let other = Distro::from_os_release(mint);
        assert_eq!(other, Distro::Other("linuxmint 21.3".into()));
        assert!(other.notice().unwrap().contains("Debian 12's names"));
        assert!(Distro::Debian12.notice().is_none());
    }

    #[test]
    fn each_distribution_has_its_own_names() {
        for d in [Distro::Debian12, Distro::Debian13] {
            assert_eq!(d.package(BROWSER), Some("chromium"));
        }
        for d in [Distro::Ubuntu2204, Distro::Ubuntu2404] {
            assert_eq!(d.package(BROWSER), None, "{d:?}");
            assert!(d.no_package_hint(BROWSER).contains("google-chrome-stable"));
            assert_eq!(
                d.package("libc6-dev-ppc64el-cross"),
                Some("libc6-dev-ppc64el-cross")
            );
            assert_eq!(
                d.package("debian-archive-keyring"),
                Some("debian-archive-keyring")
            );
        }
        // A system setup does not know gets Debian's names.
        assert_eq!(
            Distro::Other("x".into()).package("qemu-system-ppc"),
            Some("qemu-system-ppc")
        );
    }

    #[test]
    fn the_table_names_each_package_once() {
        let mut keys: Vec<&str> = NAMES.iter().map(|(k, _)| *k).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n);
        // Debian 12's column is the key itself.
        for (k, names) in NAMES {
            assert_eq!(names[0], Some(*k));
        }
    }
}
