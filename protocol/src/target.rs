//! The filesystem targets zcmatrix can test, one row each: the `--fs` words, the report's `fs`,
//! what holds the target in the guest, the filesystem of its image and the modules it needs; and
//! the image filesystems, one row each: how the host makes an image (mkfs, package, options).
//! `matrix.toml` names targets from this table; the host (images, modules, disks, pmem) and the
//! guest (how to mount it) read their rows instead of matching on names.

/// What holds a target in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A virtio disk per geometry, the filesystem made on the host.
    Disk,
    /// Guest memory, nothing to prepare (tmpfs).
    Memory,
    /// overlayfs whose lower and upper layers are directories of one ext4 virtio disk (the
    /// blank ext4 image): one cell, at one geometry.
    Overlay,
    /// Emulated persistent memory (a region the host declares to the kernel: see
    /// [`Target::pmem_regions`]) holding a filesystem made on the host, mounted with DAX: one
    /// cell, no geometry (pmem has no virtio disk).
    Pmem,
}

/// One filesystem target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The `--fs` word and the report's `fs`.
    pub name: &'static str,
    pub backing: Backing,
    /// The filesystem of the image its disk or pmem region holds (`None`: no image, tmpfs).
    pub image_fs: Option<&'static str>,
    /// Kernel modules the guest loads for it (names or aliases, resolved from the kernel's own
    /// metadata): the filesystem, and what holds it (for a DAX target the filesystem's only;
    /// [`Target::modules`] adds the region's and [`PMEM_DEVICE`]).
    pub modules: &'static [&'static str],
    /// A DAX target's persistent-memory region, per architecture: which module binds the
    /// region the host declares there. An architecture not listed has no DAX target.
    pub pmem_regions: &'static [PmemRegion],
    /// mkfs options appended to every option set of its image filesystem. Until 6.0 xfs
    /// refused to mount a reflink filesystem with DAX ("DAX and reflink cannot be used
    /// together!"); without reflink every kernel mounts it.
    pub mkfs_extra: &'static [&'static str],
}

/// How one architecture's kernel gets a persistent-memory region it can map with struct pages
/// (ND_REGION_PAGEMAP: what DAX needs) and that is synchronous (MAP_SYNC granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmemRegion {
    /// The architecture's name (`x86_64`, `arm64`, `ppc64le`: the `--arch` words).
    pub arch: &'static str,
    /// The module that binds the region and registers it with libnvdimm.
    pub module: &'static str,
    /// The kernel option that builds that module: a kernel built without it has no such
    /// region, which its own config says.
    pub config: &'static str,
}

/// Where the DAX targets' regions come from. x86_64: `memmap=SIZE!OFFSET` on the command line
/// makes an e820 type-12 range, which `nd_e820` registers as a legacy pmem region (X86_PMEM_LEGACY).
/// arm64: a device-tree node `compatible = "pmem-region"`, which `of_pmem` registers
/// ("libnvdimm: Add device-tree based driver", 4.17; drivers/nvdimm/of_pmem.c sets
/// ND_REGION_PAGEMAP, and a region without the `volatile` property is a pmem region, which
/// nd_pmem makes synchronous). ppc64le has neither: its pmem driver, papr_scm, binds the
/// hypervisor's storage-class-memory devices.
pub const PMEM_REGIONS: &[PmemRegion] = &[
    PmemRegion {
        arch: "x86_64",
        module: "nd_e820",
        config: "CONFIG_X86_PMEM_LEGACY",
    },
    PmemRegion {
        arch: "arm64",
        module: "of_pmem",
        config: "CONFIG_OF_PMEM",
    },
];

/// The module that gives a pmem region its DAX-capable block device (`/dev/pmemN`), on every
/// architecture.
pub const PMEM_DEVICE: &str = "nd_pmem";

/// Every target, in the order `matrix.toml` lists them.
pub const TARGETS: &[Target] = &[
    disk("ext4"),
    disk("xfs"),
    disk("btrfs"),
    Target {
        name: "tmpfs",
        backing: Backing::Memory,
        image_fs: None,
        modules: &[],
        pmem_regions: &[],
        mkfs_extra: &[],
    },
    Target {
        name: "overlay",
        backing: Backing::Overlay,
        image_fs: Some("ext4"),
        modules: &["ext4", "overlay"],
        pmem_regions: &[],
        mkfs_extra: &[],
    },
    Target {
        name: "ext4-dax",
        backing: Backing::Pmem,
        image_fs: Some("ext4"),
        modules: &["ext4"],
        pmem_regions: PMEM_REGIONS,
        mkfs_extra: &[],
    },
    Target {
        name: "xfs-dax",
        backing: Backing::Pmem,
        image_fs: Some("xfs"),
        modules: &["xfs"],
        pmem_regions: PMEM_REGIONS,
        mkfs_extra: &["-m", "reflink=0"],
    },
];

/// A filesystem on its own virtio disk, made on the host, its module named as it is.
const fn disk(name: &'static str) -> Target {
    Target {
        name,
        backing: Backing::Disk,
        image_fs: Some(name),
        modules: &[],
        pmem_regions: &[],
        mkfs_extra: &[],
    }
}

impl Target {
    /// The modules a guest of `arch` loads for it (a disk target's filesystem is its own name;
    /// a DAX target's are its filesystem's, its region's on that architecture, then
    /// [`PMEM_DEVICE`]); `None` for a DAX target on an architecture with no region.
    pub fn modules(&self, arch: &str) -> Option<Vec<&'static str>> {
        match self.backing {
            Backing::Disk => Some(vec![self.name]),
            Backing::Pmem => {
                let region = self.pmem_region(arch)?;
                let mut m = self.modules.to_vec();
                m.extend([region.module, PMEM_DEVICE]);
                Some(m)
            }
            _ => Some(self.modules.to_vec()),
        }
    }

    /// The persistent-memory region a DAX target has on `arch`.
    pub fn pmem_region(&self, arch: &str) -> Option<&'static PmemRegion> {
        self.pmem_regions.iter().find(|r| r.arch == arch)
    }
}

/// The row of target `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Every target's name.
pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|t| t.name).collect()
}

/// What holds target `name` (a name the table does not have is a filesystem on a disk of its
/// own: validated names never get here).
pub fn backing(name: &str) -> Backing {
    find(name).map_or(Backing::Disk, |t| t.backing)
}

/// The filesystem of the image target `name` holds (the name itself when the table does not
/// know it).
pub fn image_fs(name: &str) -> &str {
    find(name).and_then(|t| t.image_fs).unwrap_or(name)
}

/// How the host makes one image filesystem: the mkfs program, the Debian package that has it,
/// and the option sets it tries, in order, until one works. In an option, `{sector}` stands for
/// the disk's logical block size and `{block}` for the filesystem's block size
/// ([`DEFAULT_BLOCK`], or a DAX image's page size). A target's own `mkfs_extra` follow each set.
/// The strings are part of each cached image's name: an edit that changes them makes every
/// image of that filesystem anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFs {
    /// The filesystem, as a target's `image_fs` names it.
    pub name: &'static str,
    /// The mkfs program.
    pub mkfs: &'static str,
    /// The Debian/Ubuntu package that has it.
    pub package: &'static str,
    pub attempts: &'static [&'static [&'static str]],
    /// Options that ask for a `{block}` other than [`DEFAULT_BLOCK`], after the target's own
    /// (a DAX image for a kernel of 16 KiB or 64 KiB pages); empty when the sets name `{block}`
    /// themselves.
    pub other_block: &'static [&'static str],
}

/// The filesystem block size of every image but a DAX image for a kernel of larger pages.
pub const DEFAULT_BLOCK: u32 = 4096;

/// Every image filesystem a target's image can hold.
pub const IMAGE_FILESYSTEMS: &[ImageFs] = &[
    ImageFs {
        name: "ext4",
        mkfs: "mkfs.ext4",
        package: "e2fsprogs",
        attempts: &[
            // -F: the image is a file, not a block device (mke2fs(8)); -b: 4 KiB blocks
            // whatever mke2fs.conf would pick for the image's size, and a DAX image's blocks
            // must be the page size (ext4_should_use_dax: "DAX unsupported by block device");
            // -O: keep features the oldest kernel we boot (5.10) cannot mount away from a newer
            // mke2fs's defaults.
            &[
                "-F",
                "-q",
                "-b",
                "{block}",
                "-O",
                "^orphan_file,^metadata_csum_seed",
            ],
            // An older mke2fs does not know those features and refuses the set above.
            &["-F", "-q", "-b", "{block}"],
        ],
        other_block: &[],
    },
    ImageFs {
        name: "xfs",
        mkfs: "mkfs.xfs",
        package: "xfsprogs",
        attempts: &[
            // -s: the sector size is the disk's logical block size, the geometry under test;
            // nrext64=0: no large extent counters (a newer mkfs.xfs's default), which kernels
            // before 5.19 cannot mount.
            &["-f", "-q", "-s", "size={sector}", "-i", "nrext64=0"],
            // An older mkfs.xfs does not know nrext64.
            &["-f", "-q", "-s", "size={sector}"],
        ],
        // xfs does DAX only with blocks of the page size (xfs_setup_dax_always: "DAX
        // unsupported by block size").
        other_block: &["-b", "size={block}"],
    },
    ImageFs {
        name: "btrfs",
        mkfs: "mkfs.btrfs",
        package: "btrfs-progs",
        // 4 KiB sectors, whatever the mkfs.btrfs version's default.
        attempts: &[&["-f", "-q", "-s", "4096"]],
        other_block: &[],
    },
];

/// How the image of target `name` is made (`None`: the target has no image, or its image
/// filesystem has no row).
pub fn image_of(name: &str) -> Option<&'static ImageFs> {
    let fs = find(name)?.image_fs?;
    IMAGE_FILESYSTEMS.iter().find(|i| i.name == fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_but_memory_has_an_image_and_modules() {
        for t in TARGETS {
            assert_eq!(
                t.image_fs.is_none(),
                t.backing == Backing::Memory,
                "{}",
                t.name
            );
            assert_eq!(
                t.modules("x86_64").unwrap().is_empty(),
                t.backing == Backing::Memory,
                "{}",
                t.name
            );
            assert_eq!(
                t.pmem_regions.is_empty(),
                t.backing != Backing::Pmem,
                "{}",
                t.name
            );
        }
        assert_eq!(image_fs("overlay"), "ext4");
        assert_eq!(
            find("overlay").unwrap().modules("arm64").unwrap(),
            ["ext4", "overlay"]
        );
        assert_eq!(find("xfs").unwrap().modules("ppc64le").unwrap(), ["xfs"]);
        let mut names = names();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
    }

    #[test]
    fn every_image_filesystem_has_its_row_of_mkfs_options() {
        for t in TARGETS {
            if let Some(fs) = t.image_fs {
                let i = image_of(t.name).unwrap_or_else(|| panic!("{}: no row for {fs}", t.name));
                assert_eq!(i.name, fs);
                assert!(!i.attempts.is_empty(), "{fs}");
            }
        }
        assert!(image_of("tmpfs").is_none() && image_of("zfs").is_none());
        assert_eq!(image_of("overlay").unwrap().mkfs, "mkfs.ext4");
        // The placeholders are the two the host fills in.
        for i in IMAGE_FILESYSTEMS {
            for o in i
                .attempts
                .iter()
                .flat_map(|s| s.iter())
                .chain(i.other_block)
            {
                let rest = o.replace("{sector}", "").replace("{block}", "");
                assert!(!rest.contains(['{', '}']), "{}: {o}", i.name);
            }
        }
    }

    #[test]
    fn a_dax_target_binds_its_region_with_the_module_of_each_architecture() {
        // x86_64 keeps the order it always had: filesystem, region, block device.
        assert_eq!(
            find("xfs-dax").unwrap().modules("x86_64").unwrap(),
            ["xfs", "nd_e820", "nd_pmem"]
        );
        assert_eq!(
            find("ext4-dax").unwrap().modules("arm64").unwrap(),
            ["ext4", "of_pmem", "nd_pmem"]
        );
        assert_eq!(find("ext4-dax").unwrap().modules("ppc64le"), None);
        assert_eq!(
            find("xfs-dax")
                .unwrap()
                .pmem_region("arm64")
                .unwrap()
                .config,
            "CONFIG_OF_PMEM"
        );
    }
}
