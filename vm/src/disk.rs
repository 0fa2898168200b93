//! Blank filesystem images, one per (filesystem, logical block size), made with the host's mkfs
//! and cached by everything that shapes them. Guests attach them with `snapshot=on`, so the
//! cached image stays blank and needs no copy.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

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
    zcmatrix_protocol::target::find(fs).map_or_else(|| Some(vec![fs]), |t| t.modules(arch.name()))
}

/// The mkfs program and the Debian/Ubuntu package that has it.
pub fn mkfs_tool(fs: &str) -> Option<(&'static str, &'static str)> {
    match image_fs(fs) {
        "ext4" => Some(("mkfs.ext4", "e2fsprogs")),
        "xfs" => Some(("mkfs.xfs", "xfsprogs")),
        "btrfs" => Some(("mkfs.btrfs", "btrfs-progs")),
        _ => None,
    }
}

/// The size of a target's blank image.
pub fn image_bytes(fs: &str) -> u64 {
    match backing(fs) {
        Backing::Pmem => DAX_IMAGE_BYTES,
        _ => IMAGE_BYTES,
    }
}

/// Option sets to try in order. The first keeps features the oldest kernel we boot (5.10) can
/// mount away from a newer mkfs's defaults; older mkfs versions do not know those switches, so
/// the plain set follows.
/// A target's own options (its row's `mkfs_extra`) follow its image filesystem's.
pub fn mkfs_attempts(fs: &str, lbs: u32) -> Vec<Vec<String>> {
    let extra = zcmatrix_protocol::target::find(fs).map_or(&[][..], |t| t.mkfs_extra);
    image_mkfs_attempts(image_fs(fs), lbs)
        .into_iter()
        .map(|mut o| {
            o.extend(extra.iter().map(|s| s.to_string()));
            o
        })
        .collect()
}

/// The option sets of an image filesystem (ext4, xfs, btrfs).
fn image_mkfs_attempts(image_fs: &str, lbs: u32) -> Vec<Vec<String>> {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match image_fs {
        "ext4" => vec![
            v(&[
                "-F",
                "-q",
                "-b",
                "4096",
                "-O",
                "^orphan_file,^metadata_csum_seed",
            ]),
            v(&["-F", "-q", "-b", "4096"]),
        ],
        "xfs" => {
            let sector = format!("size={lbs}");
            vec![
                v(&["-f", "-q", "-s", &sector, "-i", "nrext64=0"]),
                v(&["-f", "-q", "-s", &sector]),
            ]
        }
        "btrfs" => vec![v(&["-f", "-q", "-s", "4096"])],
        _ => vec![],
    }
}

/// The option sets of a DAX target's image for a kernel of `page_size`: ext4 and xfs do DAX only
/// with a filesystem block size equal to the page size (ext4_should_use_dax / ext4's "DAX
/// unsupported by block device" check, xfs_setup_dax_always: "DAX unsupported by block size"),
/// so a 16 KiB or 64 KiB kernel gets blocks of its page size; 4 KiB keeps the disks' options.
pub fn dax_mkfs_attempts(fs: &str, page_size: u32) -> Vec<Vec<String>> {
    if page_size == 4096 {
        return mkfs_attempts(fs, 512);
    }
    let block = page_size.to_string();
    mkfs_attempts(fs, 512)
        .into_iter()
        .map(|mut o| {
            match o.iter().position(|a| a == "-b") {
                // ext4: `-b 4096` becomes `-b <page size>`.
                Some(i) => o[i + 1] = block.clone(),
                // xfs: `-b size=<page size>`.
                None => o.extend(["-b".to_string(), format!("size={block}")]),
            }
            o
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
