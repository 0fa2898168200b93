//! Names the filesystem a directory lives on, so native runs pick the same per-filesystem rules a
//! guest does.

use std::path::Path;

use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};

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
    } else {
        format!("unknown-{:x}", t.0)
    })
}
