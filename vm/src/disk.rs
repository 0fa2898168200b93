//! Blank filesystem images, one per (filesystem, logical block size), made with the host's mkfs
//! and cached by everything that shapes them. Guests attach them with `snapshot=on`, so the
//! cached image stays blank and needs no copy.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};
use zcmatrix_protocol::target;

use crate::cache;

/// Large enough for every mkfs's minimum (xfs wants 300 MiB) and sparse on disk.
pub const IMAGE_BYTES: u64 = 512 << 20;

/// The DAX targets' images: small, because they are guest memory (the guest's struct pages
/// for them cost 1/64 of their size), and as large as mkfs.xfs allows (300 MB at least).
pub const DAX_IMAGE_BYTES: u64 = 320 << 20;

pub use zcmatrix_protocol::target::{backing, image_fs, Backing};

/// Whether the target has a virtio disk (of its own image, or the overlay's ext4 one).
pub fn needs_disk(fs: &str) -> bool {
    matches!(backing(fs), Backing::Disk | Backing::Overlay)
}

/// Kernel modules a guest of `arch` loads for a target (see
/// [`zcmatrix_protocol::target::Target::modules`]); `None` for a DAX target on an architecture
/// with no persistent-memory region.
pub fn target_modules(fs: &str, arch: crate::arch::Arch) -> Option<Vec<&str>> {
    target::find(fs).map_or_else(|| Some(vec![fs]), |t| t.modules(arch.name()))
}

/// The mkfs program and the Debian/Ubuntu package that has it (the image filesystem's row).
pub fn mkfs_tool(fs: &str) -> Option<(&'static str, &'static str)> {
    target::image_of(fs).map(|i| (i.mkfs, i.package))
}

/// The size of a target's blank image.
pub fn image_bytes(fs: &str) -> u64 {
    match backing(fs) {
        Backing::Pmem => DAX_IMAGE_BYTES,
        _ => IMAGE_BYTES,
    }
}

/// Option sets to try in order for an image of target `fs` on a disk of logical block size
/// `lbs`: its image filesystem's rows, each followed by the target's own options (`mkfs_extra`).
pub fn mkfs_attempts(fs: &str, lbs: u32) -> Vec<Vec<String>> {
    option_sets(fs, lbs, target::DEFAULT_BLOCK)
}

/// The option sets of a DAX target's image for a kernel of `page_size`: ext4 and xfs do DAX only
/// with a filesystem block size equal to the page size (ext4_should_use_dax / ext4's "DAX
/// unsupported by block device" check, xfs_setup_dax_always: "DAX unsupported by block size"),
/// so a 16 KiB or 64 KiB kernel gets blocks of its page size; 4 KiB keeps the disks' options.
/// 512: the logical block size of a pmem block device.
pub fn dax_mkfs_attempts(fs: &str, page_size: u32) -> Vec<Vec<String>> {
    option_sets(fs, 512, page_size)
}

/// The rows of `fs`'s image filesystem with `{sector}` and `{block}` filled in: each set, the
/// target's own options, and the image filesystem's way of asking for another block size when
/// `block` is not the default.
fn option_sets(fs: &str, sector: u32, block: u32) -> Vec<Vec<String>> {
    let Some(image) = target::image_of(fs) else {
        return Vec::new();
    };
    let extra = target::find(fs).map_or(&[][..], |t| t.mkfs_extra);
    let other_block = if block == target::DEFAULT_BLOCK {
        &[][..]
    } else {
        image.other_block
    };
    let (sector, block) = (sector.to_string(), block.to_string());
    image
        .attempts
        .iter()
        .map(|set| {
            set.iter()
                .chain(extra)
                .chain(other_block)
                .map(|o| o.replace("{sector}", &sector).replace("{block}", &block))
                .collect()
        })
        .collect()
}

/// A blank image of DAX target `fs` for a kernel of `page_size` (see [`dax_mkfs_attempts`]).
pub fn blank_dax_image(cache: &Path, fs_name: &str, page_size: u32) -> anyhow::Result<PathBuf> {
    // 512: the logical block size of a pmem block device; xfs's sector size follows it.
    make_image(cache, fs_name, 512, dax_mkfs_attempts(fs_name, page_size))
}

/// A blank image of `fs` for a disk of logical block size `lbs`, from the cache when possible.
pub fn blank_image(cache: &Path, fs_name: &str, lbs: u32) -> anyhow::Result<PathBuf> {
    make_image(cache, fs_name, lbs, mkfs_attempts(fs_name, lbs))
}

fn make_image(
    cache: &Path,
    fs_name: &str,
    lbs: u32,
    attempts: Vec<Vec<String>>,
) -> anyhow::Result<PathBuf> {
    let (name, pkg) = mkfs_tool(fs_name).with_context(|| format!("{fs_name} has no disk image"))?;
    let tool = crate::tools::which(name)
        .with_context(|| format!("{name} not found: install the {pkg} package"))?;
    let sh = Shell::new()?;
    let version = cmd!(sh, "{tool} -V").ignore_status().output()?;
    let dir = cache.join("disks");
    fs::create_dir_all(&dir)?;
    let mut errors = Vec::new();
    for opts in attempts {
        let mut h = Sha256::new();
        h.update(fs_name.as_bytes());
        h.update(lbs.to_le_bytes());
        h.update(image_bytes(fs_name).to_le_bytes());
        h.update(opts.join(" ").as_bytes());
        h.update(&version.stdout);
        h.update(&version.stderr);
        let out = dir.join(format!(
            "{fs_name}-{lbs}-{}.img",
            &hex::encode(h.finalize())[..16]
        ));
        let made = cache::file_entry(&out, |tmp| {
            fs::File::options()
                .write(true)
                .open(tmp)?
                .set_len(image_bytes(fs_name))?;
            let args = opts.clone();
            let res = cmd!(sh, "{tool} {args...} {tmp}")
                .quiet()
                .ignore_stdout()
                .ignore_status()
                .output()?;
            if !res.status.success() {
                bail!(
                    "{name} {}: {}",
                    opts.join(" "),
                    String::from_utf8_lossy(&res.stderr).trim()
                );
            }
            Ok(())
        });
        match made {
            Ok(p) => return Ok(p),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!("could not make a {fs_name} image:\n{}", errors.join("\n"))
}

/// Serial of the swap disk every guest gets.
pub const SWAP_SERIAL: &str = "zc-swap";

/// A blank swap area (mkswap), cached like the filesystem images. 256 MiB: room to swap out a
/// 2 MiB THP several times over, small and sparse on the host. Its header records the page size
/// (swapon refuses an area made for another one), so a 16 KiB or 64 KiB kernel gets its own.
pub fn swap_image(cache: &Path, page_size: u32) -> anyhow::Result<PathBuf> {
    let tool = crate::tools::which("mkswap")
        .context("mkswap not found: install the util-linux package")?;
    let dir = cache.join("disks");
    fs::create_dir_all(&dir)?;
    let out = dir.join(swap_name(page_size));
    cache::file_entry(&out, |tmp| {
        fs::File::options()
            .write(true)
            .open(tmp)?
            .set_len(256 << 20)?;
        let sh = Shell::new()?;
        let page = page_size.to_string();
        cmd!(sh, "{tool} -q --pagesize {page} {tmp}")
            .quiet()
            .ignore_stdout()
            .run()?;
        Ok(())
    })
}

/// The 4 KiB area keeps the name it had before other page sizes, so caches stay valid.
fn swap_name(page_size: u32) -> String {
    match page_size {
        4096 => "swap-256m.img".into(),
        p => format!("swap-256m-{}k.img", p / 1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dax_images_have_blocks_of_the_page_size() {
        assert_eq!(
            dax_mkfs_attempts("ext4-dax", 4096),
            mkfs_attempts("ext4-dax", 512)
        );
        assert_eq!(
            dax_mkfs_attempts("xfs-dax", 4096),
            mkfs_attempts("xfs-dax", 512)
        );
        for a in dax_mkfs_attempts("ext4-dax", 65536) {
            assert!(a.windows(2).any(|w| w == ["-b", "65536"]), "{a:?}");
            assert!(!a.iter().any(|o| o == "4096"), "{a:?}");
        }
        for a in dax_mkfs_attempts("xfs-dax", 16384) {
            assert!(a.windows(2).any(|w| w == ["-b", "size=16384"]), "{a:?}");
            assert!(a.windows(2).any(|w| w == ["-m", "reflink=0"]), "{a:?}");
        }
    }

    /// The option strings are part of each cached image's name (the cache key hashes them):
    /// these are the ones the images in existing caches were made with, in their order, so that
    /// a change of how they are written down makes no image anew.
    #[test]
    fn option_sets_are_the_ones_cached_images_were_made_with() {
        let joined = |v: Vec<Vec<String>>| v.iter().map(|o| o.join(" ")).collect::<Vec<_>>();
        let ext4 = |b: u32| {
            [
                format!("-F -q -b {b} -O ^orphan_file,^metadata_csum_seed"),
                format!("-F -q -b {b}"),
            ]
        };
        for lbs in [512, 4096] {
            assert_eq!(joined(mkfs_attempts("ext4", lbs)), ext4(4096));
            assert_eq!(
                joined(mkfs_attempts("xfs", lbs)),
                [
                    format!("-f -q -s size={lbs} -i nrext64=0"),
                    format!("-f -q -s size={lbs}")
                ]
            );
            assert_eq!(joined(mkfs_attempts("btrfs", lbs)), ["-f -q -s 4096"]);
        }
        assert_eq!(joined(dax_mkfs_attempts("ext4-dax", 4096)), ext4(4096));
        assert_eq!(joined(dax_mkfs_attempts("ext4-dax", 16384)), ext4(16384));
        assert_eq!(
            joined(dax_mkfs_attempts("xfs-dax", 4096)),
            [
                "-f -q -s size=512 -i nrext64=0 -m reflink=0",
                "-f -q -s size=512 -m reflink=0"
            ]
        );
        assert_eq!(
            joined(dax_mkfs_attempts("xfs-dax", 65536)),
            [
                "-f -q -s size=512 -i nrext64=0 -m reflink=0 -b size=65536",
                "-f -q -s size=512 -m reflink=0 -b size=65536"
            ]
        );
        assert_eq!(mkfs_tool("ext4"), Some(("mkfs.ext4", "e2fsprogs")));
        assert_eq!(mkfs_tool("overlay"), Some(("mkfs.ext4", "e2fsprogs")));
        assert_eq!(mkfs_tool("xfs-dax"), Some(("mkfs.xfs", "xfsprogs")));
        assert_eq!(mkfs_tool("btrfs"), Some(("mkfs.btrfs", "btrfs-progs")));
        assert_eq!(mkfs_tool("tmpfs"), None);
    }

    #[test]
    fn each_page_size_has_its_own_swap_area() {
        assert_eq!(swap_name(4096), "swap-256m.img");
        assert_eq!(swap_name(65536), "swap-256m-64k.img");
    }

    #[test]
    fn xfs_sector_size_follows_the_disk() {
        let a = mkfs_attempts("xfs", 4096);
        assert!(a
            .iter()
            .all(|o| o.windows(2).any(|w| w == ["-s", "size=4096"])));
    }

    #[test]
    fn every_disk_filesystem_has_a_tool_and_options() {
        for fs in zcmatrix_protocol::target::names()
            .iter()
            .filter(|f| backing(f) != Backing::Memory)
        {
            assert!(mkfs_tool(fs).is_some(), "{fs}");
            assert!(!mkfs_attempts(fs, 512).is_empty(), "{fs}");
        }
        assert!(!needs_disk("tmpfs") && !needs_disk("ext4-dax"));
        assert!(needs_disk("overlay"));
    }

    #[test]
    fn new_targets_hold_ext4_or_xfs_and_name_their_modules() {
        assert_eq!(image_fs("overlay"), "ext4");
        use crate::arch::Arch;
        assert_eq!(
            target_modules("overlay", Arch::Arm64).unwrap(),
            ["ext4", "overlay"]
        );
        assert_eq!(
            target_modules("xfs-dax", Arch::X86_64).unwrap(),
            ["xfs", "nd_e820", "nd_pmem"]
        );
        assert_eq!(
            target_modules("xfs-dax", Arch::Arm64).unwrap(),
            ["xfs", "of_pmem", "nd_pmem"]
        );
        assert_eq!(target_modules("xfs-dax", Arch::Ppc64le), None);
        assert!(target_modules("tmpfs", Arch::X86_64).unwrap().is_empty());
        // xfs on DAX: never reflink, which kernels before 6.0 refuse to mount with DAX.
        assert!(mkfs_attempts("xfs-dax", 512)
            .iter()
            .all(|o| o.windows(2).any(|w| w == ["-m", "reflink=0"])));
        assert_eq!(image_bytes("ext4-dax"), DAX_IMAGE_BYTES);
        assert_eq!(image_bytes("overlay"), IMAGE_BYTES);
    }
}
