//! The matrix as data: `matrix.toml` at the workspace root declares the kernel series (their
//! suites, flavours and which run by default), the flavours (architecture, page size), the
//! filesystems, the disk geometries, the per-guest settings and named selections. It is compiled in, so every
//! binary and test of a checkout reads the same file; the command line filters it.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::apt::Suite;
use crate::arch::{Arch, Flavour};

/// The file, as committed.
pub const MATRIX_TOML: &str = include_str!("../../matrix.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    run: RunDecl,
    filesystems: Vec<String>,
    geometries: Vec<u32>,
    flavour: Vec<FlavourDecl>,
    kernel: Vec<KernelDecl>,
    #[serde(default)]
    selection: Vec<Selection>,
    #[serde(default)]
    quick: QuickDecl,
}

/// What the quick profile changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickDecl {
    /// A selection whose checks and filesystems a guest of another architecture than the
    /// host's runs in the quick profile, unless the command line names checks.
    emulated: Option<String>,
}

/// A named selection: the kernels and check filters a run uses where the command line gives
/// none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub name: String,
    pub kernels: Vec<String>,
    pub checks: Vec<String>,
    /// Filesystems (all of the matrix's when empty).
    #[serde(default)]
    pub filesystems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunDecl {
    memory_mb: u32,
    timeout_s: u64,
    boot_timeout_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlavourDecl {
    name: String,
    arch: String,
    page_size: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelDecl {
    series: String,
    suites: Vec<String>,
    #[serde(default)]
    security_suites: Vec<String>,
    version: Option<String>,
    flavours: Vec<String>,
    default: Vec<String>,
}

/// The declared matrix, with `'static` lifetimes so that kernel specs can point into it.
#[derive(Debug)]
pub struct Matrix {
    pub series: &'static [Series],
    pub flavours: &'static [Flavour],
    pub filesystems: Vec<&'static str>,
    pub geometries: Vec<u32>,
    pub memory_mb: u32,
    pub timeout_s: u64,
    pub boot_timeout_s: u64,
    pub selections: Vec<Selection>,
    /// In the quick profile, what a guest the host must emulate runs (see `[quick]`).
    pub quick_emulated: Option<Selection>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Parses and checks a matrix file; the error names what is wrong.
pub fn parse(text: &str) -> anyhow::Result<Matrix> {
    let f: File = toml::from_str(text)?;
    let mut flavours = Vec::new();
    for d in f.flavour {
        let arch = Arch::parse(&d.arch)
            .ok_or_else(|| anyhow::anyhow!("flavour {}: unknown arch {:?}", d.name, d.arch))?;
        if !d.page_size.is_power_of_two() || d.page_size < 4096 {
            anyhow::bail!(
                "flavour {}: page size {} is no page size",
                d.name,
                d.page_size
            );
        }
        flavours.push(Flavour {
            name: leak(d.name),
            arch,
            page_size: d.page_size,
        });
    }
    let flavours: &'static [Flavour] = Vec::leak(flavours);
    let mut series = Vec::new();
    for k in f.kernel {
        for name in k.flavours.iter().chain(&k.default) {
            if !flavours.iter().any(|f| f.name == name) {
                anyhow::bail!("kernel {}: no flavour {name:?} is declared", k.series);
            }
            if !k.flavours.contains(name) {
                anyhow::bail!(
                    "kernel {}: default flavour {name:?} is not among its flavours",
                    k.series
                );
            }
        }
        if k.suites.is_empty() {
            anyhow::bail!("kernel {}: no suite", k.series);
        }
        let suites: Vec<Suite> = k
            .suites
            .into_iter()
            .map(|name| Suite {
                name: leak(name),
                security: false,
            })
            .chain(k.security_suites.into_iter().map(|name| Suite {
                name: leak(name),
                security: true,
            }))
            .collect();
        series.push(Series {
            spec: leak(k.series),
            suites: Vec::leak(suites),
            version: k.version.map(leak),
            flavours: Vec::leak(k.flavours.into_iter().map(leak).collect()),
            default_flavours: Vec::leak(k.default.into_iter().map(leak).collect()),
        });
    }
    let known = zcmatrix_protocol::target::names();
    for fs in &f.filesystems {
        if !known.contains(&fs.as_str()) {
            anyhow::bail!("filesystem {fs:?}: zcmatrix knows {}", known.join(", "));
        }
    }
    if f.geometries.is_empty()
        || f.geometries
            .iter()
            .any(|g| !g.is_power_of_two() || *g < 512)
    {
        anyhow::bail!(
            "geometries {:?}: logical block sizes are powers of two from 512",
            f.geometries
        );
    }
    let quick_emulated = match f.quick.emulated {
        None => None,
        Some(name) => Some(
            f.selection
                .iter()
                .find(|s| s.name == name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("[quick] emulated: no selection {name:?}"))?,
        ),
    };
    Ok(Matrix {
        quick_emulated,
        series: Vec::leak(series),
        flavours,
        filesystems: f.filesystems.into_iter().map(leak).collect(),
        geometries: f.geometries,
        memory_mb: f.run.memory_mb,
        timeout_s: f.run.timeout_s,
        boot_timeout_s: f.run.boot_timeout_s,
        selections: f.selection,
    })
}

/// A Debian kernel series and where it lives, as `matrix.toml` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub spec: &'static str,
    pub suites: &'static [Suite],
    /// The upstream version the suites' kernel must have (`7.2` → `7.2.*`); `None` for `next`,
    /// whatever experimental carries (release candidates are `7.3~rc7-…`).
    pub version: Option<&'static str>,
    /// The flavours Debian builds of it that zcmatrix may boot.
    pub flavours: &'static [&'static str],
    /// Those the default matrix runs; none for an opt-in series (`next`).
    pub default_flavours: &'static [&'static str],
}

impl Series {
    pub fn opt_in(&self) -> bool {
        self.default_flavours.is_empty()
    }

    /// The flavour a bare series means on `arch`: its first flavour of that architecture.
    pub fn flavour_for(&self, arch: Arch) -> Option<&'static Flavour> {
        self.flavours
            .iter()
            .filter_map(|n| flavour(n))
            .find(|f| f.arch == arch)
    }
}

/// The flavours zcmatrix knows, from `matrix.toml`: the small cloud builds where Debian has
/// one, and the 16 KiB and 64 KiB page builds.
pub fn flavours() -> &'static [Flavour] {
    crate::declared::matrix().flavours
}

/// The flavour called `name`.
pub fn flavour(name: &str) -> Option<&'static Flavour> {
    flavours().iter().find(|f| f.name == name)
}

/// The flavour a bare series means on `arch`: the first listed for it (4 KiB pages where the
/// architecture has them).
pub fn default_flavour(arch: Arch) -> &'static Flavour {
    flavours()
        .iter()
        .find(|f| f.arch == arch)
        .expect("every architecture has a flavour")
}

/// The committed matrix (parsed once; its unit test keeps it parseable).
pub fn matrix() -> &'static Matrix {
    static M: OnceLock<Matrix> = OnceLock::new();
    M.get_or_init(|| parse(MATRIX_TOML).expect("matrix.toml parses (see its unit test)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_a_default_flavour_of_its_own() {
        for a in Arch::ALL {
            assert_eq!(default_flavour(a).arch, a);
            assert_eq!(Arch::parse(a.name()), Some(a));
            assert_eq!(Arch::parse(a.debian()), Some(a));
        }
        assert_eq!(default_flavour(Arch::Arm64).name, "cloud-arm64");
        assert_eq!(default_flavour(Arch::Ppc64le).name, "powerpc64le-64k");
        assert_eq!(flavour("arm64-16k").unwrap().page_size, 16384);
        assert!(flavour("arm64-4k").is_none());
    }

    #[test]
    fn the_committed_matrix_parses_and_keeps_its_defaults() {
        let m = parse(MATRIX_TOML).unwrap();
        let defaults: Vec<String> = m
            .series
            .iter()
            .flat_map(|s| {
                s.default_flavours
                    .iter()
                    .map(move |f| format!("{} {f}", s.spec))
            })
            .collect();
        assert_eq!(
            defaults,
            [
                "5.10 cloud-amd64",
                "6.1 cloud-amd64",
                "6.12 cloud-amd64",
                "7.2 cloud-amd64",
                "7.2 arm64-16k",
                "7.2 powerpc64le-64k"
            ]
        );
        let quick = m.quick_emulated.as_ref().expect("[quick] emulated");
        assert_eq!(quick.name, "pages");
        assert_eq!(m.filesystems, zcmatrix_protocol::target::names());
        assert_eq!(m.geometries, [512, 4096]);
        assert_eq!((m.memory_mb, m.timeout_s, m.boot_timeout_s), (512, 300, 30));
        let next = m.series.iter().find(|s| s.spec == "next").unwrap();
        assert!(next.default_flavours.is_empty() && next.version.is_none());
        let pages = m.selections.iter().find(|p| p.name == "pages").unwrap();
        assert_eq!(
            pages.kernels,
            ["7.2", "7.2-arm64-16k", "7.2-powerpc64le-64k"]
        );
        // Every architecture has a flavour.
        for a in Arch::ALL {
            assert!(m.flavours.iter().any(|f| f.arch == a), "{a}");
        }
    }

    #[test]
    fn a_matrix_naming_what_does_not_exist_is_refused() {
        let bad_flavour = MATRIX_TOML.replace(
            "default = [\"cloud-amd64\"]",
            "default = [\"cloud-riscv64\"]",
        );
        let e = parse(&bad_flavour).unwrap_err().to_string();
        assert!(e.contains("cloud-riscv64"), "{e}");
        let bad_fs = MATRIX_TOML.replace("\"xfs-dax\"]", "\"zfs\"]");
        assert!(parse(&bad_fs).unwrap_err().to_string().contains("zfs"));
        let typo = MATRIX_TOML.replace("memory_mb", "memory");
        assert!(parse(&typo).is_err());
    }
}
