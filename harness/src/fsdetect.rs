//! Names the filesystem a directory lives on, so native runs pick the same per-filesystem rules a
//! guest does.

use std::path::Path;

#[cfg(not(target_env = "musl"))]
use nix::sys::statfs::XFS_SUPER_MAGIC;
use nix::sys::statfs::{
    statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC,
};

/// nix leaves XFS's magic out on musl (the arm64 guest harness): `abi`'s, from linux/magic.h.
#[cfg(target_env = "musl")]
const XFS_SUPER_MAGIC: nix::sys::statfs::FsType =
    nix::sys::statfs::FsType(crate::sys::abi::XFS_SUPER_MAGIC as _);

pub fn fs_name(dir: &Path) -> anyhow::Result<String> {
    let st = statfs(dir)?;
    let t = st.filesystem_type();
    // ext4 and xfs files in the DAX state are targets of their own (`ext4-dax`, `xfs-dax`):
    // their rules differ (no page cache); `-dax-async` where the region is not synchronous.
    let dax = || {
        let opts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| super_options_of(&text, dir))
            .unwrap_or_default();
        let (attr, map_sync) = probe_dax(dir);
        dax_suffix(attr, has_dax_option(&opts), map_sync)
    };
    Ok(if t == EXT4_SUPER_MAGIC {
        format!("ext4{}", dax())
    } else if t == XFS_SUPER_MAGIC {
        format!("xfs{}", dax())
    } else if t == BTRFS_SUPER_MAGIC {
        "btrfs".into()
    } else if t == TMPFS_MAGIC {
        "tmpfs".into()
    } else if t == OVERLAYFS_SUPER_MAGIC {
        "overlay".into()
    } else {
        format!("unknown-{:x}", t.0)
    })
}

/// The superblock options (mountinfo's last field) of the mount `dir` lives on: the mount
/// point that is the longest prefix of its canonical path.
fn super_options_of(mountinfo: &str, dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let point = Path::new(f.get(4)?);
            let opts = f.get(sep + 3)?;
            dir.starts_with(point)
                .then(|| (point.as_os_str().len(), opts.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, opts)| opts)
        .unwrap_or_default()
}

/// A new file's DAX state in `dir` (statx STATX_ATTR_DAX; `None` where the kernel cannot tell)
/// and, for a DAX file, whether MAP_SYNC is granted (`Some(false)`: EOPNOTSUPP, an asynchronous
/// region such as virtio-pmem; `None`: it could not be asked).
fn probe_dax(dir: &Path) -> (Option<bool>, Option<bool>) {
    use std::os::fd::AsRawFd;
    let path = dir.join(".zcmatrix-dax-probe");
    let probe = || -> std::io::Result<(Option<bool>, Option<bool>)> {
        let page = crate::sys::page_size();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        f.set_len(page as u64)?;
        let attr = crate::sys::dax_attr(&f)?;
        if attr != Some(true) {
            return Ok((attr, None));
        }
        let flags = libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let sync = match crate::sys::Mapping::new(page, prot, flags, f.as_raw_fd(), 0) {
            Ok(_) => Some(true),
            Err(nix::errno::Errno::EOPNOTSUPP) => Some(false),
            Err(_) => None,
        };
        Ok((attr, sync))
    };
    let seen = probe().unwrap_or((None, None));
    let _ = std::fs::remove_file(&path);
    seen
}

/// The target suffix of an ext4 or xfs directory: `-dax` for a file in the DAX state on a
/// synchronous region (MAP_SYNC granted, legacy pmem), `-dax-async` where MAP_SYNC is refused
/// (virtio-pmem: DAX on, but stores reach persistence only with fsync), nothing for the page
/// cache. The file's attribute decides; the mount option only where the kernel cannot tell
/// (before 5.8).
fn dax_suffix(attr: Option<bool>, mount_says_dax: bool, map_sync: Option<bool>) -> &'static str {
    match (attr.unwrap_or(mount_says_dax), map_sync) {
        (false, _) => "",
        (true, Some(false)) => "-dax-async",
        (true, _) => "-dax",
    }
}

/// `dax` (older kernels) or `dax=always` among the options; `dax=never` and `dax=inode` are
/// not a DAX target (with `dax=inode` only files flagged so are DAX).
fn has_dax_option(opts: &str) -> bool {
    opts.split(',').any(|o| o == "dax" || o == "dax=always")
}

/// The block device a directory lives on and its logical block size, from sysfs; `None` for
/// filesystems without one (tmpfs, overlay, network).
pub fn block_device_of(dir: &Path) -> Option<(Option<std::path::PathBuf>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return None;
    }
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    // A partition has no queue/ of its own: its parent disk's applies.
    let lbs = [
        sys.join("queue/logical_block_size"),
        sys.join("../queue/logical_block_size"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())?
    .trim()
    .parse()
    .ok()?;
    let node = std::path::Path::new("/dev").join(sys.file_name()?);
    Some((node.exists().then_some(node), lbs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DAX is the file's state, not the mount's word for it, and a DAX region that refuses
    /// MAP_SYNC (virtio-pmem) is a target of its own.
    #[test]
    fn dax_is_the_files_attribute_and_the_regions_synchronicity() {
        assert_eq!(dax_suffix(Some(true), true, Some(true)), "-dax");
        assert_eq!(dax_suffix(Some(true), true, Some(false)), "-dax-async");
        // dax=inode with the file flagged, or a mount option the kernel fell back from.
        assert_eq!(dax_suffix(Some(true), false, Some(true)), "-dax");
        assert_eq!(dax_suffix(Some(false), true, None), "");
        // Before 5.8 statx cannot tell: the mount option.
        assert_eq!(dax_suffix(None, true, Some(true)), "-dax");
        assert_eq!(dax_suffix(None, false, None), "");
        // This host's build directory and /dev/shm hold page-cache files.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert_eq!(probe_dax(dir.path()).1, None);
        assert!(!dir.path().join(".zcmatrix-dax-probe").exists());
    }

    #[test]
    fn dax_is_read_from_the_mount_under_the_directory() {
        let info = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
                    40 22 259:3 / /mnt/pm rw shared:2 - ext4 /dev/pmem0 rw,relatime,dax=always\n";
        assert!(has_dax_option(&super_options_of(
            info,
            Path::new("/mnt/pm/sub")
        )));
        assert!(!has_dax_option(&super_options_of(info, Path::new("/srv"))));
        assert!(has_dax_option("rw,dax"));
        assert!(!has_dax_option("rw,dax=never") && !has_dax_option("rw,dax=inode"));
    }
}
