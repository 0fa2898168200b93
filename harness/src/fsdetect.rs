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
    // ext4 and xfs mounted with DAX are targets of their own (`ext4-dax`, `xfs-dax`): their
    // rules differ (no page cache).
    let dax = || {
        let opts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| super_options_of(&text, dir))
            .unwrap_or_default();
        if has_dax_option(&opts) {
            "-dax"
        } else {
            ""
        }
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
