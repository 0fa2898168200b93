//! What a run and the tests need from the host, each as the program or file that proves it is
//! there and the Debian package that has it. A file, not a program name, where the program
//! alone proves nothing: the ppc64le cross gcc is there without the C library its static link
//! reads (`crt1.o`, `libc.a`), which it only recommends.

use std::path::{Path, PathBuf};

use vm::arch::Arch;

/// How setup knows something is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A program on PATH or in the sbin directories.
    Program(&'static str),
    /// Any of these programs (a browser has several names).
    AnyProgram(&'static [&'static str]),
    /// An absolute path.
    File(String),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Program(p) => f.write_str(p),
            Probe::AnyProgram(ps) => write!(f, "any of {}", ps.join(", ")),
            Probe::File(p) => f.write_str(p),
        }
    }
}

/// One thing zcmatrix needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub probe: Probe,
    /// Debian 12's name of the package that has it (`distro` translates).
    pub package: &'static str,
    /// What it is for, in a few words.
    pub why: String,
}

fn need(probe: Probe, package: &'static str, why: impl Into<String>) -> Need {
    Need {
        probe,
        package,
        why: why.into(),
    }
}

/// GNU's name of an architecture: the multiarch directory of its libraries and the prefix of
/// its cross tools.
fn gnu_triple(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Arm64 => "aarch64-linux-gnu",
        Arch::Ppc64le => "powerpc64le-linux-gnu",
    }
}

/// Everything the guests of `arches` (on a host of architecture `host`), the filesystems
/// `filesystems` and the tests need.
pub fn needs(arches: &[Arch], host: Arch, filesystems: &[&str]) -> Vec<Need> {
    let mut n = vec![
        // Cargo links the host's own programs (and a native x86_64 harness) with cc.
        need(
            Probe::Program("cc"),
            "gcc",
            "the C compiler Rust links with",
        ),
    ];
    for &arch in arches {
        let (qemu, package) = vm::qemu::binary(arch);
        n.push(need(
            Probe::Program(qemu),
            package,
            format!("{arch} guests"),
        ));
        n.extend(firmware(arch));
        n.extend(harness_link(arch, host));
        n.extend(abi_headers(arch, host));
    }
    for fs in filesystems {
        if let Some((tool, package)) = vm::disk::mkfs_tool(fs) {
            if !n.iter().any(|x| x.probe == Probe::Program(tool)) {
                n.push(need(
                    Probe::Program(tool),
                    package,
                    format!("{fs} disk images"),
                ));
            }
        }
    }
    n.extend([
        need(Probe::Program("mkswap"), "util-linux", "guests' swap disks"),
        need(
            Probe::Program("dpkg-deb"),
            "dpkg",
            "unpacking Debian's kernel packages",
        ),
        need(
            Probe::File(vm::apt::DEBIAN_KEYRING.into()),
            "debian-archive-keyring",
            "verifying Debian's archive",
        ),
        need(
            Probe::AnyProgram(zcmatrix_report::html::BROWSERS),
            super::distro::BROWSER,
            "the report.html test (a headless browser)",
        ),
    ]);
    n
}

/// The files QEMU loads besides the kernel. `qemu-system-ppc` only depends on
/// qemu-system-data, `qemu-system-arm` only recommends ipxe-qemu, and setup installs without
/// recommends: so each is named by its file.
fn firmware(arch: Arch) -> Vec<Need> {
    let mut n = Vec::new();
    match arch {
        Arch::X86_64 => {
            n.push(need(
                Probe::File("/usr/share/seabios/bios-256k.bin".into()),
                "seabios",
                "the BIOS of x86_64 guests",
            ));
            n.push(need(
                Probe::File("/usr/share/qemu/linuxboot_dma.bin".into()),
                "qemu-system-data",
                "the option ROM that boots an x86_64 guest's -kernel",
            ));
        }
        Arch::Ppc64le => n.push(need(
            Probe::File("/usr/share/qemu/slof.bin".into()),
            "qemu-system-data",
            "the firmware of ppc64le's pseries machine",
        )),
        Arch::Arm64 => {}
    }
    // A virtio-net-pci device loads its option ROM on every machine, and QEMU stops when it is
    // missing.
    n.push(need(
        Probe::File("/usr/lib/ipxe/qemu/efi-virtio.rom".into()),
        "ipxe-qemu",
        format!("the virtio-net ROM of {arch} guests"),
    ));
    n
}

/// What linking the static harness for `arch` reads. The host's own target links against the
/// host's static glibc; arm64 is Rust's musl target, which brings its own C library and start
/// files, so its cross gcc is only the linker driver; ppc64le is glibc, whose static C library
/// and start files are a package of their own.
pub fn harness_link(arch: Arch, host: Arch) -> Vec<Need> {
    let why = format!("linking the static {arch} harness");
    let glibc = arch.rust_target().ends_with("-gnu");
    if arch == host {
        let triple = gnu_triple(arch);
        return if glibc {
            vec![need(
                Probe::File(format!("/usr/lib/{triple}/libc.a")),
                "libc6-dev",
                why,
            )]
        } else {
            Vec::new()
        };
    }
    let mut n = Vec::new();
    if let Some((linker, package)) = arch.cross_linker() {
        n.push(need(Probe::Program(linker), package, why.clone()));
    }
    if glibc {
        let package = match arch {
            Arch::X86_64 => "libc6-dev-amd64-cross",
            Arch::Arm64 => "libc6-dev-arm64-cross",
            Arch::Ppc64le => "libc6-dev-ppc64el-cross",
        };
        for file in ["crt1.o", "libc.a"] {
            n.push(need(
                Probe::File(format!("/usr/{}/lib/{file}", gnu_triple(arch))),
                package,
                why.clone(),
            ));
        }
    }
    n
}

/// What the ABI test (harness/tests/abi.rs) reads for an architecture other than the host's: it
/// compiles the harness's ABI numbers with that architecture's cross gcc against its C library's
/// and kernel's headers (`sys/mman.h`, `linux/fs.h`). The arm64 harness is musl and links with
/// neither, so nothing else installs them; the cross C library's package brings the kernel's.
pub fn abi_headers(arch: Arch, host: Arch) -> Vec<Need> {
    if arch == host {
        return Vec::new();
    }
    let package = match arch {
        Arch::X86_64 => "libc6-dev-amd64-cross",
        Arch::Arm64 => "libc6-dev-arm64-cross",
        Arch::Ppc64le => "libc6-dev-ppc64el-cross",
    };
    ["sys/mman.h", "linux/fs.h"]
        .into_iter()
        .map(|h| {
            need(
                Probe::File(format!("/usr/{}/include/{h}", gnu_triple(arch))),
                package,
                format!("the ABI test's {arch} headers"),
            )
        })
        .collect()
}

/// The directories a program is looked for in: PATH, and the sbin directories, where mkfs lives
/// even when a normal user's PATH leaves them out (as `vm::tools::which` does).
fn program_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .collect()
}

/// `path` inside the system whose root is `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Whether `probe` is satisfied in the system whose root is `root` (`/` but in tests).
pub fn present(probe: &Probe, root: &Path) -> bool {
    let program = |p: &str| {
        program_dirs()
            .iter()
            .any(|d| under(root, &d.join(p)).is_file())
    };
    match probe {
        Probe::Program(p) => program(p),
        Probe::AnyProgram(ps) => ps.iter().any(|p| program(p)),
        Probe::File(f) => under(root, Path::new(f)).is_file(),
    }
}

/// The needs not met in the system whose root is `root`.
pub fn missing<'a>(needs: &'a [Need], root: &Path) -> Vec<&'a Need> {
    needs.iter().filter(|n| !present(&n.probe, root)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, path: &str) {
        let p = under(root, Path::new(path));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    fn all() -> Vec<Need> {
        needs(
            &Arch::ALL,
            Arch::X86_64,
            &["ext4", "xfs", "btrfs", "tmpfs", "overlay"],
        )
    }

    #[test]
    fn the_cross_compiler_alone_does_not_satisfy_the_ppc64le_link() {
        let root = tempfile::tempdir().unwrap();
        let n = all();
        touch(root.path(), "/usr/bin/powerpc64le-linux-gnu-gcc");
        touch(root.path(), "/usr/bin/aarch64-linux-gnu-gcc");
        let gone: Vec<String> = missing(&n, root.path())
            .iter()
            .map(|m| format!("{} {}", m.package, m.probe))
            .collect();
        assert!(
            gone.contains(
                &"libc6-dev-ppc64el-cross /usr/powerpc64le-linux-gnu/lib/crt1.o".to_string()
            ),
            "{gone:?}"
        );
        assert!(gone.contains(
            &"libc6-dev-ppc64el-cross /usr/powerpc64le-linux-gnu/lib/libc.a".to_string()
        ));
        // Present programs are not missing; arm64 (musl) links with no cross C library, but the
        // ABI test compiles against its headers.
        assert!(!gone.iter().any(|g| g.ends_with("-gnu-gcc")), "{gone:?}");
        assert!(
            !gone
                .iter()
                .any(|g| g.contains("arm64-cross") && g.contains("/lib/")),
            "{gone:?}"
        );
        for h in ["sys/mman.h", "linux/fs.h"] {
            let want = format!("libc6-dev-arm64-cross /usr/aarch64-linux-gnu/include/{h}");
            assert!(gone.contains(&want), "{want}: {gone:?}");
        }
        assert!(!gone.iter().any(|g| g.contains("amd64-cross")), "{gone:?}");
        // The x86_64 static glibc and the firmware files QEMU loads are named by their files.
        for f in [
            "libc6-dev /usr/lib/x86_64-linux-gnu/libc.a",
            "seabios /usr/share/seabios/bios-256k.bin",
            "qemu-system-data /usr/share/qemu/slof.bin",
            "ipxe-qemu /usr/lib/ipxe/qemu/efi-virtio.rom",
        ] {
            assert!(gone.contains(&f.to_string()), "{f}: {gone:?}");
        }
    }

    #[test]
    fn a_root_with_every_file_misses_nothing() {
        let root = tempfile::tempdir().unwrap();
        let n = all();
        for x in &n {
            match &x.probe {
                Probe::Program(p) => touch(root.path(), &format!("/usr/bin/{p}")),
                // One of the browser's names is enough.
                Probe::AnyProgram(ps) => touch(root.path(), &format!("/usr/bin/{}", ps[1])),
                Probe::File(f) => touch(root.path(), f),
            }
        }
        assert_eq!(missing(&n, root.path()), Vec::<&Need>::new());
        // Each filesystem's mkfs is a need of its own.
        assert!(n.contains(&need(
            Probe::Program("mkfs.xfs"),
            "xfsprogs",
            "xfs disk images"
        )));
    }

    #[test]
    fn every_package_needed_is_in_the_distribution_table() {
        for n in all() {
            assert!(super::super::distro::Distro::knows(n.package), "{n:?}");
        }
    }
}
