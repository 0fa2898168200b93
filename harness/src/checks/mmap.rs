//! File mappings: page faults and what they cost, end-of-file and truncate rules (SIGBUS),
//! MAP_PRIVATE isolation, coherence with read()/write(), durability after msync.
//!
//! Fault counts are measurements to compare across kernels and filesystems; where a documented
//! rule bounds them (MAP_POPULATE leaves nothing to fault, a cold scan must go to disk) the rule
//! is the expectation. Touching code that may fault runs in a forked child.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::{
    broken, common, skip, Check, Ctx, Expect, Observation, OrSkip, Pred, Rule, Stop, FAULT_NOISE,
};
use crate::sys::{self, ChildEnd, Mapping};

/// 4 MiB (1024 pages of 4 KiB): many readahead windows (128 KiB by default) and fault-around
/// windows (64 KiB) long, so both show, yet cheap in a TCG guest that scans it on seven
/// filesystems four times (16 MiB took 13 s a guest, 4 MiB about 3 s).
const SCAN_BYTES: usize = 4 << 20;

const EVIDENCE_SIGBUS: &str = "mmap(2) ERRORS/NOTES: SIGBUS on access to a page of the mapping \
    that lies beyond the end of the mapped file (including after the file is truncated)";

/// `major=N minor=M` with the major count judged, the minor count a measurement riding along.
const NO_MAJOR: Expect = Expect::Always(Pred::Fields(&[("major", Pred::Is("0"))]));
const SOME_MAJOR: Expect = Expect::Always(Pred::Fields(&[("major", Pred::AtLeast(1))]));

pub const CHECKS: &[Check] = &[
    Check::fs(
        "mmap.beyond_eof",
        "a two-page MAP_SHARED mapping of a one-page file: touch the second page",
        Rule::new(Expect::is("SIGBUS"), EVIDENCE_SIGBUS),
        beyond_eof,
    ),
    Check::fs(
        "mmap.eof_tail",
        "a 100-byte file: bytes 100..4095 of the mapping read zero, and a write there never \
         reaches the file",
        Rule::new(
            Expect::is("zero, not persisted"),
            "mmap(2) NOTES: the remaining bytes of a partial last page are zeroed when mapped, \
             and modifications to that region are not written out to the file",
        ),
        eof_tail,
    ),
    Check::fs(
        "mmap.truncate",
        "map a one-page file, truncate it to 0, touch the mapping",
        Rule::new(Expect::is("SIGBUS"), EVIDENCE_SIGBUS),
        truncate,
    ),
    Check::fs(
        "mmap.private_write",
        "a write through a MAP_PRIVATE file mapping never reaches the file",
        Rule::new(
            Expect::is("isolated"),
            "mmap(2) MAP_PRIVATE: updates to the mapping are not carried through to the \
             underlying file",
        ),
        private_write,
    ),
    Check::fs(
        "mmap.private_before_cow",
        "write() to the file after a MAP_PRIVATE mapping read it but before any write through it",
        Rule::new(
            Expect::is("visible"),
            "mmap(2) MAP_PRIVATE: whether later file changes show is unspecified; Linux maps the \
             page-cache page read-only until the first write fault copies it, so they show \
             until then",
        ),
        private_before_cow,
    ),
    Check::fs(
        "mmap.shared_read_coherent",
        "a store through MAP_SHARED is seen by read() at once, without msync",
        Rule::new(
            Expect::is("coherent"),
            "mmap(2) MAP_SHARED: updates are visible to other processes mapping the file and \
             carried through to it; Linux maps the page cache read() uses",
        ),
        shared_read_coherent,
    ),
    Check::fs(
        "mmap.msync_durable",
        "MAP_SHARED store, msync(MS_SYNC), munmap, drop caches, read back",
        Rule::new(
            Expect::is("durable"),
            "msync(2) MS_SYNC: requests an update and waits for it to complete",
        ),
        msync_durable,
    ),
    Check::fs(
        "mmap.map_sync",
        "mmap(MAP_SHARED_VALIDATE|MAP_SYNC) of a regular file",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4-dax", Expect::is("ok")),
                    ("xfs-dax", Expect::is("ok")),
                    ("ext4-dax-async", Expect::is("EOPNOTSUPP")),
                    ("xfs-dax-async", Expect::is("EOPNOTSUPP")),
                ],
                otherwise: &Expect::is("EOPNOTSUPP"),
            },
            "mmap(2) MAP_SYNC (since 4.15): only with MAP_SHARED_VALIDATE, and only for files \
             supporting DAX on a synchronous region; EOPNOTSUPP otherwise, and on a DAX \
             device that is not synchronous (virtio-pmem; daxdev_mapping_supported, 5.3: the \
             ext4-dax-async and xfs-dax-async targets). The DAX targets (synchronous pmem \
             regions: x86_64's legacy memmap= pmem, arm64's device-tree pmem-region) grant it; \
             dax.map_sync also stores through it",
        ),
        map_sync,
    ),
    Check::fs(
        "mmap.bad_offset",
        "mmap with an offset that is not a multiple of the page size",
        Rule::new(
            Expect::is("EINVAL"),
            "mmap(2) ERRORS: EINVAL, offset not aligned on a page boundary",
        ),
        bad_offset,
    ),
    Check::fs(
        "mmap.fault_cold_scan",
        "map 4 MiB of a file none of whose pages is cached, read a byte per page: major and \
         minor faults",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("tmpfs", NO_MAJOR),
                    ("ext4-dax", NO_MAJOR),
                    ("xfs-dax", NO_MAJOR),
                ],
                otherwise: &SOME_MAJOR,
            },
            "getrusage(2) ru_majflt counts faults that needed I/O: once posix_fadvise(2) \
             POSIX_FADV_DONTNEED has dropped a disk file's pages (mincore(2) confirms it) a scan \
             must take some; tmpfs pages are never dropped, so it takes none. A DAX file has no \
             page cache: a fault maps persistent memory and counts as major only when it \
             allocated blocks (fs/dax.c: VM_FAULT_MAJOR on IOMAP_F_NEW), never for written data, \
             so none. Minor faults are a measurement riding along (DAX against the page cache: \
             compare ext4-dax with ext4)",
        )
        .tolerance(FAULT_NOISE),
        fault_cold_scan,
    ),
    Check::fs(
        "mmap.fault_populate",
        "the cold scan with MAP_POPULATE: faults taken during the scan itself",
        Rule::new(
            NO_MAJOR,
            "mmap(2) MAP_POPULATE: prefault page tables (read-ahead on the file); later \
             accesses will not be blocked by page faults, so none waits for I/O (a skip when \
             mincore(2) shows the guest could not keep every page resident). Minor faults are \
             a measurement riding along (a stray fault of the process's own, a stack page or \
             the allocator's, may add one)",
        )
        .tolerance(FAULT_NOISE),
        fault_populate,
    ),
    Check::fs(
        "mmap.fault_sequential",
        "the cold scan after madvise(MADV_SEQUENTIAL), and after MADV_WILLNEED",
        Rule::measure(
            "measures the major and minor faults of a 4 MiB cold scan after each hint, to \
             compare read-ahead between kernels and filesystems: madvise(2) MADV_SEQUENTIAL and \
             MADV_WILLNEED are hints with no promised effect, so no count is wrong",
        )
        .tolerance(FAULT_NOISE),
        fault_sequential,
    ),
    Check::fs(
        "mmap.fault_around",
        "a cached 4 MiB file: pages mapped per minor fault when touching every page (rounded)",
        Rule::new(
            Expect::ByFs {
                cases: &[("ext4-dax", Expect::Measure), ("xfs-dax", Expect::Measure)],
                otherwise: &Expect::Always(Pred::AtLeastPagesOf(65536)),
            },
            "\"mm: introduce fault_around_bytes\" (3.15): a read fault on a cached file maps the \
             cached neighbours in a 65536-byte window (debugfs fault_around_bytes; a skip where \
             it is tuned otherwise), so at least 16 pages per fault with 4 KiB pages, 4 with \
             16 KiB and one with 64 KiB, where the window is a single page (mm/memory.c \
             fault_around_pages = 65536 >> PAGE_SHIFT); filesystems caching in large folios map \
             a whole folio per fault and go beyond it. A DAX file has no page cache to fault \
             around in (its vm_operations have no map_pages): a fault maps a page, or 512 when a \
             PMD fits the extent, so on the DAX targets it measures how many",
        )
        // Every fault maps at least the page it is on: with 64 KiB pages the window is that
        // one page, and the rule cannot fail there (info, saying so).
        .least(1),
        fault_around,
    ),
    Check::fs(
        "mmap.large_folio",
        "read-only PMD-aligned mapping of a cached two-PMD file: PMDs mapped \
         (FilePmdMapped/ShmemPmdMapped)",
        Rule::new(
            Expect::ByFs {
                cases: &[(
                    "tmpfs",
                    Expect::Always(Pred::Fields(&[
                        ("default_pmds", Pred::Is("0")),
                        ("huge_always_pmds", Pred::Is("2")),
                    ])),
                )],
                otherwise: &Expect::Measure,
            },
            "tmpfs(5): huge=never (the default) never allocates huge pages, huge=always \
             allocates them for the file, which map with PMDs. On a disk filesystem PMD mapping \
             needs PMD-sized page-cache folios, which depend on the filesystem, kernel and memory \
             (a measurement there: how much of the file maps with PMDs)",
        ),
        large_folio,
    ),
    Check::kernel(
        "mmap.dontneed_private",
        "MADV_DONTNEED on a written MAP_PRIVATE file page, then read it",
        Rule::new(
            Expect::is("file content"),
            "madvise(2) MADV_DONTNEED: private file mappings repopulate from the up-to-date \
             contents of the underlying file",
        ),
        dontneed_private,
    ),
    // Where the page size is the point: what 4 KiB alignment buys on 16 KiB and 64 KiB kernels.
    Check::kernel(
        "mmap.length_not_page_multiple",
        "MAP_SHARED of a file with a length of 5000 bytes: bytes the mapping spans",
        Rule::new(
            Expect::Always(Pred::PageRoundUp(5000)),
            "mmap(2): a file is mapped in multiples of the page size, and length need not be \
             one; do_mmap rounds it up (len = PAGE_ALIGN(len), mm/mmap.c): 8192 with 4 KiB \
             pages, one page with 16 KiB or 64 KiB",
        ),
        length_not_page_multiple,
    ),
    Check::kernel(
        "mmap.offset_4k",
        "MAP_SHARED of a file at offset 4096 (aligned to 4 KiB, not to a larger page)",
        Rule::new(
            Expect::Always(Pred::ByPage {
                at_4k: "ok",
                larger: "EINVAL",
            }),
            "mmap(2) EINVAL: offset not aligned on a page boundary (the offset must be a \
             multiple of sysconf(_SC_PAGE_SIZE)): 4096 is one only with 4 KiB pages",
        ),
        offset_4k,
    ),
    Check::kernel(
        "mmap.fixed_4k_address",
        "MAP_FIXED anonymous mapping at an address 4096 bytes into a reserved, page-aligned range",
        Rule::new(
            Expect::Always(Pred::ByPage {
                at_4k: "ok",
                larger: "EINVAL",
            }),
            "mmap(2) MAP_FIXED: addr must be suitably aligned, a multiple of the page size \
             (mm/mmap.c __get_unmapped_area: an address with offset_in_page() is EINVAL); \
             4 KiB alignment is page alignment only with 4 KiB pages",
        ),
        fixed_4k_address,
    ),
];

/// The length of the mapping that starts at `addr`, from /proc/self/maps.
fn vma_len(addr: usize) -> anyhow::Result<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for line in maps.lines() {
        let range = line.split(' ').next().unwrap_or_default();
        if let Some((lo, hi)) = range.split_once('-') {
            let (lo, hi) = (
                usize::from_str_radix(lo, 16)?,
                usize::from_str_radix(hi, 16)?,
            );
            if lo == addr {
                return Ok(hi - lo);
            }
        }
    }
    anyhow::bail!("no mapping starts at {addr:#x} in /proc/self/maps")
}

/// A file's own mapping (two files' mappings never merge into one entry of /proc/self/maps,
/// as anonymous neighbours may), 5000 bytes long.
fn length_not_page_multiple(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, _) = fixture(ctx, "mmap.length_not_page_multiple", 3 * 65536)?;
    let m = Mapping::shared(&f, 5000).map_err(|e| broken(format!("mmap of 5000 bytes: {e}")))?;
    let len = vma_len(m.addr())?;
    drop(m);
    let _ = std::fs::remove_file(ctx.dir.join("mmap.length_not_page_multiple"));
    Ok(Observation::number(
        len as f64,
        "bytes",
        format!("asked 5000 bytes, page size {}", sys::page_size()),
    ))
}

fn offset_4k(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, data) = fixture(ctx, "mmap.offset_4k", 2 * 65536)?;
    let res = Mapping::new(4096, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 4096);
    let _ = std::fs::remove_file(ctx.dir.join("mmap.offset_4k"));
    Ok(match res {
        Err(e) => common::errno(e, "mmap at file offset 4096"),
        // Mapped: it must show the file from byte 4096.
        Ok(m) if (0..4096).all(|i| m.read(i) == data[4096 + i]) => {
            Observation::saw("ok", format!("page size {}", sys::page_size()))
        }
        Ok(_) => Observation::saw(
            "wrong-data",
            "the mapping does not show the file from byte 4096",
        ),
    })
}

fn fixed_4k_address(_ctx: &Ctx) -> Result<Observation, Stop> {
    // Address space of our own (four pages, at least 256 KiB, PROT_NONE), so the fixed
    // mapping replaces nothing but it.
    let page = sys::page_size();
    let reserved = Mapping::anon(4 * page.max(65536), libc::PROT_NONE, 0)
        .map_err(|e| broken(format!("reserving address space: {e}")))?;
    let at = reserved.addr() + 4096;
    // SAFETY: MAP_FIXED inside our own reservation, which `reserved` unmaps on drop; nothing
    // else uses that range.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Ok(common::errno(
            nix::errno::Errno::last(),
            &format!("MAP_FIXED at {at:#x}"),
        ));
    }
    Ok(if p as usize == at {
        Observation::saw("ok", format!("mapped at {at:#x}, page size {page}"))
    } else {
        Observation::saw(
            "moved",
            format!("MAP_FIXED at {at:#x} returned {:#x}", p as usize),
        )
    })
}

fn fixture(ctx: &Ctx, name: &str, len: usize) -> Result<(File, Vec<u8>), Stop> {
    common::fixture(ctx, name, len, 0x3a9)
}

fn child_end(end: ChildEnd) -> Observation {
    match end {
        ChildEnd::Signaled(s) => Observation::saw(format!("{s:?}"), "the touch killed the child"),
        ChildEnd::Exited(_) => Observation::saw("readable", "the touch returned normally"),
    }
}

fn beyond_eof(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.beyond_eof", page)?;
    let m = Mapping::shared(&f, 2 * page)?;
    Ok(child_end(sys::in_child(|| m.read(page) as i32)?))
}

fn eof_tail(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, data) = fixture(ctx, "mmap.eof_tail", 100)?;
    let m = Mapping::shared(&f, page)?;
    let nonzero = (100..page).filter(|&i| m.read(i) != 0).count();
    m.write(200, 0xaa);
    // SAFETY: msync on our live mapping.
    m.sync(libc::MS_SYNC)?;
    drop(m);
    let back = std::fs::read(ctx.dir.join("mmap.eof_tail"))?;
    let mut wrong = Vec::new();
    if nonzero > 0 {
        wrong.push(format!("{nonzero} tail bytes were not zero"));
    }
    if back != data {
        wrong.push(format!("file is now {} bytes or changed", back.len()));
    }
    Ok(if wrong.is_empty() {
        Observation::saw(
            "zero, not persisted",
            "tail read zero; the write past EOF stayed in memory",
        )
    } else {
        Observation::saw("deviates", wrong.join("; "))
    })
}

fn truncate(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.truncate", page)?;
    let m = Mapping::shared(&f, page)?;
    let _ = m.read(0);
    f.set_len(0)?;
    Ok(child_end(sys::in_child(|| m.read(0) as i32)?))
}

/// A MAP_PRIVATE write breaks copy-on-write into an anonymous page; the page-cache page, and so
/// the file, keep the old bytes even after munmap and fsync.
fn private_write(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, original) = fixture(ctx, "mmap.private_write", page)?;
    let m = Mapping::private(&f, page)?;
    (0..page).for_each(|i| m.write(i, 0xee));
    let kept = (0..page).all(|i| m.read(i) == 0xee);
    drop(m);
    f.sync_all()?;
    if !kept {
        return Ok(Observation::saw(
            "write-lost",
            "the private mapping lost its own write",
        ));
    }
    let now = sys::read_at(&f, 0, page)?;
    Ok(if now == original {
        Observation::saw(
            "isolated",
            "file unchanged after a private write and munmap",
        )
    } else {
        Observation::saw(
            "leaked",
            format!(
                "file differs at byte {:?}",
                sys::first_difference(&now, &original)
            ),
        )
    })
}

fn private_before_cow(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, original) = fixture(ctx, "mmap.private_before_cow", page)?;
    let m = Mapping::private(&f, page)?;
    let before = m.read(0);
    let changed = original[0] ^ 0xff;
    f.write_all_at(&[changed], 0)?;
    let after = m.read(0);
    Ok(if before == original[0] && after == changed {
        Observation::saw("visible", "the private mapping showed the later write()")
    } else if after == original[0] {
        Observation::saw("stale", "the private mapping kept the bytes it first saw")
    } else {
        Observation::saw(
            "wrong-data",
            format!("read {after:#x}, neither old nor new"),
        )
    })
}

fn shared_read_coherent(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, original) = fixture(ctx, "mmap.shared_read_coherent", page)?;
    let m = Mapping::shared(&f, page)?;
    let v = original[7] ^ 0x5a;
    m.write(7, v);
    let seen = sys::read_at(&f, 7, 1)?[0];
    Ok(if seen == v {
        Observation::saw("coherent", "read() returned the byte just stored")
    } else {
        Observation::saw("stale", "read() returned the old byte")
    })
}

fn msync_durable(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let name = "mmap.msync_durable";
    let (f, _) = fixture(ctx, name, page)?;
    let new = sys::pattern(page, 0x3d);
    let m = Mapping::shared(&f, page)?;
    (0..page).for_each(|i| m.write(i, new[i]));
    // SAFETY: msync on our live mapping.
    if let Err(e) = m.sync(libc::MS_SYNC) {
        return Ok(common::errno(e, "msync"));
    }
    drop(m);
    drop(f);
    if let Err(why) = sys::drop_caches() {
        return Err(skip(why));
    }
    let back = std::fs::read(ctx.dir.join(name))?;
    Ok(if back == new {
        Observation::saw("durable", "the stored bytes came back from disk")
    } else {
        Observation::saw("lost", "after dropping caches the file had other bytes")
    })
}

fn map_sync(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.map_sync", page)?;
    let flags = libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC;
    Ok(
        match Mapping::new(
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            f.as_raw_fd(),
            0,
        ) {
            Ok(_) => Observation::saw("ok", "MAP_SYNC mapping accepted"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

fn bad_offset(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.bad_offset", 2 * page)?;
    Ok(
        match Mapping::new(page, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 100) {
            Ok(_) => Observation::saw("ok", "a mapping at offset 100 was accepted"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

/// A fresh 4 MiB file with none of its pages cached (posix_fadvise(2) POSIX_FADV_DONTNEED,
/// checked with mincore(2)), unlinked at once so a run leaves nothing behind; tmpfs keeps its
/// pages, which is what its rules say.
fn cold_file(ctx: &Ctx, name: &str) -> Result<File, Stop> {
    let (f, _) = fixture(ctx, name, SCAN_BYTES)?;
    std::fs::remove_file(ctx.dir.join(name))?;
    if ctx.fs.as_deref() != Some("tmpfs") {
        sys::evict(&f)?;
        let cached = sys::cached_pages(&f, SCAN_BYTES)?;
        if cached > 0 {
            return Err(skip(format!(
                "{cached} pages stayed cached after POSIX_FADV_DONTNEED: the scan would not be cold"
            )));
        }
    }
    Ok(f)
}

/// Faults taken while reading one byte per page of `m`.
fn scan(m: &Mapping) -> (i64, i64) {
    let page = sys::page_size();
    // Warm the getrusage path first, so its own first-touch faults are not counted as the scan's.
    std::hint::black_box(sys::faults());
    let (maj0, min0) = sys::faults();
    let mut sum = 0u8;
    for i in (0..m.len()).step_by(page) {
        sum = sum.wrapping_add(m.read(i));
    }
    std::hint::black_box(sum);
    let (maj1, min1) = sys::faults();
    (maj1 - maj0, min1 - min0)
}

/// A read-only shared mapping of the first SCAN_BYTES of `f`, for the fault-count scans.
fn scan_mapping(f: &File) -> Result<Mapping, nix::errno::Errno> {
    Mapping::new(
        SCAN_BYTES,
        libc::PROT_READ,
        libc::MAP_SHARED,
        f.as_raw_fd(),
        0,
    )
}

/// `major=… minor=…` of a scan, typed as fault counts.
fn faults((maj, min): (i64, i64), detail: String) -> Observation {
    Observation::numbers(
        &[
            ("major", maj as f64, "faults"),
            ("minor", min as f64, "faults"),
        ],
        detail,
    )
}

fn fault_cold_scan(ctx: &Ctx) -> Result<Observation, Stop> {
    let f = cold_file(ctx, "mmap.fault_cold_scan")?;
    let m = scan_mapping(&f)?;
    let (maj, min) = scan(&m);
    Ok(faults(
        (maj, min),
        format!("{} pages scanned", SCAN_BYTES / sys::page_size()),
    ))
}

fn fault_populate(ctx: &Ctx) -> Result<Observation, Stop> {
    let f = cold_file(ctx, "mmap.fault_populate")?;
    let (maj0, min0) = sys::faults();
    let m = Mapping::new(
        SCAN_BYTES,
        libc::PROT_READ,
        libc::MAP_SHARED | libc::MAP_POPULATE,
        f.as_raw_fd(),
        0,
    )?;
    let (maj1, min1) = sys::faults();
    // MAP_POPULATE does not report pages it could not populate, and reclaim may take populated
    // ones back: either is this guest's memory, not the kernel's promise. A DAX file has no
    // page cache for mincore(2) to see: its mapping is persistent memory itself.
    let dax = ctx
        .fs
        .as_deref()
        .is_some_and(|f| super::base_target(f).ends_with("-dax"));
    let cached = sys::cached_pages(&f, SCAN_BYTES)?;
    if !dax && cached < SCAN_BYTES / sys::page_size() {
        return Err(skip(format!(
            "only {cached} of {} pages were resident after MAP_POPULATE (memory pressure)",
            SCAN_BYTES / sys::page_size()
        )));
    }
    let (maj, min) = scan(&m);
    Ok(faults(
        (maj, min),
        format!(
            "mmap itself took major={} minor={}",
            maj1 - maj0,
            min1 - min0
        ),
    ))
}

fn fault_sequential(ctx: &Ctx) -> Result<Observation, Stop> {
    let mut counts = Vec::new();
    for (label, advice) in [
        ("sequential", libc::MADV_SEQUENTIAL),
        ("willneed", libc::MADV_WILLNEED),
    ] {
        let f = cold_file(ctx, &format!("mmap.fault_{label}"))?;
        let m = scan_mapping(&f)?;
        m.advise(advice)?;
        counts.push((label, scan(&m)));
    }
    let names: Vec<(String, String)> = counts
        .iter()
        .map(|(l, _)| (format!("{l}_major"), format!("{l}_minor")))
        .collect();
    let values: Vec<(&str, f64, &str)> = counts
        .iter()
        .zip(&names)
        .flat_map(|((_, (maj, min)), (nmaj, nmin))| {
            [
                (nmaj.as_str(), *maj as f64, "faults"),
                (nmin.as_str(), *min as f64, "faults"),
            ]
        })
        .collect();
    Ok(Observation::numbers(
        &values,
        "4 MiB cold scans after each advice",
    ))
}

/// With the file cached, every fault is minor and maps fault_around_bytes worth of pages.
fn fault_around(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, _) = fixture(ctx, "mmap.fault_around", SCAN_BYTES)?;
    let mut sink = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < SCAN_BYTES {
        // Make sure every page is cached; a file that ends early is a broken fixture.
        match f.read_at(&mut sink, off as u64)? {
            0 => return Err(broken(format!("the fixture ended at {off} bytes"))),
            n => off += n,
        }
    }
    // The fewest faults of three fresh mappings: a stray fault of the process's own (a stack
    // page, the allocator) would otherwise round 64 windows of 16 pages down to 15 a fault.
    let (mut maj, mut min) = (i64::MAX, i64::MAX);
    for _ in 0..3 {
        let m = scan_mapping(&f)?;
        let (a, b) = scan(&m);
        if b < min {
            (maj, min) = (a, b);
        }
    }
    let pages = (SCAN_BYTES / sys::page_size()) as i64;
    let _ = std::fs::remove_file(ctx.dir.join("mmap.fault_around"));
    let tuned = std::fs::read_to_string("/sys/kernel/debug/fault_around_bytes");
    if let Some(v) = tuned.as_ref().ok().filter(|v| v.trim() != "65536") {
        return Err(skip(format!(
            "fault_around_bytes is tuned to {} here, not the 65536 the rule speaks about",
            v.trim()
        )));
    }
    // debugfs is root's alone: a normal user cannot tell whether it is mounted.
    let debugfs = match tuned {
        Ok(s) => format!("debugfs fault_around_bytes={}", s.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "debugfs not readable by a normal user".into()
        }
        Err(_) => "debugfs not mounted".into(),
    };
    if min <= 0 {
        return Ok(Observation::saw(
            "no-faults",
            format!("major={maj}; {debugfs}"),
        ));
    }
    // Pages per minor fault: the fault-around window.
    Ok(Observation::number(
        ((pages + min / 2) / min) as f64,
        "pages",
        format!("{pages} pages, {min} minor and {maj} major faults; {debugfs}"),
    ))
}

/// kB of `addr`'s mapping that are PMD-mapped, from /proc/self/smaps.
fn pmd_mapped_kb(addr: usize) -> anyhow::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut inside = false;
    let mut kb = 0;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= addr && addr < hi;
                    continue;
                }
            }
        }
        if inside && (line.starts_with("FilePmdMapped:") || line.starts_with("ShmemPmdMapped:")) {
            kb += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(kb)
}

/// Maps `f` read-only at a `pmd`-aligned address, touches every page, returns kB PMD-mapped.
fn aligned_pmd_kb(f: &File, len: usize, pmd: usize) -> anyhow::Result<u64> {
    // Reserve len + one PMD of address space, then map the file over its aligned part.
    let reserve = Mapping::anon(len + pmd, libc::PROT_NONE, 0)?;
    let start = (reserve.addr() + pmd - 1) & !(pmd - 1);
    // SAFETY: MAP_FIXED over address space we reserved and still own.
    let p = unsafe {
        libc::mmap(
            start as *mut _,
            len,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_FIXED,
            f.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the MAP_FIXED mapping above, owned here; the reservation's munmap covers it too.
    let m = unsafe { Mapping::from_raw(p.cast(), len) };
    let _ = scan(&m);
    let kb = pmd_mapped_kb(m.addr())?;
    std::mem::forget(m); // unmapped with the reservation
    drop(reserve);
    Ok(kb)
}

/// A file of two PMDs (2 MiB each on x86_64, read from sysfs elsewhere) mapped PMD-aligned:
/// how many of its PMDs map huge, on this filesystem and, for tmpfs, on a huge=always mount.
fn large_folio(ctx: &Ctx) -> Result<Observation, Stop> {
    let pmd = sys::pmd_size().or_skip("no transparent huge pages here (hpage_pmd_size)")?;
    let len = 2 * pmd;
    if len > 64 << 20 {
        return Err(skip(format!(
            "two PMDs of {pmd} bytes are more file than this probe writes"
        )));
    }
    let pmds = |kb: u64| kb as usize * 1024 / pmd;
    let (f, _) = fixture(ctx, "mmap.large_folio", len)?;
    let _ = std::fs::remove_file(ctx.dir.join("mmap.large_folio"));
    let plain = aligned_pmd_kb(&f, len, pmd)?;
    let detail = format!(
        "PMD {} kB; FilePmdMapped/ShmemPmdMapped {plain} kB",
        pmd >> 10
    );
    if ctx.fs.as_deref() != Some("tmpfs") {
        return Ok(Observation::numbers(
            &[("default_pmds", pmds(plain) as f64, "PMDs")],
            detail,
        ));
    }
    // A second tmpfs with huge=always shows whether shmem can back files with huge pages.
    let dir = ctx.dir.join("huge-always");
    std::fs::create_dir_all(&dir)?;
    nix::mount::mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some(format!("huge=always,size={}", 2 * len).as_str()),
    )
    .map_err(|e| {
        skip(
            sys::needs_root("mounting a huge=always tmpfs", e)
                .unwrap_or_else(|| format!("cannot mount a huge=always tmpfs ({e})")),
        )
    })?;
    let fallbacks = || sys::vmstat("thp_file_fallback").unwrap_or(0);
    let before = fallbacks();
    let huge = (|| -> Result<u64, Stop> {
        let (hf, _) = common::fixture(
            &Ctx {
                dir: dir.clone(),
                ..ctx.clone()
            },
            "mmap.large_folio",
            len,
            0x3a9,
        )?;
        Ok(aligned_pmd_kb(&hf, len, pmd)?)
    })();
    let failed = fallbacks() - before;
    // Lazily: on 7.2 the last reference to the file can still be on its way out here (EBUSY).
    nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)?;
    let huge = huge?;
    if pmds(huge) < 2 && failed > 0 {
        // thp_file_fallback counts huge page allocations that failed: this guest's memory was
        // too fragmented, which says nothing about tmpfs.
        return Err(skip(format!(
            "{huge} kB PMD-mapped; {failed} huge page allocations failed (thp_file_fallback)"
        )));
    }
    Ok(Observation::numbers(
        &[
            ("default_pmds", pmds(plain) as f64, "PMDs"),
            ("huge_always_pmds", pmds(huge) as f64, "PMDs"),
        ],
        format!("{detail}, huge=always {huge} kB"),
    ))
}

fn dontneed_private(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, original) = fixture(ctx, "mmap.dontneed_private", page)?;
    let m = Mapping::private(&f, page)?;
    m.write(0, original[0] ^ 0xff);
    // SAFETY: advice on our live mapping.
    m.advise(libc::MADV_DONTNEED)?;
    let now: Vec<u8> = (0..page).map(|i| m.read(i)).collect();
    Ok(if now == original {
        Observation::saw(
            "file content",
            "the private copy was dropped; the file's bytes came back",
        )
    } else if now.iter().all(|&b| b == 0) {
        Observation::saw("zero", "the page came back zero-filled")
    } else {
        Observation::saw("private copy", "the written byte survived MADV_DONTNEED")
    })
}
