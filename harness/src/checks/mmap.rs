//! File mappings: page faults and what they cost, end-of-file and truncate rules (SIGBUS),
//! MAP_PRIVATE isolation, coherence with read()/write(), durability after msync.
//!
//! Fault counts are measurements to compare across kernels and filesystems; where a documented
//! rule bounds them (MAP_POPULATE leaves nothing to fault, a cold scan must go to disk) the rule
//! is the expectation. Touching code that may fault runs in a forked child.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys::{self, ChildEnd};

/// 16 MiB: large enough that readahead and fault-around show, small enough for a TCG guest.
const SCAN_BYTES: usize = 16 << 20;

const EVIDENCE_SIGBUS: &str = "mmap(2) ERRORS/NOTES: SIGBUS on access to a page of the mapping \
    that lies beyond the end of the mapped file (including after the file is truncated)";

pub const CHECKS: &[Check] = &[
    Check {
        id: "mmap.beyond_eof",
        variant: None,
        scope: Scope::Fs,
        description: "a two-page MAP_SHARED mapping of a one-page file: touch the second page",
        rule: Rule { expect: Expect::Always(&["SIGBUS"]), evidence: EVIDENCE_SIGBUS },
        probe: beyond_eof,
    },
    Check {
        id: "mmap.eof_tail",
        variant: None,
        scope: Scope::Fs,
        description: "a 100-byte file: bytes 100..4095 of the mapping read zero, and a write there never reaches the file",
        rule: Rule {
            expect: Expect::Always(&["zero, not persisted"]),
            evidence: "mmap(2) NOTES: the remaining bytes of a partial last page are zeroed when \
                       mapped, and modifications to that region are not written out to the file",
        },
        probe: eof_tail,
    },
    Check {
        id: "mmap.truncate",
        variant: None,
        scope: Scope::Fs,
        description: "map a one-page file, truncate it to 0, touch the mapping",
        rule: Rule { expect: Expect::Always(&["SIGBUS"]), evidence: EVIDENCE_SIGBUS },
        probe: truncate,
    },
    Check {
        id: "mmap.private_write",
        variant: None,
        scope: Scope::Fs,
        description: "a write through a MAP_PRIVATE file mapping never reaches the file",
        rule: Rule {
            expect: Expect::Always(&["isolated"]),
            evidence: "mmap(2) MAP_PRIVATE: updates to the mapping are not carried through to the \
                       underlying file",
        },
        probe: private_write,
    },
    Check {
        id: "mmap.private_before_cow",
        variant: None,
        scope: Scope::Fs,
        description: "write() to the file after a MAP_PRIVATE mapping read it but before any write through it",
        rule: Rule {
            expect: Expect::Always(&["visible"]),
            evidence: "mmap(2) MAP_PRIVATE: whether later file changes show is unspecified; Linux \
                       maps the page-cache page read-only until the first write fault copies it, \
                       so they show until then",
        },
        probe: private_before_cow,
    },
    Check {
        id: "mmap.shared_read_coherent",
        variant: None,
        scope: Scope::Fs,
        description: "a store through MAP_SHARED is seen by read() at once, without msync",
        rule: Rule {
            expect: Expect::Always(&["coherent"]),
            evidence: "mmap(2) MAP_SHARED: updates are visible to other processes mapping the \
                       file and carried through to it; Linux maps the page cache read() uses",
        },
        probe: shared_read_coherent,
    },
    Check {
        id: "mmap.msync_durable",
        variant: None,
        scope: Scope::Fs,
        description: "MAP_SHARED store, msync(MS_SYNC), munmap, drop caches, read back",
        rule: Rule {
            expect: Expect::Always(&["durable"]),
            evidence: "msync(2) MS_SYNC: requests an update and waits for it to complete",
        },
        probe: msync_durable,
    },
    Check {
        id: "mmap.map_sync",
        variant: None,
        scope: Scope::Fs,
        description: "mmap(MAP_SHARED_VALIDATE|MAP_SYNC) of a regular file (no DAX here)",
        rule: Rule {
            expect: Expect::Always(&["EOPNOTSUPP"]),
            evidence: "mmap(2) MAP_SYNC (since 4.15): only with MAP_SHARED_VALIDATE, and only for \
                       files supporting DAX; EOPNOTSUPP otherwise",
        },
        probe: map_sync,
    },
    Check {
        id: "mmap.bad_offset",
        variant: None,
        scope: Scope::Fs,
        description: "mmap with an offset that is not a multiple of the page size",
        rule: Rule {
            expect: Expect::Always(&["EINVAL"]),
            evidence: "mmap(2) ERRORS: EINVAL, offset not aligned on a page boundary",
        },
        probe: bad_offset,
    },
    Check {
        id: "mmap.fault_cold_scan",
        variant: None,
        scope: Scope::Fs,
        description: "drop caches, map 16 MiB, read a byte per page: major and minor faults",
        rule: Rule {
            expect: Expect::ByFs {
                cases: &[("tmpfs", Expect::Always(&["major=0 minor=*"]))],
                otherwise: &Expect::Always(&["major=[1-9]* minor=*"]),
            },
            evidence: "getrusage(2) ru_majflt counts faults that needed I/O: after drop_caches \
                       (proc(5) /proc/sys/vm/drop_caches) a scan of a disk file must take some; \
                       tmpfs pages are never dropped, so it takes none",
        },
        probe: fault_cold_scan,
    },
    Check {
        id: "mmap.fault_populate",
        variant: None,
        scope: Scope::Fs,
        description: "the cold scan with MAP_POPULATE: faults taken during the scan itself",
        rule: Rule {
            expect: Expect::Always(&["major=0 minor=*"]),
            evidence: "mmap(2) MAP_POPULATE: prefault page tables (read-ahead on the file); \
                       later accesses will not be blocked by page faults, so none waits for I/O \
                       (minor faults are counted, not judged: 0 in 5.10-7.2 guests, an occasional \
                       one seen on a 6.18 host)",
        },
        probe: fault_populate,
    },
    Check {
        id: "mmap.fault_sequential",
        variant: None,
        scope: Scope::Fs,
        description: "the cold scan after madvise(MADV_SEQUENTIAL), and after MADV_WILLNEED",
        rule: Rule {
            expect: Expect::Always(&["sequential=major:* minor:* willneed=major:* minor:*"]),
            evidence: "madvise(2) MADV_SEQUENTIAL / MADV_WILLNEED are hints: the counts are \
                       measurements to compare, not a rule",
        },
        probe: fault_sequential,
    },
    Check {
        id: "mmap.fault_around",
        variant: None,
        scope: Scope::Fs,
        description: "a cached 16 MiB file: pages mapped per minor fault when touching every page (rounded)",
        rule: Rule {
            // 16 or more: globs for 16-19, 20-99 and anything of three digits or more.
            expect: Expect::Always(&["1[6-9]", "[2-9][0-9]", "[1-9][0-9][0-9]*"]),
            evidence: "\"mm: introduce fault_around_bytes\" (3.15): a read fault on a cached \
                       file maps the cached neighbours in a 65536-byte window (debugfs \
                       fault_around_bytes), so at least 16 pages per fault; filesystems caching \
                       in large folios map a whole folio per fault and go beyond it",
        },
        probe: fault_around,
    },
    Check {
        id: "mmap.large_folio",
        variant: None,
        scope: Scope::Fs,
        description: "read-only 2 MiB-aligned mapping of a cached 4 MiB file: kB PMD-mapped (FilePmdMapped/ShmemPmdMapped)",
        rule: Rule {
            expect: Expect::ByFs {
                cases: &[("tmpfs", Expect::Always(&["0 kB, huge=always 4096 kB"]))],
                otherwise: &Expect::Always(&["*kB"]),
            },
            evidence: "tmpfs(5) huge=always allocates huge pages for the file, which map with \
                       PMDs; without it, or on a disk filesystem, PMD mapping needs PMD-sized \
                       page-cache folios (a measurement here)",
        },
        probe: large_folio,
    },
    Check {
        id: "mmap.dontneed_private",
        variant: None,
        scope: Scope::Kernel,
        description: "MADV_DONTNEED on a written MAP_PRIVATE file page, then read it",
        rule: Rule {
            expect: Expect::Always(&["file content"]),
            evidence: "madvise(2) MADV_DONTNEED: private file mappings repopulate from the \
                       up-to-date contents of the underlying file",
        },
        probe: dontneed_private,
    },
];

/// A mapping unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(f: &File, len: usize, prot: i32, flags: i32, offset: i64) -> Result<Mapping, Errno> {
        // SAFETY: a new mapping chosen by the kernel; nothing aliases it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                f.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    fn shared(f: &File, len: usize) -> Result<Mapping, Errno> {
        Self::new(
            f,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            0,
        )
    }

    fn private(f: &File, len: usize) -> Result<Mapping, Errno> {
        Self::new(
            f,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            0,
        )
    }

    fn read(&self, i: usize) -> u8 {
        assert!(i < self.len);
        // SAFETY: in bounds of a live mapping; volatile so every touch really faults.
        unsafe { self.ptr.add(i).read_volatile() }
    }

    fn write(&self, i: usize, v: u8) {
        assert!(i < self.len);
        // SAFETY: in bounds of a live writable mapping.
        unsafe { self.ptr.add(i).write_volatile(v) }
    }

    fn addr(&self) -> usize {
        self.ptr as usize
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn fixture(ctx: &Ctx, name: &str, len: usize) -> anyhow::Result<(File, Vec<u8>)> {
    let data = sys::pattern(len, name.len() as u64 ^ 0x3a9);
    let f = sys::write_file_synced(&ctx.dir.join(name), &data)?;
    Ok((f, data))
}

fn child_end(end: ChildEnd) -> Observation {
    match end {
        ChildEnd::Signaled(s) => Observation::saw(format!("{s:?}"), "the touch killed the child"),
        ChildEnd::Exited(_) => Observation::saw("readable", "the touch returned normally"),
    }
}

fn beyond_eof(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.beyond_eof", page)?;
    let m = Mapping::shared(&f, 2 * page)?;
    Ok(child_end(sys::in_child(|| m.read(page) as i32)?))
}

fn eof_tail(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, data) = fixture(ctx, "mmap.eof_tail", 100)?;
    let m = Mapping::shared(&f, page)?;
    let nonzero = (100..page).filter(|&i| m.read(i) != 0).count();
    m.write(200, 0xaa);
    // SAFETY: msync on our live mapping.
    unsafe { libc::msync(m.ptr.cast(), page, libc::MS_SYNC) };
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

fn truncate(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.truncate", page)?;
    let m = Mapping::shared(&f, page)?;
    let _ = m.read(0);
    f.set_len(0)?;
    Ok(child_end(sys::in_child(|| m.read(0) as i32)?))
}

/// A MAP_PRIVATE write breaks copy-on-write into an anonymous page; the page-cache page, and so
/// the file, keep the old bytes even after munmap and fsync.
fn private_write(ctx: &Ctx) -> anyhow::Result<Observation> {
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

fn private_before_cow(ctx: &Ctx) -> anyhow::Result<Observation> {
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

fn shared_read_coherent(ctx: &Ctx) -> anyhow::Result<Observation> {
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

fn msync_durable(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let name = "mmap.msync_durable";
    let (f, _) = fixture(ctx, name, page)?;
    let new = sys::pattern(page, 0x3d);
    let m = Mapping::shared(&f, page)?;
    (0..page).for_each(|i| m.write(i, new[i]));
    // SAFETY: msync on our live mapping.
    if unsafe { libc::msync(m.ptr.cast(), page, libc::MS_SYNC) } != 0 {
        return Ok(Observation::saw(
            sys::errno_name(Errno::last()),
            "msync failed",
        ));
    }
    drop(m);
    drop(f);
    if let Err(why) = sys::drop_caches() {
        return Ok(Observation::skip(why));
    }
    let back = std::fs::read(ctx.dir.join(name))?;
    Ok(if back == new {
        Observation::saw("durable", "the stored bytes came back from disk")
    } else {
        Observation::saw("lost", "after dropping caches the file had other bytes")
    })
}

fn map_sync(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.map_sync", page)?;
    let flags = libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC;
    Ok(
        match Mapping::new(&f, page, libc::PROT_READ | libc::PROT_WRITE, flags, 0) {
            Ok(_) => Observation::saw("ok", "MAP_SYNC mapping accepted"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

fn bad_offset(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, _) = fixture(ctx, "mmap.bad_offset", 2 * page)?;
    Ok(
        match Mapping::new(&f, page, libc::PROT_READ, libc::MAP_SHARED, 100) {
            Ok(_) => Observation::saw("ok", "a mapping at offset 100 was accepted"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

/// A fresh 16 MiB file, written and dropped from the cache; `Err` is a skip (no root).
fn cold_file(ctx: &Ctx, name: &str) -> anyhow::Result<Result<File, Observation>> {
    let (f, _) = fixture(ctx, name, SCAN_BYTES)?;
    drop(f);
    if let Err(why) = sys::drop_caches() {
        return Ok(Err(Observation::skip(why)));
    }
    Ok(Ok(File::open(ctx.dir.join(name))?))
}

/// Faults taken while reading one byte per page of `m`.
fn scan(m: &Mapping) -> (i64, i64) {
    let page = sys::page_size();
    // Warm the getrusage path first, so its own first-touch faults are not counted as the scan's.
    std::hint::black_box(sys::faults());
    let (maj0, min0) = sys::faults();
    let mut sum = 0u8;
    for i in (0..m.len).step_by(page) {
        sum = sum.wrapping_add(m.read(i));
    }
    std::hint::black_box(sum);
    let (maj1, min1) = sys::faults();
    (maj1 - maj0, min1 - min0)
}

fn fault_cold_scan(ctx: &Ctx) -> anyhow::Result<Observation> {
    let f = match cold_file(ctx, "mmap.fault_cold_scan")? {
        Ok(f) => f,
        Err(skip) => return Ok(skip),
    };
    let m = Mapping::new(&f, SCAN_BYTES, libc::PROT_READ, libc::MAP_SHARED, 0)?;
    let (maj, min) = scan(&m);
    Ok(Observation::saw(
        format!("major={maj} minor={min}"),
        format!("{} pages scanned", SCAN_BYTES / sys::page_size()),
    ))
}

fn fault_populate(ctx: &Ctx) -> anyhow::Result<Observation> {
    let f = match cold_file(ctx, "mmap.fault_populate")? {
        Ok(f) => f,
        Err(skip) => return Ok(skip),
    };
    let (maj0, min0) = sys::faults();
    let m = Mapping::new(
        &f,
        SCAN_BYTES,
        libc::PROT_READ,
        libc::MAP_SHARED | libc::MAP_POPULATE,
        0,
    )?;
    let (maj1, min1) = sys::faults();
    let (maj, min) = scan(&m);
    Ok(Observation::saw(
        format!("major={maj} minor={min}"),
        format!(
            "mmap itself took major={} minor={}",
            maj1 - maj0,
            min1 - min0
        ),
    ))
}

fn fault_sequential(ctx: &Ctx) -> anyhow::Result<Observation> {
    let mut parts = Vec::new();
    for (label, advice) in [
        ("sequential", libc::MADV_SEQUENTIAL),
        ("willneed", libc::MADV_WILLNEED),
    ] {
        let f = match cold_file(ctx, &format!("mmap.fault_{label}"))? {
            Ok(f) => f,
            Err(skip) => return Ok(skip),
        };
        let m = Mapping::new(&f, SCAN_BYTES, libc::PROT_READ, libc::MAP_SHARED, 0)?;
        // SAFETY: advice on our live mapping.
        if unsafe { libc::madvise(m.ptr.cast(), m.len, advice) } != 0 {
            return Ok(Observation::saw(
                sys::errno_name(Errno::last()),
                format!("madvise {label}"),
            ));
        }
        let (maj, min) = scan(&m);
        parts.push(format!("{label}=major:{maj} minor:{min}"));
    }
    Ok(Observation::saw(
        parts.join(" "),
        "16 MiB cold scans after each advice",
    ))
}

/// With the file cached, every fault is minor and maps fault_around_bytes worth of pages.
fn fault_around(ctx: &Ctx) -> anyhow::Result<Observation> {
    let (f, _) = fixture(ctx, "mmap.fault_around", SCAN_BYTES)?;
    let mut sink = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < SCAN_BYTES {
        off += f.read_at(&mut sink, off as u64)?; // make sure every page is cached
    }
    let m = Mapping::new(&f, SCAN_BYTES, libc::PROT_READ, libc::MAP_SHARED, 0)?;
    let (maj, min) = scan(&m);
    let pages = (SCAN_BYTES / sys::page_size()) as i64;
    let debugfs = std::fs::read_to_string("/sys/kernel/debug/fault_around_bytes")
        .map(|s| format!("debugfs fault_around_bytes={}", s.trim()))
        .unwrap_or_else(|_| "debugfs not mounted".into());
    if min <= 0 {
        return Ok(Observation::saw(
            "no-faults",
            format!("major={maj}; {debugfs}"),
        ));
    }
    Ok(Observation::saw(
        ((pages + min / 2) / min).to_string(),
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

/// Maps `f` read-only at a 2 MiB-aligned address, touches every page, returns kB PMD-mapped.
fn aligned_pmd_kb(f: &File, len: usize) -> anyhow::Result<u64> {
    const PMD: usize = 2 << 20;
    // Reserve len + 2 MiB of address space, then map the file over its aligned part.
    let reserve = Mapping::new_anon(len + PMD)?;
    let start = (reserve.addr() + PMD - 1) & !(PMD - 1);
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
    let m = Mapping { ptr: p.cast(), len };
    let _ = scan(&m);
    let kb = pmd_mapped_kb(m.addr())?;
    std::mem::forget(m); // unmapped with the reservation
    drop(reserve);
    Ok(kb)
}

impl Mapping {
    fn new_anon(len: usize) -> Result<Mapping, Errno> {
        // SAFETY: a fresh anonymous reservation.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

fn large_folio(ctx: &Ctx) -> anyhow::Result<Observation> {
    const LEN: usize = 4 << 20;
    let (f, _) = fixture(ctx, "mmap.large_folio", LEN)?;
    let plain = aligned_pmd_kb(&f, LEN)?;
    if ctx.fs.as_deref() != Some("tmpfs") {
        return Ok(Observation::saw(
            format!("{plain} kB"),
            "FilePmdMapped of the mapping",
        ));
    }
    // A second tmpfs with huge=always shows whether shmem can back files with huge pages.
    let dir = ctx.dir.join("huge-always");
    std::fs::create_dir_all(&dir)?;
    if let Err(e) = nix::mount::mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("huge=always,size=16m"),
    ) {
        return Ok(Observation::skip(format!(
            "cannot mount a huge=always tmpfs ({}): needs root",
            sys::errno_name(e)
        )));
    }
    let huge = (|| -> anyhow::Result<u64> {
        let (hf, _) = fixture(
            &Ctx {
                dir: dir.clone(),
                ..ctx.clone()
            },
            "mmap.large_folio",
            LEN,
        )?;
        aligned_pmd_kb(&hf, LEN)
    })();
    let _ = nix::mount::umount(&dir);
    Ok(Observation::saw(
        format!("{plain} kB, huge=always {} kB", huge?),
        "ShmemPmdMapped of the default mount, then of a huge=always mount",
    ))
}

fn dontneed_private(ctx: &Ctx) -> anyhow::Result<Observation> {
    let page = sys::page_size();
    let (f, original) = fixture(ctx, "mmap.dontneed_private", page)?;
    let m = Mapping::private(&f, page)?;
    m.write(0, original[0] ^ 0xff);
    // SAFETY: advice on our live mapping.
    if unsafe { libc::madvise(m.ptr.cast(), page, libc::MADV_DONTNEED) } != 0 {
        return Ok(Observation::saw(
            sys::errno_name(Errno::last()),
            "madvise failed",
        ));
    }
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
