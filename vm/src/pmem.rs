//! Emulated persistent memory for the DAX targets (`ext4-dax`, `xfs-dax`).
//!
//! Why this kind: QEMU's `nvdimm` without a label area gives a raw namespace, which cannot do
//! DAX (no struct pages), and `virtio-pmem-pci` gives DAX but an asynchronous region, on which
//! MAP_SYNC is refused by design ("dax: check synchronous mapping is supported", Pankaj Gupta's
//! virtio-pmem series, 5.3: `daxdev_mapping_supported` refuses MAP_SYNC on a DAX device without
//! DAXDEV_F_SYNC). What the targets use is a range of the guest's RAM that the kernel is told
//! is persistent memory, registered as a pmem region whose `nd_pmem` block device maps struct
//! pages (ND_REGION_PAGEMAP) and is synchronous: DAX with MAP_SYNC. How the kernel is told
//! depends on the architecture ([`Declared`]; the module that binds the region is the target
//! table's, `zcmatrix_protocol::target::PMEM_REGIONS`).
//!
//! Its content comes from the host: the guest's RAM is a file (QEMU's
//! `memory-backend-file`, private, so the cached file is never written) in which each region's
//! range already holds a blank filesystem image made with mkfs like the disks. Nothing is
//! copied at boot, and the holes of the file cost nothing.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::arch::Arch;
use crate::cache;

const MIB: u64 = 1 << 20;

/// How an architecture's kernel learns where the regions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// x86_64: `memmap=SIZE!OFFSET` on the command line marks a range of RAM as persistent
    /// memory (e820 type 12), which `nd_e820` registers as a legacy pmem region. The regions
    /// sit in low RAM, between ranges the kernel keeps ([`layout`]).
    Memmap,
    /// arm64, which has no `memmap=`: one device-tree node `compatible = "pmem-region"` per
    /// region (see [`crate::dtb`]), which `of_pmem` registers. The regions sit above the RAM
    /// the kernel keeps, which `mem=` bounds ([`layout_above`]).
    DeviceTree,
}

/// How `arch` declares the regions; `None` where zcmatrix has no way (ppc64le: see
/// `zcmatrix_protocol::target::PMEM_REGIONS`).
pub fn declared(arch: Arch) -> Option<Declared> {
    match arch {
        Arch::X86_64 => Some(Declared::Memmap),
        Arch::Arm64 => Some(Declared::DeviceTree),
        Arch::Ppc64le => None,
    }
}

/// Where QEMU `virt`'s RAM starts in guest-physical memory (hw/arm/virt.c's memory map:
/// `[VIRT_MEM] = { GiB, ... }`): byte 0 of the RAM file is there. [`crate::dtb`] checks it
/// against the machine's own `/memory` node.
pub const ARM_VIRT_RAM_BASE: u64 = 0x4000_0000;

/// Where the first region starts in guest-physical memory: above the kernel (loaded at 16 MiB
/// and decompressed above it) and below everything QEMU puts at the top of RAM (the initrd, the
/// ACPI tables).
pub const BASE: u64 = 256 * MIB;

/// RAM left between two regions, so the kernel sees two e820 entries (adjacent ones of one type
/// are merged into one) and so two devices. A multiple of the 128 MiB memory section.
pub const GAP: u64 = 128 * MIB;

/// RAM kept above the last region for what QEMU loads at the top of low memory.
pub const TOP_RESERVE: u64 = 64 * MIB;

/// Where one region sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Where it starts in the RAM file.
    pub offset: u64,
    /// Its guest-physical address: the offset on x86_64 (q35's low memory maps 1:1), the
    /// offset above [`ARM_VIRT_RAM_BASE`] on arm64.
    pub start: u64,
    pub bytes: u64,
}

/// The regions for images of these sizes and the size of the whole RAM file, for a guest that
/// keeps `memory_mb` of ordinary RAM. `None` when that RAM cannot hold what sits below and
/// above the regions.
pub fn layout(memory_mb: u32, sizes: &[u64]) -> Option<(Vec<Region>, u64)> {
    let ram = u64::from(memory_mb) * MIB;
    let mut regions = Vec::new();
    let mut at = BASE;
    for &bytes in sizes {
        regions.push(Region {
            offset: at,
            start: at,
            bytes,
        });
        at += bytes + GAP;
    }
    let below = BASE + GAP * (sizes.len().saturating_sub(1) as u64);
    if ram < below + TOP_RESERVE {
        return None;
    }
    let total = ram + sizes.iter().sum::<u64>();
    // q35 maps RAM 1:1 below 2 GiB whatever the size; the regions must stay there.
    if at - GAP > 2048 * MIB {
        return None;
    }
    Some((regions, total))
}

/// The arm64 layout: the RAM the kernel keeps (`memory_mb`, all of it usable) first, then the
/// regions, the first on a memory-section boundary and each [`GAP`] after the last, so no
/// memory section holds RAM and a region or two regions (`devm_memremap_pages` maps each
/// region's struct pages by (sub)section; the 4 KiB and 16 KiB kernels' sections are 128 MiB,
/// arch/arm64/include/asm/sparsemem.h). `mem=` keeps the kernel below them ([`mem_args`]);
/// QEMU puts the kernel, initrd and device tree in the first 128 MiB and a bit
/// (hw/arm/boot.c: the initrd at 128 MiB), inside that RAM. Returns the regions and the size
/// of the whole RAM file.
pub fn layout_above(memory_mb: u32, sizes: &[u64]) -> (Vec<Region>, u64) {
    let mut at = (u64::from(memory_mb) * MIB).next_multiple_of(GAP);
    let mut regions = Vec::new();
    for &bytes in sizes {
        regions.push(Region {
            offset: at,
            start: ARM_VIRT_RAM_BASE + at,
            bytes,
        });
        at += bytes + GAP;
    }
    let total = regions.last().map_or(at, |r| r.offset + r.bytes);
    (regions, total)
}

/// The arm64 command-line word that keeps the kernel's memory below the regions: arm64 honours
/// `mem=` by removing all memory above the first `memory_mb` from memblock
/// (arch/arm64/mm/init.c, arm64_memblock_init: memblock_mem_limit_remove_map), so the regions
/// are no "System RAM" and `devm_memremap_pages` accepts them, while QEMU's `/memory` node
/// (which it rewrites to the whole `-m`) still covers them.
pub fn mem_args(memory_mb: u32) -> Vec<String> {
    vec![format!("mem={memory_mb}M")]
}

/// What the DAX targets of a guest of `arch` with `memory_mb` of RAM and images of `sizes`
/// add to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub regions: Vec<Region>,
    /// The size of the whole RAM file, QEMU's `-m`.
    pub total: u64,
    /// Kernel command-line words.
    pub cmdline: Vec<String>,
    /// Whether the device tree must declare the regions ([`Declared::DeviceTree`]).
    pub in_device_tree: bool,
}

/// Places the regions as `arch` declares them; `None` when the architecture has no way, or the
/// RAM cannot hold what sits below and above them (x86_64).
pub fn place(arch: Arch, memory_mb: u32, sizes: &[u64]) -> Option<Placement> {
    match declared(arch)? {
        Declared::Memmap => {
            let (regions, total) = layout(memory_mb, sizes)?;
            Some(Placement {
                cmdline: memmap_args(&regions),
                regions,
                total,
                in_device_tree: false,
            })
        }
        Declared::DeviceTree => {
            let (regions, total) = layout_above(memory_mb, sizes);
            Some(Placement {
                regions,
                total,
                cmdline: mem_args(memory_mb),
                in_device_tree: true,
            })
        }
    }
}

/// Why a kernel of `arch` cannot hold target `fs` when it is a DAX target, from what is true
/// before any module is looked up: the kernel's own build configuration (`config`, where its
/// package ships one) and whether zcmatrix can declare a region on `arch` at all. `None`
/// when nothing there rules it out (its modules are checked next) or `fs` is no DAX target.
pub fn unavailable(fs: &str, arch: Arch, config: Option<&str>) -> Option<String> {
    let target = zcmatrix_protocol::target::find(fs)?;
    if target.backing != zcmatrix_protocol::target::Backing::Pmem {
        return None;
    }
    let without = |option: &str, what: &str| {
        config
            .and_then(|c| not_built(c, option))
            .map(|how| format!("this kernel is built without {option} ({how}): {what}"))
    };
    // Every pmem driver and nd_pmem are libnvdimm's (drivers/nvdimm/Kconfig).
    if let Some(why) = without(
        "CONFIG_LIBNVDIMM",
        "no persistent-memory driver at all, so no DAX target",
    ) {
        return Some(why);
    }
    if let Some(why) = without(
        "CONFIG_FS_DAX",
        "no filesystem maps persistent memory directly, so no DAX target",
    ) {
        return Some(why);
    }
    let Some(region) = target.pmem_region(arch.name()) else {
        return Some(format!(
            "zcmatrix declares persistent memory on {} only, and on {} has no region to give \
             this kernel (ppc64le's pmem driver, papr_scm, binds the hypervisor's storage-class \
             memory devices, which zcmatrix's guests do not have), so no DAX target",
            zcmatrix_protocol::target::PMEM_REGIONS
                .iter()
                .map(|r| r.arch)
                .collect::<Vec<_>>()
                .join(" and "),
            arch.name()
        ));
    };
    without(
        region.config,
        &format!(
            "no {} to register the persistent-memory region zcmatrix declares on {}, so no \
             DAX target",
            region.module,
            arch.name()
        ),
    )
}

/// How a kernel config says `option` is not built: its `# ... is not set` line, or its absence
/// (Kconfig leaves out an option whose dependencies are off); `None` when it is built (`=y`,
/// `=m`).
fn not_built(config: &str, option: &str) -> Option<String> {
    let unset = format!("# {option} is not set");
    let set = format!("{option}=");
    for l in config.lines() {
        if l == unset {
            return Some(format!("its config says `{unset}`"));
        }
        if let Some(v) = l.strip_prefix(&set) {
            if v == "y" || v == "m" {
                return None;
            }
        }
    }
    Some(format!("its config has no {option}"))
}

/// The smallest `--memory` a guest with `n` regions accepts.
pub fn min_memory_mb(n: usize) -> u32 {
    ((BASE + GAP * (n.saturating_sub(1) as u64) + TOP_RESERVE) / MIB) as u32
}

/// The kernel command-line words that declare the regions: `memmap=nn!ss` marks a range as
/// persistent memory (e820 type 12), which `nd_e820` registers as a legacy pmem region.
pub fn memmap_args(regions: &[Region]) -> Vec<String> {
    regions
        .iter()
        .map(|r| format!("memmap={}M!{}M", r.bytes / MIB, r.start / MIB))
        .collect()
}

/// The guest's RAM file: `total` bytes, sparse, each image's data at its region's start;
/// cached by the images' names (which carry the hash of everything that made them) and the
/// layout, verified by its manifest like every image.
pub fn ram_file(
    cache_dir: &Path,
    images: &[PathBuf],
    regions: &[Region],
    total: u64,
) -> anyhow::Result<PathBuf> {
    let dir = cache_dir.join("disks");
    fs::create_dir_all(&dir)?;
    let mut h = Sha256::new();
    h.update(total.to_le_bytes());
    for (img, r) in images.iter().zip(regions) {
        h.update(img.file_name().unwrap_or_default().as_encoded_bytes());
        h.update(r.offset.to_le_bytes());
        h.update(r.bytes.to_le_bytes());
    }
    let out = dir.join(format!("pmem-ram-{}.img", &hex::encode(h.finalize())[..16]));
    cache::file_entry(&out, |tmp| {
        let f = File::options().write(true).open(tmp)?;
        f.set_len(total)?;
        for (img, r) in images.iter().zip(regions) {
            copy_data(img, &f, r)
                .with_context(|| format!("placing {} in the RAM file", img.display()))?;
        }
        Ok(())
    })
}

/// Copies the data extents of `img` (SEEK_DATA/SEEK_HOLE) into `to` at the region's start, so
/// its holes stay holes.
fn copy_data(img: &Path, to: &File, r: &Region) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let from = File::open(img)?;
    let len = from.metadata()?.len();
    anyhow::ensure!(
        len <= r.bytes,
        "image of {len} bytes, region of {}",
        r.bytes
    );
    let fd = from.as_raw_fd();
    let mut pos: i64 = 0;
    let mut buf = vec![0u8; MIB as usize];
    while (pos as u64) < len {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data past pos
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole };
        let mut at = data;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            from.read_exact_at(&mut buf[..n], at as u64)?;
            to.write_all_at(&buf[..n], r.offset + at as u64)?;
            at += n as i64;
        }
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_sit_apart_above_the_base_and_ram_is_kept() {
        let (r, total) = layout(512, &[320 * MIB, 320 * MIB]).unwrap();
        assert_eq!(
            r,
            [
                Region {
                    offset: 256 * MIB,
                    start: 256 * MIB,
                    bytes: 320 * MIB
                },
                Region {
                    offset: 704 * MIB,
                    start: 704 * MIB,
                    bytes: 320 * MIB
                }
            ]
        );
        assert_eq!(total, (512 + 640) * MIB);
        assert_eq!(memmap_args(&r), ["memmap=320M!256M", "memmap=320M!704M"]);
    }

    #[test]
    fn too_little_ram_is_refused() {
        assert_eq!(min_memory_mb(2), 448);
        assert!(layout(447, &[320 * MIB, 320 * MIB]).is_none());
        assert!(layout(448, &[320 * MIB, 320 * MIB]).is_some());
        assert!(layout(320, &[320 * MIB]).is_some());
    }

    #[test]
    fn the_ram_file_holds_each_image_at_its_region_and_stays_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.img");
        let f = File::create(&img).unwrap();
        f.set_len(4 * MIB).unwrap();
        f.write_all_at(b"superblock", 1024).unwrap();
        f.write_all_at(b"tail", 3 * MIB).unwrap();
        drop(f);
        let regions = [Region {
            offset: 8 * MIB,
            start: 8 * MIB,
            bytes: 4 * MIB,
        }];
        let out = ram_file(dir.path(), &[img], &regions, 16 * MIB).unwrap();
        let ram = fs::read(&out).unwrap();
        assert_eq!(ram.len() as u64, 16 * MIB);
        let at = (8 * MIB) as usize;
        assert_eq!(&ram[at + 1024..at + 1034], b"superblock");
        assert_eq!(
            &ram[at + 3 * MIB as usize..at + 3 * MIB as usize + 4],
            b"tail"
        );
        assert!(ram[..at].iter().all(|&b| b == 0));
        use std::os::unix::fs::MetadataExt;
        assert!(fs::metadata(&out).unwrap().blocks() * 512 < 4 * MIB);
    }

    #[test]
    fn arm64_regions_sit_above_all_of_its_ram_at_the_virt_ram_base() {
        let p = place(Arch::Arm64, 512, &[320 * MIB, 320 * MIB]).unwrap();
        assert_eq!(
            p.regions,
            [
                Region {
                    offset: 512 * MIB,
                    start: 0x4000_0000 + 512 * MIB,
                    bytes: 320 * MIB
                },
                Region {
                    offset: 960 * MIB,
                    start: 0x4000_0000 + 960 * MIB,
                    bytes: 320 * MIB
                }
            ]
        );
        assert_eq!(p.total, 1280 * MIB);
        assert_eq!(p.cmdline, ["mem=512M"]);
        assert!(p.in_device_tree);
        // RAM that ends inside a memory section: the first region starts at the next one.
        let (r, _) = layout_above(500, &[320 * MIB]);
        assert_eq!(r[0].offset, 512 * MIB);
    }

    #[test]
    fn x86_64_keeps_memmap_and_ppc64le_has_no_way() {
        let p = place(Arch::X86_64, 512, &[320 * MIB, 320 * MIB]).unwrap();
        assert_eq!(p.cmdline, ["memmap=320M!256M", "memmap=320M!704M"]);
        assert_eq!(p.total, (512 + 640) * MIB);
        assert!(!p.in_device_tree);
        assert_eq!(place(Arch::Ppc64le, 512, &[320 * MIB]), None);
    }

    #[test]
    fn the_way_to_declare_a_region_and_the_target_tables_module_go_together() {
        let dax = zcmatrix_protocol::target::find("ext4-dax").unwrap();
        for arch in Arch::ALL {
            assert_eq!(
                declared(arch).is_some(),
                dax.pmem_region(arch.name()).is_some(),
                "{arch:?}"
            );
        }
    }

    #[test]
    fn a_kernel_without_a_pmem_driver_is_told_apart_from_one_without_the_region_module() {
        let ppc = "CONFIG_ZONE_DEVICE=y\n# CONFIG_LIBNVDIMM is not set\nCONFIG_FS_DAX=y\n";
        let why = unavailable("ext4-dax", Arch::Ppc64le, Some(ppc)).unwrap();
        assert_eq!(
            why,
            "this kernel is built without CONFIG_LIBNVDIMM (its config says `# CONFIG_LIBNVDIMM \
             is not set`): no persistent-memory driver at all, so no DAX target"
        );
        let arm = "CONFIG_LIBNVDIMM=m\nCONFIG_OF_PMEM=m\nCONFIG_FS_DAX=y\n";
        assert_eq!(unavailable("xfs-dax", Arch::Arm64, Some(arm)), None);
        // A ppc64le kernel with libnvdimm still has no region zcmatrix can declare.
        let why = unavailable("xfs-dax", Arch::Ppc64le, Some(arm)).unwrap();
        assert!(
            why.contains("x86_64 and arm64 only") && why.contains("papr_scm"),
            "{why}"
        );
        let no_of_pmem = "CONFIG_LIBNVDIMM=m\nCONFIG_FS_DAX=y\n";
        let why = unavailable("xfs-dax", Arch::Arm64, Some(no_of_pmem)).unwrap();
        assert!(
            why.starts_with("this kernel is built without CONFIG_OF_PMEM (its config has no"),
            "{why}"
        );
        let no_fs_dax =
            "CONFIG_LIBNVDIMM=m\nCONFIG_X86_PMEM_LEGACY=m\n# CONFIG_FS_DAX is not set\n";
        assert!(unavailable("ext4-dax", Arch::X86_64, Some(no_fs_dax))
            .unwrap()
            .contains("CONFIG_FS_DAX"));
        // No config (a local image): the modules decide. Not a DAX target: nothing to say.
        assert_eq!(unavailable("ext4-dax", Arch::X86_64, None), None);
        assert_eq!(unavailable("ext4", Arch::Ppc64le, Some(ppc)), None);
    }
}
