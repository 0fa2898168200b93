//! Kernels: a short spec (`6.1`) → Debian packages → verified .deb files → vmlinuz + modules.
//!
//! Resolution is recorded in a lock file so that a run is reproducible; a cached .deb is used
//! only when its sha256 matches the lock. When Debian has dropped a pinned version (sid moves
//! weekly) the newest build of the same series is used instead and the substitution is reported.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::apt::{Apt, AptError, Mirror};
use crate::arch::{Arch, Flavour};
use crate::cache;
use crate::declared::default_flavour;
pub use crate::declared::Series;
use crate::modules::ModuleIndex;

/// The series zcmatrix knows, from `matrix.toml`.
pub fn all_series() -> &'static [Series] {
    crate::declared::matrix().series
}

/// A Debian kernel: a series in one flavour (which fixes the architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebianKernel {
    pub series: &'static Series,
    pub flavour: &'static Flavour,
}

impl DebianKernel {
    /// `7.2` for the x86_64 cloud flavour (the name reports and kernels.lock have always used),
    /// `7.2-arm64-16k` for the others.
    pub fn label(&self) -> String {
        if self.flavour == default_flavour(Arch::X86_64) {
            self.series.spec.to_string()
        } else {
            format!("{}-{}", self.series.spec, self.flavour.name)
        }
    }

    /// The flavour's metapackage, whose dependencies lead to the versioned packages.
    pub fn metapackage(&self) -> String {
        format!("linux-image-{}", self.flavour.name)
    }
}

/// How a user names a kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    Debian(DebianKernel),
    /// A bzImage of the user's, and optionally the `lib/modules/<release>` tree that goes with it.
    Local {
        image: PathBuf,
        modules: Option<PathBuf>,
    },
    /// A kernel as a distribution ships it: its package file(s), unpacked into the cache.
    Package(PackagedKernel),
}

/// A kernel given as the package file(s) a distribution ships (`linux-image-….deb`, plus its
/// modules package where the build is split): the package's own name and version are what the
/// cells record, its architecture what its guest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagedKernel {
    pub files: Vec<PathBuf>,
    pub package: String,
    pub version: String,
    pub arch: Arch,
}

impl PackagedKernel {
    /// Reads the packages' control fields (with dpkg-deb, which setup installs): the image
    /// package (`linux-image-*`, else the first file) names the kernel; every file must be of
    /// one architecture that zcmatrix boots.
    fn read(files: Vec<PathBuf>) -> Result<PackagedKernel, SpecError> {
        let mut named: Option<(String, String)> = None;
        let mut arch: Option<Arch> = None;
        for f in &files {
            let (pkg, ver, a) = if is_rpm(f) {
                rpm_fields(f)?
            } else {
                deb_fields(f)?
            };
            if arch.is_some_and(|x| x != a) {
                return Err(SpecError::BadPackage(
                    f.clone(),
                    "its architecture differs from the other files of the same kernel".into(),
                ));
            }
            arch = Some(a);
            // The image package names the kernel: Debian's linux-image-*, RPM's kernel-core
            // (or kernel, where the build is not split).
            let image = pkg.starts_with("linux-image-") || pkg == "kernel-core" || pkg == "kernel";
            if named.is_none() || image {
                named = Some((pkg, ver));
            }
        }
        let (package, version) = named.expect("at least one file");
        Ok(PackagedKernel {
            files,
            package,
            version,
            arch: arch.expect("at least one file"),
        })
    }

    pub fn label(&self) -> String {
        format!("{}_{}", self.package, self.version)
    }
}

fn is_rpm(f: &Path) -> bool {
    f.extension().is_some_and(|e| e == "rpm")
}

/// (package, version-release, architecture) of an .rpm, read with the rpm crate.
fn rpm_fields(f: &Path) -> Result<(String, String, Arch), SpecError> {
    let bad = |why: String| SpecError::BadPackage(f.to_path_buf(), why);
    let meta =
        rpm::PackageMetadata::open(f).map_err(|e| bad(format!("not a readable RPM: {e}")))?;
    let field = |r: Result<&str, rpm::Error>| r.map(str::to_string).map_err(|e| bad(e.to_string()));
    let name = field(meta.get_name())?;
    let version = format!(
        "{}-{}",
        field(meta.get_version())?,
        field(meta.get_release())?
    );
    let rpm_arch = field(meta.get_arch())?;
    let arch = match rpm_arch.as_str() {
        "x86_64" => Arch::X86_64,
        "aarch64" => Arch::Arm64,
        "ppc64le" => Arch::Ppc64le,
        other => {
            return Err(bad(format!(
                "it is built for {other}, and zcmatrix boots x86_64, aarch64 and ppc64le"
            )))
        }
    };
    Ok((name, version, arch))
}

/// Writes an .rpm's regular files and symbolic links under `into` (what `rpm2cpio | cpio -id`
/// would, without either program): the kernel image and modules are regular files.
fn unpack_rpm(f: &Path, into: &Path) -> anyhow::Result<()> {
    let pkg = rpm::Package::open(f).with_context(|| format!("reading {}", f.display()))?;
    for entry in pkg
        .files()
        .with_context(|| format!("reading {}", f.display()))?
    {
        let file = entry.with_context(|| format!("reading {}", f.display()))?;
        let path = file.metadata.path();
        let rel = path.strip_prefix("/").unwrap_or(&path);
        let dest = into.join(rel);
        match file.metadata.mode().file_type() {
            rpm::FileType::Dir => fs::create_dir_all(&dest)?,
            rpm::FileType::Regular => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&dest, file.content().unwrap_or_default())
                    .with_context(|| format!("writing {}", dest.display()))?;
            }
            // Links (the modules tree's `build`, `source`) and ghosts lead outside the package.
            _ => {}
        }
    }
    Ok(())
}

/// (package, version, architecture) from a .deb's control file.
fn deb_fields(deb: &Path) -> Result<(String, String, Arch), SpecError> {
    let fields = deb_control(deb)?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(pkg), Some(ver), Some(deb_arch)) =
        (get("Package"), get("Version"), get("Architecture"))
    else {
        return Err(SpecError::BadPackage(
            deb.to_path_buf(),
            "its control file lacks Package, Version or Architecture".into(),
        ));
    };
    let a = Arch::ALL
        .iter()
        .copied()
        .find(|a| a.debian() == deb_arch)
        .ok_or_else(|| {
            SpecError::BadPackage(
                deb.to_path_buf(),
                format!("it is built for {deb_arch}, and zcmatrix boots amd64, arm64 and ppc64el"),
            )
        })?;
    Ok((pkg, ver, a))
}

/// `Field: value` pairs of a .deb's control file.
fn deb_control(deb: &Path) -> Result<Vec<(String, String)>, SpecError> {
    let out = std::process::Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .args(["Package", "Version", "Architecture"])
        .output()
        .map_err(|e| {
            SpecError::BadPackage(
                deb.to_path_buf(),
                format!("dpkg-deb could not run ({e}); `cargo xtask setup` installs it"),
            )
        })?;
    if !out.status.success() {
        return Err(SpecError::BadPackage(
            deb.to_path_buf(),
            format!(
                "dpkg-deb cannot read it: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown kernel {0:?}: choose one of {known} (optionally with a flavour: 7.2-arm64-16k; flavours {flavours}), or give a bzImage path (PATH or PATH:MODULES_DIR)", known = known_specs(), flavours = known_flavours())]
    Unknown(String),
    #[error("kernel {spec:?} is a {flavour_arch} kernel, not {arch}")]
    ArchMismatch {
        spec: String,
        flavour_arch: Arch,
        arch: Arch,
    },
    #[error("a local kernel image runs on the host's architecture only, not {0}")]
    LocalArch(Arch),
    #[error("Debian builds no {flavour} kernel of {series} that zcmatrix knows; it has {has} (matrix.toml)")]
    NoSuchFlavour {
        series: &'static str,
        flavour: &'static str,
        has: String,
    },
    #[error("local kernel image {0} does not exist")]
    MissingImage(PathBuf),
    #[error("modules directory {0} does not exist")]
    MissingModules(PathBuf),
    #[error("kernel package {0} does not exist")]
    MissingPackage(PathBuf),
    #[error("kernel package {path}: {why}", path = .0.display(), why = .1)]
    BadPackage(PathBuf, String),
    #[error("{path} is not readable by you ({why}); distributions make /boot/vmlinuz-* readable by root only: run as root, or copy it (sudo install -m 644 {path} ~/vmlinuz) and pass the copy with its modules (PATH:/lib/modules/RELEASE)", path = .0.display(), why = .1)]
    UnreadableImage(PathBuf, String),
}

pub fn known_specs() -> String {
    all_series()
        .iter()
        .map(|s| s.spec)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn known_flavours() -> String {
    crate::declared::flavours()
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl KernelSpec {
    /// A series (`7.2`: x86_64's cloud flavour), a series with a flavour (`7.2-arm64-16k`), or a
    /// local image.
    pub fn parse(s: &str) -> Result<KernelSpec, SpecError> {
        Self::parse_for(s, None)
    }

    /// As [`KernelSpec::parse`], a bare series taking `arch`'s default flavour; a flavour of
    /// another architecture is an error.
    pub fn parse_for(s: &str, arch: Option<Arch>) -> Result<KernelSpec, SpecError> {
        let debian = |series: &'static Series, flavour: Option<&'static Flavour>| {
            let flavour = match flavour {
                Some(f) if !series.flavours.contains(&f.name) => {
                    return Err(SpecError::NoSuchFlavour {
                        series: series.spec,
                        flavour: f.name,
                        has: series.flavours.join(", "),
                    })
                }
                Some(f) => f,
                None => {
                    let a = arch.unwrap_or(Arch::X86_64);
                    series
                        .flavour_for(a)
                        .ok_or_else(|| SpecError::NoSuchFlavour {
                            series: series.spec,
                            flavour: a.name(),
                            has: series.flavours.join(", "),
                        })?
                }
            };
            match arch {
                Some(a) if a != flavour.arch => Err(SpecError::ArchMismatch {
                    spec: s.to_string(),
                    flavour_arch: flavour.arch,
                    arch: a,
                }),
                _ => Ok(KernelSpec::Debian(DebianKernel { series, flavour })),
            }
        };
        if let Some(series) = all_series().iter().find(|x| x.spec == s) {
            return debian(series, None);
        }
        for series in all_series() {
            if let Some(f) = s
                .strip_prefix(series.spec)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(crate::declared::flavour)
            {
                return debian(series, Some(f));
            }
        }
        let packaged = |ext: &str| s.split(',').all(|f| f.ends_with(ext));
        if packaged(".deb") || packaged(".rpm") {
            let files: Vec<PathBuf> = s.split(',').map(PathBuf::from).collect();
            if let Some(f) = files.iter().find(|f| !f.is_file()) {
                return Err(SpecError::MissingPackage(f.clone()));
            }
            let k = PackagedKernel::read(files)?;
            if let Some(a) = arch.filter(|a| *a != k.arch) {
                return Err(SpecError::ArchMismatch {
                    spec: s.to_string(),
                    flavour_arch: k.arch,
                    arch: a,
                });
            }
            return Ok(KernelSpec::Package(k));
        }
        if s.contains('/') {
            let (img, mods) = match s.split_once(':') {
                Some((i, m)) => (PathBuf::from(i), Some(PathBuf::from(m))),
                None => {
                    let img = PathBuf::from(s);
                    let beside = modules_beside(&img);
                    (img, beside)
                }
            };
            if !img.is_file() {
                return Err(SpecError::MissingImage(img));
            }
            if let Err(e) = fs::File::open(&img) {
                return Err(SpecError::UnreadableImage(img, e.to_string()));
            }
            if let Some(m) = &mods {
                if !m.is_dir() {
                    return Err(SpecError::MissingModules(m.clone()));
                }
            }
            if let Some(a) = arch.filter(|a| *a != Arch::X86_64) {
                return Err(SpecError::LocalArch(a));
            }
            return Ok(KernelSpec::Local {
                image: img,
                modules: mods,
            });
        }
        Err(SpecError::Unknown(s.to_string()))
    }

    pub fn label(&self) -> String {
        match self {
            KernelSpec::Debian(k) => k.label(),
            KernelSpec::Local { image, .. } => image.display().to_string(),
            KernelSpec::Package(k) => k.label(),
        }
    }

    /// The architecture its guest is: a local image is taken to be an x86_64 bzImage.
    pub fn arch(&self) -> Arch {
        match self {
            KernelSpec::Debian(k) => k.flavour.arch,
            KernelSpec::Local { .. } => Arch::X86_64,
            KernelSpec::Package(k) => k.arch,
        }
    }

    /// The files the user gave for this kernel (none for a Debian series, which the lock pins):
    /// what a report's run object lists with their sha256.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            KernelSpec::Debian(_) => Vec::new(),
            KernelSpec::Local { image, .. } => vec![image.clone()],
            KernelSpec::Package(k) => k.files.clone(),
        }
    }
}

/// `/lib/modules/RELEASE` for an image named `vmlinuz-RELEASE` (as in `/boot`), looked for
/// beside the image's folder first (an unpacked root: `ROOT/boot` and `ROOT/lib/modules`), then
/// on this host; `None` when neither exists.
fn modules_beside(image: &Path) -> Option<PathBuf> {
    let release = image
        .file_name()?
        .to_str()?
        .strip_prefix("vmlinuz-")?
        .to_string();
    let root = image.parent()?.parent()?;
    [root.join("lib/modules"), PathBuf::from("/lib/modules")]
        .into_iter()
        .map(|d| d.join(&release))
        .find(|d| d.join("modules.order").is_file() || d.join("kernel").is_dir())
}

/// One pinned .deb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedKernel {
    pub suites: Vec<String>,
    /// The kernel image package (`linux-image-…`): what a report names.
    pub package: String,
    pub version: String,
    pub packages: Vec<LockedPackage>,
}

/// `kernels.lock`, committed at the workspace root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub schema_version: u32,
    pub kernels: BTreeMap<String, LockedKernel>,
}

impl LockFile {
    pub fn load(path: &Path) -> anyhow::Result<LockFile> {
        if !path.exists() {
            return Ok(LockFile {
                schema_version: 1,
                ..Default::default()
            });
        }
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub spec: String,
    pub arch: Arch,
    /// The page size its flavour is built for (4096 for a local image): what the swap area is
    /// formatted for. Reports carry the page size the guest read, not this.
    pub page_size: u32,
    pub image: PathBuf,
    /// `lib/modules/<release>`, if the kernel has loadable modules.
    pub modules: Option<PathBuf>,
    pub package: Option<String>,
    pub version: Option<String>,
    /// Set when the locked version had left the archive and another was used.
    pub substituted: Option<String>,
}

impl Kernel {
    /// The kernel's build configuration, where its package ships one beside the image
    /// ([`config_beside`]); `None` for a local build given by path.
    pub fn config_text(&self) -> Option<String> {
        config_beside(&self.image)
    }
}

/// Fetches, verifies and unpacks kernels under one cache directory.
pub struct KernelStore {
    pub cache: PathBuf,
    mirror: Option<Mirror>,
}

/// The packages that make up one kernel build. From 7.x Debian splits it: `linux-binary-*`
/// (the image), `linux-modules-*`, and `linux-base-<version>-*`, which alone carries
/// `modules.builtin{,.modinfo}` (without them built-in drivers look missing).
fn is_version_gone(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<AptError>(),
        Some(AptError::VersionGone { .. })
    )
}

fn is_kernel_package(name: &str) -> bool {
    let versioned = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    (versioned("linux-image-")
        || versioned("linux-base-")
        || name.starts_with("linux-binary-")
        || name.starts_with("linux-modules-"))
        && !name.ends_with("-dbg")
}

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

impl KernelStore {
    pub fn new(cache: &Path) -> KernelStore {
        KernelStore {
            cache: cache.to_path_buf(),
            mirror: None,
        }
    }

    /// One apt state per series and architecture (amd64 keeps the series' name, as before
    /// other architectures existed, so existing caches stay valid).
    fn apt(&mut self, k: &DebianKernel) -> anyhow::Result<Apt> {
        if self.mirror.is_none() {
            self.mirror = Some(Mirror::discover()?);
        }
        let arch = k.flavour.arch;
        let dir = match arch {
            Arch::X86_64 => k.series.spec.to_string(),
            a => format!("{}-{}", k.series.spec, a.debian()),
        };
        let root = self.cache.join("apt").join(dir);
        Apt::new(
            &root,
            self.mirror.as_ref().unwrap(),
            k.series.suites,
            arch.debian(),
        )
    }

    /// Asks the archive for the newest build of the series in its flavour (refreshing the
    /// indexes first).
    pub fn resolve(&mut self, k: &DebianKernel) -> anyhow::Result<LockedKernel> {
        let apt = self.apt(k)?;
        apt.update()?;
        resolve_with(&apt, k)
    }

    /// Makes the kernel bootable from the cache, fetching what is missing. Updates `lock` when
    /// the series was not locked yet or the locked build is gone.
    pub fn ensure(&mut self, spec: &KernelSpec, lock: &mut LockFile) -> anyhow::Result<Kernel> {
        let series = match spec {
            KernelSpec::Local { image, modules } => {
                return Ok(Kernel {
                    spec: spec.label(),
                    arch: spec.arch(),
                    page_size: 4096,
                    image: image.clone(),
                    modules: modules.clone(),
                    package: None,
                    version: None,
                    substituted: None,
                })
            }
            KernelSpec::Package(k) => return self.unpack_package(spec, k),
            KernelSpec::Debian(k) => *k,
        };
        let key = series.label();
        let locked = match lock.kernels.get(&key) {
            Some(l) => l.clone(),
            None => {
                let l = self.resolve(&series)?;
                lock.kernels.insert(key.clone(), l.clone());
                l
            }
        };
        // A tree unpacked from exactly these packages (its name carries their hashes) that
        // still matches its manifest needs no .deb: hashing them again would cost every guest
        // a tenth of a second or more.
        let tree = self.tree_path(&locked);
        if tree.exists() {
            let _lock = cache::lock_entry(&tree)?;
            if let Ok((image, modules)) = check_tree(&tree) {
                return Ok(Kernel {
                    spec: spec.label(),
                    arch: series.flavour.arch,
                    page_size: series.flavour.page_size,
                    image,
                    modules,
                    package: Some(locked.package.clone()),
                    version: Some(locked.version.clone()),
                    substituted: None,
                });
            }
        }
        match self.fetch_all(&series, &locked) {
            Ok(debs) => self.finish(spec, &locked, &debs, None),
            Err(e) if is_version_gone(&e) => {
                let newer = self.resolve(&series)?;
                let note = format!(
                    "{} {} is no longer in the archive ({e}); used {} instead",
                    locked.package, locked.version, newer.version
                );
                lock.kernels.insert(key, newer.clone());
                let debs = self.fetch_all(&series, &newer)?;
                self.finish(spec, &newer, &debs, Some(note))
            }
            Err(e) => Err(e),
        }
    }

    fn finish(
        &self,
        spec: &KernelSpec,
        locked: &LockedKernel,
        debs: &[PathBuf],
        substituted: Option<String>,
    ) -> anyhow::Result<Kernel> {
        let tree = self.tree_path(locked);
        let (image, modules) = verified_tree(debs, &tree)?;
        let KernelSpec::Debian(k) = spec else {
            bail!("only Debian kernels are fetched");
        };
        Ok(Kernel {
            spec: spec.label(),
            arch: spec.arch(),
            page_size: k.flavour.page_size,
            image,
            modules,
            package: Some(locked.package.clone()),
            version: Some(locked.version.clone()),
            substituted,
        })
    }

    /// A packaged kernel unpacked into the cache once (keyed by its files' hashes, verified like
    /// a Debian series' tree), refused before any guest boots when it has no virtio disk driver.
    fn unpack_package(&self, spec: &KernelSpec, k: &PackagedKernel) -> anyhow::Result<Kernel> {
        let mut h = Sha256::new();
        for f in &k.files {
            h.update(sha256_file(f)?.as_bytes());
        }
        let tree = self.cache.join("kernels").join(format!(
            "{}_{}_{}",
            k.package,
            k.version,
            &hex::encode(h.finalize())[..12]
        ));
        let (image, modules) = verified_tree(&k.files, &tree)?;
        if let Some(missing) = missing_drivers(modules.as_deref())? {
            bail!(
                "{} {} cannot run a zcmatrix guest: {missing} (zcmatrix's guests boot from virtio \
                 disks; where the build is split, give its modules package too: \
                 --kernel IMAGE.deb,MODULES.deb)",
                k.package,
                k.version
            );
        }
        Ok(Kernel {
            spec: spec.label(),
            arch: k.arch,
            page_size: page_size_of(config_beside(&image).as_deref()),
            image,
            modules,
            package: Some(k.package.clone()),
            version: Some(k.version.clone()),
            substituted: None,
        })
    }

    /// Where the locked kernel's packages are unpacked, keyed by every .deb's hash: a change
    /// in the package set must not reuse an old tree.
    fn tree_path(&self, locked: &LockedKernel) -> PathBuf {
        let mut h = Sha256::new();
        for p in &locked.packages {
            h.update(p.sha256.as_bytes());
        }
        self.cache.join("kernels").join(format!(
            "{}_{}_{}",
            locked.package,
            locked.version,
            &hex::encode(h.finalize())[..12]
        ))
    }

    /// Every package of the locked kernel as a verified .deb in the cache.
    fn fetch_all(
        &mut self,
        series: &DebianKernel,
        locked: &LockedKernel,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.cache.join("debs");
        let mut apt: Option<Apt> = None;
        let mut out = Vec::new();
        for p in &locked.packages {
            let cached = dir.join(format!("{}_{}.deb", p.name, p.version));
            if cached.exists() && sha256_file(&cached)? == p.sha256 {
                out.push(cached);
                continue;
            }
            // Missing or not what the lock says: never use it, fetch again.
            let _ = fs::remove_file(&cached);
            if apt.is_none() {
                let a = self.apt(series)?;
                if !a.has_lists() {
                    a.update()?;
                }
                apt = Some(a);
            }
            let a = apt.as_ref().unwrap();
            let staging = dir.join("partial");
            let _ = fs::remove_dir_all(&staging);
            let got = match a.download(&p.name, &p.version, &staging) {
                Err(e) if e.downcast_ref::<AptError>().is_some() => {
                    // Stale indexes look like a vanished version: refresh once before believing it.
                    a.update()?;
                    a.download(&p.name, &p.version, &staging)?
                }
                r => r?,
            };
            let sum = sha256_file(&got)?;
            if sum != p.sha256 {
                bail!(
                    "{} {}: downloaded sha256 {sum} does not match the lock's {}",
                    p.name,
                    p.version,
                    p.sha256
                );
            }
            fs::rename(&got, &cached)?;
            out.push(cached);
        }
        Ok(out)
    }
}

/// Walks Depends from the flavour's metapackage down to the versioned image, binary and
/// modules packages (one package up to 6.12; `linux-binary-*` + `linux-modules-*` from 7.x).
fn resolve_with(apt: &Apt, k: &DebianKernel) -> anyhow::Result<LockedKernel> {
    let series = k.series;
    let metapackage = k.metapackage();
    let meta = apt.show(&metapackage, None)?;
    let meta_version = meta.get("Version").unwrap_or_default().to_string();
    if let Some(v) = series.version {
        if !meta_version.starts_with(&format!("{v}.")) {
            bail!(
                "{metapackage} in {} is {meta_version}, not a {v} kernel: the series has left those suites",
                series.suites.iter().map(|s| s.name).collect::<Vec<_>>().join("+"),
            );
        }
    }
    let mut queue: Vec<String> = meta
        .depends()
        .into_iter()
        .filter(|d| is_kernel_package(d))
        .collect();
    let mut packages = Vec::new();
    let mut image = None;
    while let Some(name) = queue.pop() {
        if packages.iter().any(|p: &LockedPackage| p.name == name) {
            continue;
        }
        let st = apt.show(&name, None)?;
        let version = st.get("Version").context("no Version")?.to_string();
        if name.starts_with("linux-image-") {
            image = Some((name.clone(), version.clone()));
        }
        packages.push(LockedPackage {
            name: name.clone(),
            version,
            sha256: st.get("SHA256").context("no SHA256")?.to_string(),
            size: st.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        });
        queue.extend(st.depends().into_iter().filter(|d| is_kernel_package(d)));
    }
    let (package, version) = image.with_context(|| {
        format!("{metapackage} {meta_version} depends on no linux-image package")
    })?;
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(LockedKernel {
        suites: series.suites.iter().map(|s| s.name.to_string()).collect(),
        package,
        version,
        packages,
    })
}

/// Unpacks .debs into `tree` once; a marker records that unpacking finished.
/// The manifest of an unpacked kernel, at the top of its tree.
const TREE_MANIFEST: &str = "zcmatrix-manifest.json";

/// Modules checked, with their dependencies, before every use of a tree: the virtio disk's and
/// those of the targets on a disk of their own (the target table's); the rest of the tree is read
/// only for what a guest loads.
fn verified_modules() -> Vec<&'static str> {
    let disks = zcmatrix_protocol::target::TARGETS
        .iter()
        .filter(|t| t.backing == zcmatrix_protocol::target::Backing::Disk)
        // A disk target's module is its filesystem, the same on every architecture.
        .flat_map(|t| t.modules(Arch::X86_64.name()).unwrap_or_default());
    ["virtio_pci", "virtio_blk"]
        .into_iter()
        .chain(disks)
        .collect()
}

/// The unpacked kernel at `tree`, checked against its manifest (the image, the module index and
/// every module a guest may load); unpacked again from the verified .debs when it is missing,
/// incomplete or does not match. Returns the image and the modules tree.
fn verified_tree(debs: &[PathBuf], tree: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let _lock = cache::lock_entry(tree)?;
    if tree.exists() {
        match check_tree(tree) {
            Ok(found) => return Ok(found),
            Err(m) => cache::log_rebuild(tree, &m),
        }
        fs::remove_dir_all(tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    // Unpacked under a temporary name and renamed when complete, manifest included: a run
    // killed half-way leaves a temporary directory, never a tree that looks finished.
    let parent = tree.parent().context("a kernel tree has a parent")?;
    fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)?;
    let sh = Shell::new()?;
    let into = tmp.path();
    for d in debs {
        if is_rpm(d) {
            unpack_rpm(d, into)?;
            continue;
        }
        cmd!(sh, "dpkg-deb -x {d} {into}")
            .quiet()
            .run()
            .with_context(|| format!("unpacking {}", d.display()))?;
    }
    if let (_, Some(modules)) = find_image_and_modules(into)? {
        // The module index is derived from the tree; made now, it is covered by the manifest.
        ModuleIndex::load(&modules)?;
    }
    let mut rel = Vec::new();
    for e in walkdir::WalkDir::new(into) {
        let e = e?;
        if e.file_type().is_file() {
            rel.push(e.path().strip_prefix(into)?.to_string_lossy().into_owned());
        }
    }
    let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
    cache::Manifest::of(into, &rel)?.save(&into.join(TREE_MANIFEST))?;
    fs::rename(tmp.keep(), tree).with_context(|| format!("renaming to {}", tree.display()))?;
    check_tree(tree).map_err(|m| anyhow::anyhow!("a freshly unpacked kernel does not verify: {m}"))
}

/// The files of `tree` a guest reads, checked against the manifest.
fn check_tree(tree: &Path) -> Result<(PathBuf, Option<PathBuf>), cache::Mismatch> {
    let mismatch = |why: String| cache::Mismatch {
        file: tree.join(TREE_MANIFEST),
        why,
    };
    let manifest = cache::Manifest::load(&tree.join(TREE_MANIFEST))
        .map_err(|e| mismatch(format!("no readable manifest: {e:#}")))?;
    let (image, modules) = find_image_and_modules(tree).map_err(|e| mismatch(format!("{e:#}")))?;
    let mut used = vec![image.clone()];
    if let Some(m) = &modules {
        let ix = ModuleIndex::load(m).map_err(|e| mismatch(format!("{e:#}")))?;
        used.push(m.join(crate::modules::INDEX_FILE));
        let wanted: Vec<&str> = verified_modules()
            .into_iter()
            .filter(|n| ix.load_order(&[n]).is_ok())
            .collect();
        let order = ix
            .load_order(&wanted)
            .map_err(|e| mismatch(format!("{e}")))?;
        used.extend(order.iter().filter_map(|n| ix.path_of(m, n)));
    }
    let rel: Vec<String> = used
        .iter()
        .filter_map(|p| p.strip_prefix(tree).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
    manifest.verify(tree, Some(&rel))?;
    Ok((image, modules))
}

/// The drivers every guest needs to reach its disks and result port, as modules or built in.
const GUEST_DRIVERS: &[&str] = &["virtio_pci", "virtio_blk"];

/// Which of [`GUEST_DRIVERS`] a kernel's modules tree can neither load nor has built in,
/// named for the user; `None` when all are there.
fn missing_drivers(modules: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(m) = modules else {
        return Ok(Some(format!(
            "it has no lib/modules tree, so none of {} can be loaded or found built in",
            GUEST_DRIVERS.join(", ")
        )));
    };
    let ix = ModuleIndex::load(m)?;
    let missing: Vec<&str> = GUEST_DRIVERS
        .iter()
        .copied()
        .filter(|d| ix.load_order(&[d]).is_err())
        .collect();
    Ok((!missing.is_empty()).then(|| {
        format!(
            "its modules tree {} has no {} (neither a module nor built in)",
            m.display(),
            missing.join(", ")
        )
    }))
}

/// The page size a kernel is built for, from its build configuration (the options that choose
/// 16 KiB and 64 KiB pages); 4 KiB, the base page of all three architectures, otherwise.
fn page_size_of(config: Option<&str>) -> u32 {
    let Some(text) = config else {
        return 4096;
    };
    [
        ("CONFIG_ARM64_16K_PAGES=y", 16384),
        ("CONFIG_ARM64_64K_PAGES=y", 65536),
        ("CONFIG_PPC_64K_PAGES=y", 65536),
    ]
    .into_iter()
    .find(|(option, _)| text.lines().any(|l| l == *option))
    .map_or(4096, |(_, size)| size)
}

/// The build configuration beside a Debian kernel image: `config-<release>` next to
/// `vmlinuz-<release>` (up to 6.12: `boot/`) or `config` next to `vmlinuz` (the split 7.x
/// packages: `usr/lib/modules/<release>/`). `None` for an image named otherwise (a bzImage
/// given by path, whose name says nothing of a config) or without one.
fn config_beside(image: &Path) -> Option<String> {
    let name = image.file_name()?.to_str()?;
    let rest = name.strip_prefix("vmlinuz")?;
    fs::read_to_string(image.with_file_name(format!("config{rest}"))).ok()
}

/// The kernel image and the `lib/modules/<release>` tree in an unpacked kernel. Up to 6.12 the
/// image is `boot/vmlinuz-<release>`; the split 7.x packages put it at
/// `usr/lib/modules/<release>/vmlinuz`.
pub fn find_image_and_modules(tree: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let mut modules = None;
    let mut image = None;
    for base in [tree.join("lib/modules"), tree.join("usr/lib/modules")] {
        if let Ok(rd) = fs::read_dir(&base) {
            for e in rd.flatten() {
                let p = e.path();
                if p.join("vmlinuz").is_file() {
                    image = Some(p.join("vmlinuz"));
                }
                if p.join("kernel").is_dir() {
                    modules = Some(p);
                }
            }
        }
    }
    if let Ok(rd) = fs::read_dir(tree.join("boot")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("vmlinuz-") {
                image = Some(e.path());
            }
        }
    }
    let image = image.with_context(|| {
        format!(
            "no boot/vmlinuz-* nor lib/modules/*/vmlinuz in {}",
            tree.display()
        )
    })?;
    Ok((image, modules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::Suite;

    #[test]
    fn a_tree_is_verified_for_the_virtio_disk_and_the_disk_targets_modules() {
        assert_eq!(
            verified_modules(),
            ["virtio_pci", "virtio_blk", "ext4", "xfs", "btrfs"]
        );
    }

    #[test]
    fn known_specs_map_to_their_suites() {
        let KernelSpec::Debian(k) = KernelSpec::parse("5.10").unwrap() else {
            panic!()
        };
        assert_eq!(k.series.suites[0].name, "bullseye");
        assert!(k.series.suites[1].security);
        let KernelSpec::Debian(k) = KernelSpec::parse("7.2").unwrap() else {
            panic!()
        };
        assert_eq!(
            k.series.suites,
            &[Suite {
                name: "sid",
                security: false
            }]
        );
        assert_eq!(k.flavour.name, "cloud-amd64");
        let KernelSpec::Debian(k) = KernelSpec::parse("next").unwrap() else {
            panic!()
        };
        assert_eq!(k.series.suites[0].name, "experimental");
        assert!(k.series.opt_in() && k.series.version.is_none());
    }

    #[test]
    fn flavours_and_arches_name_other_kernels() {
        let k = |s: &str, a: Option<Arch>| match KernelSpec::parse_for(s, a).unwrap() {
            KernelSpec::Debian(k) => (k.label(), k.metapackage(), k.flavour.arch),
            l => panic!("{l:?}"),
        };
        assert_eq!(
            k("7.2", None),
            ("7.2".into(), "linux-image-cloud-amd64".into(), Arch::X86_64)
        );
        assert_eq!(
            k("7.2", Some(Arch::Arm64)),
            (
                "7.2-cloud-arm64".into(),
                "linux-image-cloud-arm64".into(),
                Arch::Arm64
            )
        );
        assert_eq!(
            k("7.2-arm64-16k", None),
            (
                "7.2-arm64-16k".into(),
                "linux-image-arm64-16k".into(),
                Arch::Arm64
            )
        );
        assert_eq!(
            k("7.2", Some(Arch::Ppc64le)).1,
            "linux-image-powerpc64le-64k"
        );
        // A label parses back to the same kernel.
        for f in crate::declared::flavours() {
            let spec = KernelSpec::parse(&format!("6.12-{}", f.name)).unwrap();
            assert_eq!(KernelSpec::parse(&spec.label()).unwrap(), spec);
            assert_eq!(spec.arch(), f.arch);
        }
        let e = KernelSpec::parse_for("7.2-arm64-16k", Some(Arch::Ppc64le)).unwrap_err();
        assert!(matches!(e, SpecError::ArchMismatch { .. }), "{e}");
        // Bullseye has no 16 KiB arm64 build, nor any ppc64le flavour zcmatrix knows.
        let e = KernelSpec::parse("5.10-arm64-16k").unwrap_err().to_string();
        assert!(e.contains("cloud-amd64, cloud-arm64"), "{e}");
        assert!(KernelSpec::parse_for("5.10", Some(Arch::Ppc64le)).is_err());
    }

    #[test]
    fn unknown_spec_lists_the_choices() {
        let e = KernelSpec::parse("4.19").unwrap_err().to_string();
        assert!(
            e.contains("4.19") && e.contains("5.10, 6.1, 6.12, 7.2, next"),
            "{e}"
        );
    }

    #[test]
    fn local_spec_needs_an_existing_image() {
        let e = KernelSpec::parse("/nonexistent/bzImage").unwrap_err();
        assert!(matches!(e, SpecError::MissingImage(_)));
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("bzImage");
        fs::write(&img, b"x").unwrap();
        let spec = format!("{}:{}", img.display(), dir.path().display());
        assert_eq!(
            KernelSpec::parse(&spec).unwrap(),
            KernelSpec::Local {
                image: img,
                modules: Some(dir.path().to_path_buf())
            }
        );
    }

    #[test]
    fn a_boot_image_finds_its_modules_beside_it() {
        let root = tempfile::tempdir().unwrap();
        let boot = root.path().join("boot");
        let mods = root.path().join("lib/modules/6.8.0-40-generic");
        fs::create_dir_all(&boot).unwrap();
        fs::create_dir_all(mods.join("kernel")).unwrap();
        let img = boot.join("vmlinuz-6.8.0-40-generic");
        fs::write(&img, b"x").unwrap();
        assert_eq!(
            KernelSpec::parse(img.to_str().unwrap()).unwrap(),
            KernelSpec::Local {
                image: img.clone(),
                modules: Some(mods)
            }
        );
        // An image of another name has no release to look for.
        let other = boot.join("bzImage");
        fs::write(&other, b"x").unwrap();
        assert_eq!(modules_beside(&other), None);
    }

    #[test]
    fn a_file_that_is_not_a_package_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("linux-image-x.deb");
        fs::write(&bad, b"not an ar archive").unwrap();
        let e = KernelSpec::parse(bad.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, SpecError::BadPackage(..)), "{e}");
        assert!(e.to_string().contains("linux-image-x.deb"), "{e}");
        let e = KernelSpec::parse("/nonexistent/linux-image-y.deb").unwrap_err();
        assert!(matches!(e, SpecError::MissingPackage(_)), "{e}");
    }

    #[test]
    fn the_config_is_read_from_beside_the_image_in_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = |image: PathBuf| Kernel {
            spec: "t".into(),
            arch: Arch::Arm64,
            page_size: 4096,
            image,
            modules: None,
            package: None,
            version: None,
            substituted: None,
        };
        let boot = dir.path().join("boot");
        fs::create_dir_all(&boot).unwrap();
        fs::write(boot.join("config-6.1.0-1-arm64"), "CONFIG_OF_PMEM=m\n").unwrap();
        let k = kernel(boot.join("vmlinuz-6.1.0-1-arm64"));
        assert_eq!(k.config_text().as_deref(), Some("CONFIG_OF_PMEM=m\n"));
        let split = dir.path().join("usr/lib/modules/7.2.13+deb14-arm64-16k");
        fs::create_dir_all(&split).unwrap();
        fs::write(split.join("config"), "# CONFIG_LIBNVDIMM is not set\n").unwrap();
        let k = kernel(split.join("vmlinuz"));
        assert_eq!(
            k.config_text().as_deref(),
            Some("# CONFIG_LIBNVDIMM is not set\n")
        );
        assert_eq!(kernel(dir.path().join("bzImage")).config_text(), None);
    }

    #[test]
    fn the_page_size_comes_from_the_kernels_config() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("boot/vmlinuz-7.2.13+deb14-arm64-16k");
        fs::create_dir_all(image.parent().unwrap()).unwrap();
        assert_eq!(page_size_of(config_beside(&image).as_deref()), 4096);
        fs::write(
            dir.path().join("boot/config-7.2.13+deb14-arm64-16k"),
            "CONFIG_ARM64=y\nCONFIG_ARM64_16K_PAGES=y\n",
        )
        .unwrap();
        assert_eq!(page_size_of(config_beside(&image).as_deref()), 16384);
        assert_eq!(page_size_of(Some("CONFIG_PPC_64K_PAGES=y\n")), 65536);
        assert_eq!(
            page_size_of(Some("# CONFIG_ARM64_16K_PAGES is not set\n")),
            4096
        );
    }

    #[test]
    fn a_tree_without_virtio_disk_drivers_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let msg = missing_drivers(None).unwrap().unwrap();
        assert!(msg.contains("virtio_blk"), "{msg}");
        let m = dir.path().join("lib/modules/6.1.0-1-amd64");
        fs::create_dir_all(m.join("kernel")).unwrap();
        fs::write(
            m.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        let msg = missing_drivers(Some(&m)).unwrap().unwrap();
        assert!(msg.contains("no virtio_blk ("), "{msg}");
        // The index is cached beside the tree: a changed tree needs it made again.
        fs::remove_file(m.join(crate::modules::INDEX_FILE)).unwrap();
        fs::write(
            m.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/block/virtio_blk.ko\n",
        )
        .unwrap();
        assert_eq!(missing_drivers(Some(&m)).unwrap(), None);
    }

    #[test]
    fn kernel_packages_are_image_binary_and_modules_only() {
        assert!(is_kernel_package("linux-image-6.1.0-47-cloud-amd64"));
        assert!(is_kernel_package("linux-binary-7.2.13+deb14-cloud-amd64"));
        assert!(is_kernel_package("linux-modules-7.2.13+deb14-cloud-amd64"));
        assert!(!is_kernel_package("linux-image-cloud-amd64"));
        assert!(is_kernel_package("linux-base-7.2.13+deb14-cloud-amd64"));
        assert!(!is_kernel_package("linux-base-cloud-amd64"));
        assert!(!is_kernel_package("linux-base"));
        assert!(!is_kernel_package("linux-image-6.1.0-47-cloud-amd64-dbg"));
        assert!(!is_kernel_package("initramfs-tools"));
    }

    #[test]
    fn finds_the_image_in_both_debian_layouts() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old");
        fs::create_dir_all(old.join("boot")).unwrap();
        fs::create_dir_all(old.join("lib/modules/6.1.0-56-cloud-amd64/kernel")).unwrap();
        fs::write(old.join("boot/vmlinuz-6.1.0-56-cloud-amd64"), "k").unwrap();
        let (img, m) = find_image_and_modules(&old).unwrap();
        assert!(img.ends_with("boot/vmlinuz-6.1.0-56-cloud-amd64"));
        assert!(m.unwrap().ends_with("lib/modules/6.1.0-56-cloud-amd64"));

        let new = d.path().join("new");
        let rel = new.join("usr/lib/modules/7.2.13+deb14-cloud-amd64");
        fs::create_dir_all(rel.join("kernel")).unwrap();
        fs::write(rel.join("vmlinuz"), "k").unwrap();
        let (img, m) = find_image_and_modules(&new).unwrap();
        assert_eq!(img, rel.join("vmlinuz"));
        assert_eq!(m.unwrap(), rel);

        assert!(find_image_and_modules(d.path()).is_err());
    }

    #[test]
    fn lock_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kernels.lock");
        let mut l = LockFile::load(&p).unwrap();
        assert_eq!(l.schema_version, 1);
        l.kernels.insert(
            "6.1".into(),
            LockedKernel {
                suites: vec!["bookworm".into()],
                package: "linux-image-6.1.0-47-cloud-amd64".into(),
                version: "6.1.170-3".into(),
                packages: vec![],
            },
        );
        l.save(&p).unwrap();
        assert_eq!(LockFile::load(&p).unwrap(), l);
    }
}
