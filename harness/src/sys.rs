//! Small helpers the probes share: aligned buffers, test patterns, errno names.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;

pub mod abi;

/// `EINVAL`, `ENOSYS`, ...: the vocabulary of `observed`.
pub fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

/// The errno name of an I/O error, or its text when it carries no errno.
pub fn io_error_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_name(Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// The errno of an I/O error (0 when it carries none).
pub fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// Whether the harness runs as root: in a guest, as PID 1, it always does; a host-native run
/// (the tests) may be a normal user's.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The phrase every skip for want of privilege carries, which the host-native tests accept as
/// explained.
pub const NEEDS_ROOT: &str = "needs root";

/// The skip reason when `what` was refused with `errno` for want of privilege: EPERM or EACCES
/// to a normal user (mount(2) and /proc/sys writes need CAP_SYS_ADMIN, a block device is the
/// disk group's). `None` as root, where the same errno has another cause the caller reports.
pub fn needs_root(what: &str, errno: Errno) -> Option<String> {
    (!is_root() && matches!(errno, Errno::EPERM | Errno::EACCES))
        .then(|| format!("{what} refused ({}): {NEEDS_ROOT}", errno_name(errno)))
}

/// The skip reason when pinning pages for `what` (io_uring registered buffers, MSG_ZEROCOPY,
/// IORING_OP_SEND_ZC) was refused with `errno` by the locked-memory limit: without
/// CAP_IPC_LOCK the kernel charges pinned pages to the user's RLIMIT_MEMLOCK
/// (mm_account_pinned_pages, io_account_mem) and refuses past it with ENOMEM (io_uring) or
/// ENOBUFS (MSG_ZEROCOPY). `None` as root, who is not charged.
pub fn needs_memlock(what: &str, errno: Errno) -> Option<String> {
    if is_root() || !matches!(errno, Errno::ENOMEM | Errno::ENOBUFS) {
        return None;
    }
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
        .map(|(soft, _)| format!("{} KiB", soft / 1024))
        .unwrap_or_else(|_| "unknown".into());
    Some(format!(
        "{what} refused ({}): a normal user's pinned pages count against RLIMIT_MEMLOCK \
         ({limit}): {NEEDS_ROOT} (or a higher `ulimit -l`)",
        errno_name(errno)
    ))
}

/// A zeroed heap buffer with a chosen alignment, for O_DIRECT probes that need to control exactly
/// how (mis)aligned the user address is.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    pub fn new(len: usize, align: usize) -> Self {
        let layout = Layout::from_size_align(len, align).expect("valid layout");
        // SAFETY: layout has non-zero size (callers pass len > 0).
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation of {len} bytes failed");
        AlignedBuf { ptr, layout }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for layout.size() bytes and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in new().
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A pattern in which every 8-byte word differs from its neighbours and depends on `seed`, so a
/// shifted, stale or zeroed read cannot pass for the right one.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i: u64 = 0;
    while out.len() < len {
        let word = (i ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        out.extend_from_slice(&word.to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

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

/// The first byte offset where two buffers differ, for a detail line a human can act on.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then_some(a.len().min(b.len())))
}

/// A connected loopback TCP pair: (the end to send on, the end to read from).
pub fn tcp_pair() -> std::io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let sender = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (receiver, _) = listener.accept()?;
    Ok((sender, receiver))
}

/// Reads `r` to end of file on a thread, so a sender can block on a full buffer meanwhile.
pub fn drain<R: std::io::Read + Send + 'static>(
    mut r: R,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    })
}

/// What a transfer loop returns: bytes moved, or the errno that stopped it after some bytes.
pub type Moved = Result<usize, (usize, nix::errno::Errno)>;

/// A pipe as (read end, write end).
pub fn pipe() -> nix::Result<(File, File)> {
    let (rx, tx) = nix::unistd::pipe()?;
    Ok((File::from(rx), File::from(tx)))
}

/// Raw vmsplice: nix's wrapper only takes immutable slices, and reading a pipe into user memory
/// writes it.
pub fn vmsplice_raw(
    fd: std::os::fd::RawFd,
    iov: &[libc::iovec],
    flags: u32,
) -> Result<usize, Errno> {
    // SAFETY: iov points to `iov.len()` valid iovecs describing memory the caller owns.
    let r = unsafe { libc::vmsplice(fd, iov.as_ptr(), iov.len(), flags) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// Fills a fresh pipe with `fill` (given the write end), closes the write end, and returns what
/// `fill` returned with everything the pipe held. `fill` must not write more than a pipe holds.
pub fn collect_pipe<T>(fill: impl FnOnce(&File) -> T) -> std::io::Result<(T, Vec<u8>)> {
    use std::io::Read;
    let (rx, tx) = nix::unistd::pipe()?;
    let tx = File::from(tx);
    let out = fill(&tx);
    drop(tx);
    let mut got = Vec::new();
    File::from(rx).read_to_end(&mut got)?;
    Ok((out, got))
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

/// Writes back and drops clean page-cache pages, so the next access goes to the disk. Needs
/// root; the error says why when it cannot.
pub fn drop_caches() -> Result<(), String> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
        needs_root("writing /proc/sys/vm/drop_caches", errno_of(&e))
            .unwrap_or_else(|| format!("cannot drop caches ({})", io_error_name(&e)))
    })
}

/// (major, minor) page faults of this process so far.
pub fn faults() -> (i64, i64) {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| (u.major_page_faults(), u.minor_page_faults()))
        .unwrap_or((-1, -1))
}

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

/// One entry of /proc/self/pagemap (Documentation/admin-guide/mm/pagemap.rst), bits named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageInfo {
    /// Bit 63: the page is present in RAM.
    pub present: bool,
    /// Bit 62: the page is swapped out.
    pub swapped: bool,
    /// Bit 61: a file page or a shared anonymous page.
    pub file_or_shared: bool,
    /// Bit 56: the page is exclusively mapped (since 4.2).
    pub exclusive: bool,
    /// Bit 55: the PTE is soft-dirty (cleared by writing 4 to /proc/PID/clear_refs).
    pub soft_dirty: bool,
}

/// The pagemap entry of the page at `addr` in this process.
pub fn pagemap(addr: usize) -> std::io::Result<PageInfo> {
    let f = File::open("/proc/self/pagemap")?;
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, (addr / page_size() * 8) as u64)?;
    let v = u64::from_le_bytes(e);
    let bit = |n: u32| v >> n & 1 == 1;
    Ok(PageInfo {
        present: bit(63),
        swapped: bit(62),
        file_or_shared: bit(61),
        exclusive: bit(56),
        soft_dirty: bit(55),
    })
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

// --- cow helpers ---

/// The raw pagemap entries of every page in `addr..addr + len`, in one read.
pub fn pagemap_entries(addr: usize, len: usize) -> std::io::Result<Vec<u64>> {
    let page = page_size();
    let pages = len.div_ceil(page);
    let mut raw = vec![0u8; pages * 8];
    File::open("/proc/self/pagemap")?.read_exact_at(&mut raw, (addr / page * 8) as u64)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// A raw pagemap entry with its bits named (as [`pagemap`] does).
pub fn page_info(entry: u64) -> PageInfo {
    let bit = |n: u32| entry >> n & 1 == 1;
    PageInfo {
        present: bit(63),
        swapped: bit(62),
        file_or_shared: bit(61),
        exclusive: bit(56),
        soft_dirty: bit(55),
    }
}

/// The page frame number in a pagemap entry of a present page: bits 0-54, which the kernel
/// zeroes for readers without CAP_SYS_ADMIN (since 4.2), so `None` means "not visible here".
pub fn page_frame(entry: u64) -> Option<u64> {
    let pfn = entry & ((1 << 55) - 1);
    (page_info(entry).present && pfn != 0).then_some(pfn)
}

/// `/proc/kpageflags` (Documentation/admin-guide/mm/pagemap.rst) of one page frame; root only.
pub fn kpageflags(pfn: u64) -> std::io::Result<u64> {
    let mut e = [0u8; 8];
    File::open("/proc/kpageflags")?.read_exact_at(&mut e, pfn * 8)?;
    Ok(u64::from_le_bytes(e))
}

/// A `Name:   123 kB` field of the /proc/self/smaps entry of the mapping (VMA) holding `addr`,
/// in KiB; `None` when no mapping holds `addr` or it has no such field.
pub fn smaps_kb(addr: usize, field: &str) -> std::io::Result<Option<u64>> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                return Ok(rest.trim().trim_end_matches("kB").trim().parse().ok());
            }
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_normal_users_refusal_is_a_needs_root_skip() {
        // As root the same errno has another cause: the caller reports it as it is.
        let user = !is_root();
        for e in [Errno::EPERM, Errno::EACCES] {
            let why = needs_root("mounting a tmpfs", e);
            assert_eq!(why.is_some(), user, "{e:?}");
            if let Some(w) = why {
                assert!(w.contains(NEEDS_ROOT) && w.contains(&errno_name(e)), "{w}");
            }
        }
        assert_eq!(needs_root("opening", Errno::ENOENT), None);
        for e in [Errno::ENOMEM, Errno::ENOBUFS] {
            let why = needs_memlock("IORING_OP_SEND_ZC", e);
            assert_eq!(why.is_some(), user, "{e:?}");
            if let Some(w) = why {
                assert!(
                    w.contains("RLIMIT_MEMLOCK") && w.contains(NEEDS_ROOT),
                    "{w}"
                );
            }
        }
        assert_eq!(needs_memlock("send", Errno::EINVAL), None);
    }

    #[test]
    fn pattern_depends_on_seed_and_position() {
        let a = pattern(4096, 1);
        assert_eq!(a.len(), 4096);
        assert_ne!(a, pattern(4096, 2));
        assert_ne!(a[0..8], a[8..16]);
        assert_eq!(pattern(100, 7), pattern(100, 7));
    }

    #[test]
    fn aligned_buffer_is_aligned() {
        let mut b = AlignedBuf::new(8192, 4096);
        assert_eq!(b.as_mut_slice().as_ptr() as usize % 4096, 0);
        assert_eq!(b.as_mut_slice().len(), 8192);
    }

    #[test]
    fn first_difference_finds_offset_and_length_mismatch() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }

    #[test]
    fn errno_names_are_symbolic() {
        assert_eq!(errno_name(Errno::EINVAL), "EINVAL");
        assert_eq!(
            io_error_name(&std::io::Error::from_raw_os_error(libc::ENOENT)),
            "ENOENT"
        );
    }
}

// --- checks helpers ---

/// The read end of a fresh pipe holding `data`, its write end closed. `data` must fit in the
/// pipe (64 KiB by default, pipe(7)), or the write blocks forever.
pub fn filled_pipe(data: &[u8]) -> std::io::Result<File> {
    let (rx, mut tx) = pipe()?;
    tx.write_all(data)?;
    Ok(rx)
}

/// Everything `r` yields until end of file.
pub fn read_all(mut r: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
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

/// A counter of /proc/vmstat (`thp_file_fallback`, ...), `None` where this kernel has none.
pub fn vmstat(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod checks_helpers_tests {
    use super::*;

    #[test]
    fn a_filled_pipe_gives_back_its_bytes() {
        let data = pattern(10_000, 9);
        assert_eq!(read_all(filled_pipe(&data).unwrap()).unwrap(), data);
    }

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

    #[test]
    fn vmstat_reads_counters_and_knows_unknown_names() {
        assert!(vmstat("nr_free_pages").is_some());
        assert_eq!(vmstat("nr_free"), None);
        assert_eq!(vmstat("zcmatrix_no_such_counter"), None);
    }
}

// --- files helpers ---
// copy_file_range, reflink ioctls (FICLONE, FICLONERANGE, FIDEDUPERANGE) and FIEMAP: numbers and
// structs from `abi`, the target's own definitions.

use abi::{FiemapExtent, FIEMAP_FLAG_SYNC};
pub use abi::{FIEMAP_EXTENT_SHARED, FILE_DEDUPE_RANGE_DIFFERS, KPF_COMPOUND_HEAD};

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

// --- uring helpers ---

/// io_uring_setup(2) with a one-entry ring and no flags: the `features` word the kernel
/// returns in `struct io_uring_params` (IORING_FEAT_*), read raw so bits newer than the
/// io-uring crate still show. The ring is closed at once.
pub fn io_uring_features() -> Result<u32, Errno> {
    // struct io_uring_params: sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle,
    // features, ... (include/uapi/linux/io_uring.h; its size and offsets are in `abi`).
    let mut params = [0u32; abi::IO_URING_PARAMS_SIZE / 4];
    // SAFETY: `params` is a zeroed, writable io_uring_params of the size the ABI defines.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    let fd = Errno::result(fd)?;
    // SAFETY: `fd` is the ring descriptor just returned to us and owned by nobody else.
    unsafe { libc::close(fd as i32) };
    Ok(params[abi::IO_URING_PARAMS_FEATURES / 4])
}

/// IORING_FEAT_* bit names in bit order (include/uapi/linux/io_uring.h).
pub const IORING_FEATURES: [&str; 18] = [
    "single_mmap",
    "nodrop",
    "submit_stable",
    "rw_cur_pos",
    "cur_personality",
    "fast_poll",
    "poll_32bits",
    "sqpoll_nonfixed",
    "ext_arg",
    "native_workers",
    "rsrc_tags",
    "cqe_skip",
    "linked_file",
    "reg_reg_ring",
    "recvsend_bundle",
    "min_timeout",
    "rw_attr",
    "no_iowait",
];

/// The names of the set bits of an IORING_FEAT_* word, unknown bits as `bitN`.
pub fn io_uring_feature_names(features: u32) -> Vec<String> {
    (0..32)
        .filter(|b| features & (1 << b) != 0)
        .map(|b| {
            IORING_FEATURES
                .get(b as usize)
                .map_or(format!("bit{b}"), |n| n.to_string())
        })
        .collect()
}

/// An `ifreq` naming interface `name`, for the SIOC* ioctls.
fn ifreq(name: &str) -> std::io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // SAFETY: ifreq is plain data; zeroed is a valid starting value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// A datagram socket to hand interface ioctls to.
fn ioctl_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
}

/// Marks interface `name` up and running.
pub fn if_up(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: a valid socket and an ifreq naming the interface, for these two ioctls. The
    // request's C type is unsigned long with glibc and int with musl (the arm64 harness): `as _`.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets an IPv4 address of interface `name` with `request` (SIOCSIFADDR, SIOCSIFNETMASK).
pub fn set_ipv4(
    name: &str,
    request: libc::c_ulong,
    addr: std::net::Ipv4Addr,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits the ifreq union's sockaddr, which the kernel reads as one.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            (&mut req.ifr_ifru as *mut libc::__c_anonymous_ifr_ifru).cast::<u8>(),
            std::mem::size_of::<libc::sockaddr_in>(),
        );
        if libc::ioctl(sock.as_raw_fd(), request as _, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether interface `name` does scatter-gather (ETHTOOL_GSG): the device feature zero-copy
/// transmit builds on.
pub fn if_scatter_gather(name: &str) -> std::io::Result<bool> {
    use abi::{EthtoolValue, ETHTOOL_GSG};
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GSG,
        data: 0,
    };
    req.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    // SAFETY: ifr_data points at an ethtool_value that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v.data != 0)
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
