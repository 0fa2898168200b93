//! The page cache: dropping it, counting and evicting one file's pages.

use std::fs::File;

use nix::errno::Errno;

use super::{errno_of, io_error_name, needs_root, page_size, Mapping};

/// Writes back and drops clean page-cache pages, so the next access goes to the disk. Needs
/// root; the error says why when it cannot.
pub fn drop_caches() -> Result<(), String> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
        needs_root("writing /proc/sys/vm/drop_caches", errno_of(&e))
            .unwrap_or_else(|| format!("cannot drop caches ({})", io_error_name(&e)))
    })
}

/// How many of the pages under the first `len` bytes of `f` are in the page cache: mincore(2)
/// on a mapping that is never touched, so asking does not fault anything in. The caller must
/// own the file or be able to write it (mincore(2) NOTES, since 5.0), which probes do.
pub fn cached_pages(f: &File, len: usize) -> Result<usize, Errno> {
    use std::os::fd::AsRawFd;
    let m = Mapping::new(len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)?;
    let mut vec = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: `m` is a live mapping of `len` bytes and `vec` has one byte per page of it.
    Errno::result(unsafe { libc::mincore(m.as_ptr().cast(), len, vec.as_mut_ptr()) })?;
    Ok(vec.iter().filter(|&&b| b & 1 == 1).count())
}

/// Drops the clean page-cache pages of `f` (posix_fadvise(2) POSIX_FADV_DONTNEED): unlike
/// [`drop_caches`] it needs no privilege, and it touches no other file. Dirty pages stay, so
/// callers sync first and verify with [`cached_pages`].
pub fn evict(f: &File) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain advice on an open descriptor; it returns the error number, not -1.
    match unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{pattern, read_at, write_file_synced};

    #[test]
    fn evicted_pages_leave_the_cache_and_reads_bring_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let len = 4 * page_size();
        let f = write_file_synced(&dir.path().join("f"), &pattern(len, 1)).unwrap();
        read_at(&f, 0, len).unwrap();
        let before = cached_pages(&f, len).unwrap();
        evict(&f).unwrap();
        let after = cached_pages(&f, len).unwrap();
        // tmpfs (a common /tmp) keeps its pages: only a disk-backed file must drop them.
        assert!(after <= before && before <= 4, "{before} -> {after}");
    }
}
