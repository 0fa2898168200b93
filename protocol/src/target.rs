//! The filesystem targets zcmatrix can test, one row each: the `--fs` words, the report's `fs`,
//! what holds the target in the guest, the filesystem of its image and the modules it needs.
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
    /// Emulated persistent memory (a legacy `memmap=` pmem region) holding a filesystem made on
    /// the host, mounted with DAX: one cell, no geometry (pmem has no virtio disk).
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
    /// metadata): the filesystem, and what holds it. `nd_e820` binds the legacy pmem region
    /// `memmap=` declares; `nd_pmem` gives it a DAX-capable block device.
    pub modules: &'static [&'static str],
    /// mkfs options appended to every option set of its image filesystem. Until 6.0 xfs
    /// refused to mount a reflink filesystem with DAX ("DAX and reflink cannot be used
    /// together!"); without reflink every kernel mounts it.
    pub mkfs_extra: &'static [&'static str],
}

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
        mkfs_extra: &[],
    },
    Target {
        name: "overlay",
        backing: Backing::Overlay,
        image_fs: Some("ext4"),
        modules: &["ext4", "overlay"],
        mkfs_extra: &[],
    },
    Target {
        name: "ext4-dax",
        backing: Backing::Pmem,
        image_fs: Some("ext4"),
        modules: &["ext4", "nd_e820", "nd_pmem"],
        mkfs_extra: &[],
    },
    Target {
        name: "xfs-dax",
        backing: Backing::Pmem,
        image_fs: Some("xfs"),
        modules: &["xfs", "nd_e820", "nd_pmem"],
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
        mkfs_extra: &[],
    }
}

impl Target {
    /// The modules the guest loads for it (a disk target's filesystem is its own name).
    pub fn modules(&self) -> Vec<&'static str> {
        match self.backing {
            Backing::Disk => vec![self.name],
            _ => self.modules.to_vec(),
        }
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
                t.modules().is_empty(),
                t.backing == Backing::Memory,
                "{}",
                t.name
            );
        }
        assert_eq!(image_fs("overlay"), "ext4");
        assert_eq!(find("overlay").unwrap().modules(), ["ext4", "overlay"]);
        assert_eq!(find("xfs").unwrap().modules(), ["xfs"]);
        assert_eq!(
            find("xfs-dax").unwrap().modules(),
            ["xfs", "nd_e820", "nd_pmem"]
        );
        let mut names = names();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
    }
}
