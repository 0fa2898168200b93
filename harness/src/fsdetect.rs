//! Names the filesystem a directory lives on, so native runs pick the same per-filesystem rules a
//! guest does.

use std::path::Path;

use nix::sys::statfs::{
    statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC,
    XFS_SUPER_MAGIC,
};

pub fn fs_name(dir: &Path) -> anyhow::Result<String> {
    let st = statfs(dir)?;
    let t = st.filesystem_type();
    Ok(if t == EXT4_SUPER_MAGIC {
        "ext4".into()
    } else if t == XFS_SUPER_MAGIC {
        "xfs".into()
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
