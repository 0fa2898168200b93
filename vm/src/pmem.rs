//! Emulated persistent memory for the DAX targets (`ext4-dax`, `xfs-dax`).
//!
//! Why this kind: QEMU's `nvdimm` without a label area gives a raw namespace, which cannot do
//! DAX (no struct pages), and `virtio-pmem-pci` gives DAX but an asynchronous region, on which
//! MAP_SYNC is refused by design ("dax: check synchronous mapping is supported", Pankaj Gupta's
//! virtio-pmem series, 5.3: `daxdev_mapping_supported` refuses MAP_SYNC on a DAX device without
//! DAXDEV_F_SYNC). The kernel's own legacy pmem,
//! `memmap=SIZE!OFFSET`, turns a range of the guest's RAM into a synchronous persistent-memory
//! region (`nd_e820`) whose `nd_pmem` block device maps struct pages: DAX with MAP_SYNC.
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

use crate::cache;

const MIB: u64 = 1 << 20;

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
    /// Guest-physical address, also the offset in the RAM file (low memory maps 1:1).
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
        regions.push(Region { start: at, bytes });
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
        h.update(r.start.to_le_bytes());
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
            to.write_all_at(&buf[..n], r.start + at as u64)?;
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
                    start: 256 * MIB,
                    bytes: 320 * MIB
                },
                Region {
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
}
