//! Files: synced writes, positioned reads, memfd, fallocate and the DAX attribute; then
//! copy_file_range, reflink ioctls (FICLONE, FICLONERANGE, FIDEDUPERANGE) and FIEMAP: numbers
//! and structs from `abi`, the target's own definitions.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;

use super::abi::{self, FiemapExtent, FIEMAP_FLAG_SYNC};
use super::Moved;

pub use super::abi::{FIEMAP_EXTENT_SHARED, FILE_DEDUPE_RANGE_DIFFERS};

/// Creates `path` holding `data`, flushed to stable storage so that a direct read sees it on the
/// medium rather than in the page cache only.
pub fn write_file_synced(path: &Path, data: &[u8]) -> std::io::Result<File> {
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(f)
}

/// Reads exactly `len` bytes at `offset` with buffered I/O.
pub fn read_at(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// memfd_create(2).
pub fn memfd(name: &std::ffi::CStr, flags: u32) -> Result<File, Errno> {
    // SAFETY: a NUL-terminated name; the new descriptor is owned by the returned File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// fallocate(2) mode 0: allocates `0..len` of `f`.
pub fn allocate(f: &File, len: usize) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own.
    Errno::result(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as i64) }).map(drop)
}

/// statx(2) STATX_ATTR_DAX (include/uapi/linux/stat.h, 5.8), as the libc crate defines it.
const STATX_ATTR_DAX: u64 = libc::STATX_ATTR_DAX as u64;

/// Whether `f` is in the DAX state, from statx(2)'s STATX_ATTR_DAX; `None` where the kernel
/// cannot tell (its attributes mask lacks the bit: before 5.8).
pub fn dax_attr(f: &std::fs::File) -> std::io::Result<Option<bool>> {
    use std::os::fd::AsRawFd;
    // SAFETY: statx is plain data; zeroed is a valid value for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, and a live statx buffer.
    let r = unsafe {
        libc::statx(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            &mut st,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.stx_attributes_mask & STATX_ATTR_DAX != 0)
        .then_some(st.stx_attributes & STATX_ATTR_DAX != 0))
}

/// How many extents one FIEMAP call may return; our fixtures are a few blocks long.
const FIEMAP_MAX: usize = 64;

/// A struct fiemap followed by the room for its extents, as the kernel reads it.
#[repr(C)]
struct FiemapBuf {
    head: abi::Fiemap,
    extents: [FiemapExtent; FIEMAP_MAX],
}

/// A struct file_dedupe_range with its one destination.
#[repr(C)]
struct DedupeOne {
    head: abi::FileDedupeRange,
    info: abi::FileDedupeRangeInfo,
}

/// copy_file_range(2) with explicit offsets; returns what one call copied.
pub fn copy_range(
    from: &File,
    off_in: Option<i64>,
    to: &File,
    off_out: Option<i64>,
    len: usize,
) -> Result<usize, Errno> {
    use std::os::fd::AsRawFd;
    let (mut a, mut b) = (off_in.unwrap_or(0), off_out.unwrap_or(0));
    let pa = off_in.map_or(std::ptr::null_mut(), |_| &mut a as *mut i64);
    let pb = off_out.map_or(std::ptr::null_mut(), |_| &mut b as *mut i64);
    // SAFETY: two open descriptors; the offset pointers are null or point at live i64s.
    let r = unsafe { libc::copy_file_range(from.as_raw_fd(), pa, to.as_raw_fd(), pb, len, 0) };
    Errno::result(r).map(|n| n as usize)
}

/// copy_file_range(2) until `len` bytes are copied or a call returns 0; the errno with the
/// bytes copied before it otherwise.
pub fn copy_all(from: &File, off_in: i64, to: &File, off_out: i64, len: usize) -> Moved {
    let mut done = 0;
    while done < len {
        match copy_range(
            from,
            Some(off_in + done as i64),
            to,
            Some(off_out + done as i64),
            len - done,
        ) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return Err((done, e)),
        }
    }
    Ok(done)
}

/// FICLONE: `dst` becomes a reflink of the whole of `src`.
pub fn ficlone(dst: &File, src: &File) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: FICLONE takes the source descriptor as its argument, by value.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    Errno::result(r).map(drop)
}

/// FICLONERANGE: `len` bytes of `src` at `src_off` shared into `dst` at `dst_off`.
pub fn ficlonerange(
    dst: &File,
    src: &File,
    src_off: u64,
    len: u64,
    dst_off: u64,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: `arg` is a valid struct file_clone_range the kernel only reads.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) };
    Errno::result(r).map(drop)
}

/// FIDEDUPERANGE of `len` bytes at `off` in `src` against the same range of `dst`: the
/// per-destination status (`Ok(bytes deduped)`, `Err(DIFFERS)` as a positive status, or a
/// negative errno), or the errno of the whole call.
pub fn fidedupe(src: &File, dst: &File, off: u64, len: u64) -> Result<Result<u64, i32>, Errno> {
    use std::os::fd::AsRawFd;
    let mut arg = DedupeOne {
        head: abi::FileDedupeRange {
            src_offset: off,
            src_length: len,
            dest_count: 1,
            reserved1: 0,
            reserved2: 0,
        },
        info: abi::FileDedupeRangeInfo {
            dest_fd: i64::from(dst.as_raw_fd()),
            dest_offset: off,
            bytes_deduped: 0,
            status: 0,
            reserved: 0,
        },
    };
    // SAFETY: `arg` is a struct file_dedupe_range with room for the one info it declares; the
    // kernel writes bytes_deduped and status back into it.
    let r = unsafe { libc::ioctl(src.as_raw_fd(), abi::FIDEDUPERANGE, &mut arg) };
    Errno::result(r)?;
    let info = &arg.info;
    Ok(if info.status == 0 {
        Ok(info.bytes_deduped)
    } else {
        Err(info.status)
    })
}

/// One extent as FIEMAP reports it.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub logical: u64,
    pub length: u64,
    pub flags: u32,
}

/// FS_IOC_FIEMAP over the whole file, with FIEMAP_FLAG_SYNC so delayed allocations are mapped.
pub fn fiemap(f: &File) -> Result<Vec<Extent>, Errno> {
    use std::os::fd::AsRawFd;
    let mut m = Box::new(FiemapBuf {
        head: abi::Fiemap {
            fm_start: 0,
            fm_length: u64::MAX,
            fm_flags: FIEMAP_FLAG_SYNC,
            fm_mapped_extents: 0,
            fm_extent_count: FIEMAP_MAX as u32,
            fm_reserved: 0,
        },
        extents: [FiemapExtent::default(); FIEMAP_MAX],
    });
    // SAFETY: `m` is a struct fiemap followed by room for fm_extent_count extents.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), abi::FS_IOC_FIEMAP, &mut *m) };
    Errno::result(r)?;
    let n = (m.head.fm_mapped_extents as usize).min(FIEMAP_MAX);
    Ok(m.extents[..n]
        .iter()
        .map(|e| Extent {
            logical: e.fe_logical,
            length: e.fe_length,
            flags: e.fe_flags,
        })
        .collect())
}
