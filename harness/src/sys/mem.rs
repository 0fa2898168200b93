//! Memory: page and PMD sizes, mappings, madvise/mprotect/mremap on ranges, and forked
//! children for touches that may fault.

use std::fs::File;

use nix::errno::Errno;

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The PMD (transparent huge page) size of this machine, read rather than assumed: 2 MiB on
/// x86_64 with 4 KiB pages, 32 MiB on arm64 with 16 KiB pages, 512 MiB with 64 KiB. `None`
/// when the kernel has no THP.
pub fn pmd_size() -> Option<usize> {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A memory mapping, unmapped on drop. Touching it faults, so code that may fault on it runs in
/// a child ([`in_child`]).
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// mmap(2) with these arguments; `fd` -1 for anonymous memory.
    pub fn new(
        len: usize,
        prot: i32,
        flags: i32,
        fd: std::os::fd::RawFd,
        offset: i64,
    ) -> Result<Mapping, Errno> {
        // SAFETY: a new mapping placed by the kernel; nothing aliases it yet.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// A shared read/write mapping of the start of `f`.
    pub fn shared(f: &File, len: usize) -> Result<Mapping, Errno> {
        use std::os::fd::AsRawFd;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        Self::new(len, rw, libc::MAP_SHARED, f.as_raw_fd(), 0)
    }

    /// A shared read-only mapping of the start of `f` (which may be open read-only).
    pub fn shared_ro(f: &File, len: usize) -> Result<Mapping, Errno> {
        use std::os::fd::AsRawFd;
        Self::new(len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)
    }

    /// A private (copy-on-write) read/write mapping of the start of `f`.
    pub fn private(f: &File, len: usize) -> Result<Mapping, Errno> {
        use std::os::fd::AsRawFd;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        Self::new(len, rw, libc::MAP_PRIVATE, f.as_raw_fd(), 0)
    }

    /// Private anonymous memory with `prot` and extra flags (MAP_HUGETLB, ...).
    pub fn anon(len: usize, prot: i32, extra_flags: i32) -> Result<Mapping, Errno> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags;
        Self::new(len, prot, flags, -1, 0)
    }

    /// Takes ownership of a mapping made elsewhere (MAP_FIXED over a reservation, say).
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a mapping nothing else unmaps.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Mapping {
        Mapping { ptr, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub fn read(&self, i: usize) -> u8 {
        assert!(i < self.len);
        // SAFETY: in bounds of a live mapping; volatile so every touch really faults.
        unsafe { self.ptr.add(i).read_volatile() }
    }

    pub fn write(&self, i: usize, v: u8) {
        assert!(i < self.len);
        // SAFETY: in bounds of a live mapping the caller mapped writable.
        unsafe { self.ptr.add(i).write_volatile(v) }
    }

    /// madvise(2) over the whole mapping.
    pub fn advise(&self, advice: i32) -> Result<(), Errno> {
        // SAFETY: advice on our own live mapping.
        Errno::result(unsafe { libc::madvise(self.ptr.cast(), self.len, advice) }).map(drop)
    }

    /// mprotect(2) over the whole mapping.
    pub fn protect(&self, prot: i32) -> Result<(), Errno> {
        // SAFETY: our own live mapping.
        Errno::result(unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) }).map(drop)
    }

    /// msync(2) over the whole mapping.
    pub fn sync(&self, flags: i32) -> Result<(), Errno> {
        // SAFETY: our own live mapping.
        Errno::result(unsafe { libc::msync(self.ptr.cast(), self.len, flags) }).map(drop)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping this value owns.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// madvise(2) on part of a mapping.
///
/// # Safety
/// `addr..addr + len` must be memory this process mapped and may change (advice such as
/// MADV_DONTNEED discards its contents).
pub unsafe fn madvise_range(addr: *mut u8, len: usize, advice: i32) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the range.
    Errno::result(unsafe { libc::madvise(addr.cast(), len, advice) }).map(drop)
}

/// mprotect(2) on part of a mapping.
///
/// # Safety
/// `addr..addr + len` must be memory this process mapped and nothing touches with an access
/// the new protection forbids.
pub unsafe fn mprotect_range(addr: *mut u8, len: usize, prot: i32) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the range.
    Errno::result(unsafe { libc::mprotect(addr.cast(), len, prot) }).map(drop)
}

/// Takes `addr..addr + len` out of this process's page tables the way munmap(2) does, but leaves
/// an inaccessible reservation in its place, so no later allocation lands there before the
/// mapping that owns the range unmaps it.
///
/// # Safety
/// Nothing may touch the range afterwards.
pub unsafe fn unmap_keep_reserved(addr: *mut u8, len: usize) -> Result<(), Errno> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE;
    // SAFETY: MAP_FIXED over a range the caller owns and no longer uses.
    let p = unsafe { libc::mmap(addr.cast(), len, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// mremap(2) of `old..old + len` onto `new` (MREMAP_MAYMOVE | MREMAP_FIXED).
///
/// # Safety
/// Both ranges must be mappings this process owns; `new`'s old contents are discarded and
/// `old..old + len` is unmapped.
pub unsafe fn mremap_fixed(old: *mut u8, len: usize, new: *mut u8) -> Result<(), Errno> {
    let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
    // SAFETY: the caller vouches for both ranges.
    let p = unsafe { libc::mremap(old.cast(), len, len, flags, new) };
    if p == libc::MAP_FAILED {
        Err(Errno::last())
    } else if p.cast::<u8>() != new {
        Err(Errno::EFAULT)
    } else {
        Ok(())
    }
}

/// How a child that touched memory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(nix::sys::signal::Signal),
}

/// Runs `f` in a forked child and reports how it ended, so an expected SIGBUS or SIGSEGV is an
/// observation rather than the death of the probe. The child's exit code is `f`'s value.
pub fn in_child(f: impl FnOnce() -> i32) -> anyhow::Result<ChildEnd> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    // SAFETY: probes fork only while single-threaded; the child runs `f` and _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = f();
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, code) => Ok(ChildEnd::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => Ok(ChildEnd::Signaled(sig)),
            other => anyhow::bail!("unexpected child status {other:?}"),
        },
    }
}
