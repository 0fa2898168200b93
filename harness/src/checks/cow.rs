//! Copy-on-write isolation under zero-copy: after fork(), can a pipe filled by vmsplice, or an
//! io_uring fixed buffer, see another process's later writes? Scenarios × backings, after the
//! kernel's own `tools/testing/selftests/mm/cow.c`, whose results these must agree with.
//!
//! CVE-2020-29374 (Jann Horn): a vmsplice'd page stayed readable through the pipe after the
//! parent wrote to it. Fixed for base pages by 09854ba94c6a "mm: do_wp_page() simplification"
//! (5.9, copy whenever the page has other references), for swapped and THP pages by
//! c145e0b47c77 "mm: streamline COW logic in do_swap_page()" and 3bff7e3f1f16 "mm/huge_memory:
//! streamline COW logic in do_huge_pmd_wp_page()" (5.18); hugetlb is still open (cow.c marks
//! its vmsplice cases xfail). Long-term pins became reliable with PageAnonExclusive (6c287605fd56
//! "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive", 5.19) and, across
//! fork, with early COW of pinned pages (70e806e4e645 "mm: Do early cow for pinned pages during
//! fork() for ptes", 5.9).
//!
//! Each probe runs in its own forked child (the runner's), and forks again as the scenario needs.
//! A backing the guest cannot produce is a skip with the reason, never a pass.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::{broken, skip, Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ForkBasic,
    VmspliceUnmapChild,
    VmspliceUnmapChildMprotect,
    VmspliceBeforeForkUnmapParent,
    VmspliceUnmapParent,
    IouringFixedRo,
    IouringFixedFork,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Base,
    SwappedBase,
    /// PMD-mapped 2 MiB THP.
    Thp,
    PteThp,
    SinglePteThp,
    SwappedThp,
    Hugetlb2m,
    Hugetlb1g,
    /// Multi-size THP of this many KiB (PTE-mapped; sysfs since 6.8).
    Mthp(usize),
}

/// The rules of one scenario for each kind of backing.
#[derive(Clone, Copy)]
pub struct Rules {
    base: Rule,
    swapped: Rule,
    thp: Rule,
    pte_thp: Rule,
    hugetlb: Rule,
    mthp: Rule,
}

const fn rule(expect: Expect, evidence: &'static str) -> Rule {
    Rule::new(expect, evidence).hazards(HAZARDS)
}

const fn since(major: u32, minor: u32, before: &'static Expect, after: &'static Expect) -> Expect {
    Expect::since(major, minor, before, after)
}

/// What a user must never rely on: another process's data through a pipe, or a pin that no
/// longer sees the memory it was registered for.
const HAZARDS: &[&str] = &["leak", "unreliable"];
const ISOLATED: &Expect = &Expect::is("isolated");
const LEAK: &Expect = &Expect::is("leak");

const FORK_RULES: Rules = {
    let r = rule(
        *ISOLATED,
        "fork(2): the child's memory is a copy; writes by one process do not affect the other \
         (copy-on-write)",
    );
    Rules {
        base: r,
        swapped: r,
        thp: r,
        pte_thp: r,
        hugetlb: r,
        mthp: r,
    }
};

const VMSPLICE_RULES: Rules = Rules {
    base: rule(
        since(5, 9, LEAK, ISOLATED),
        "CVE-2020-29374, fixed for base pages by 09854ba94c6a \"mm: do_wp_page() simplification\" (5.9)",
    ),
    swapped: rule(
        since(5, 18, LEAK, ISOLATED),
        "CVE-2020-29374 for swapped pages: c145e0b47c77 \"mm: streamline COW logic in do_swap_page()\" (5.18)",
    ),
    thp: rule(
        since(5, 18, LEAK, ISOLATED),
        "CVE-2020-29374 for PMD-mapped THP: 3bff7e3f1f16 \"mm/huge_memory: streamline COW logic in \
         do_huge_pmd_wp_page()\" (5.18)",
    ),
    pte_thp: rule(
        since(5, 9, LEAK, ISOLATED),
        "PTE-mapped THP subpages take do_wp_page(), copied on any extra reference since \
         09854ba94c6a \"mm: do_wp_page() simplification\" (5.9)",
    ),
    hugetlb: rule(
        *LEAK,
        "not fixed for hugetlb: tools/testing/selftests/mm/cow.c expects these vmsplice cases to \
         fail (xfail, \"harder to fix and nobody really cares\")",
    ),
    mthp: rule(
        *ISOLATED,
        "mTHP (6.8) arrived after every COW fix; cow.c expects isolation",
    ),
};

const IOURING_RO_RULES: Rules = {
    let r = rule(
        since(5, 19, &Expect::is("unreliable"), &Expect::is("reliable")),
        "a R/W long-term pin survives R/O mapping only since PageAnonExclusive: 6c287605fd56 \"mm: \
         remember exclusively mapped anonymous pages with PG_anon_exclusive\" (5.19); before, \
         do_wp_page copied any page with extra references (09854ba94c6a, 5.9), pinned ones too",
    );
    let by_mapcount = rule(
        Expect::is("reliable"),
        "PMD-mapped THP (do_huge_pmd_wp_page) and hugetlb (hugetlb_cow) write faults reuse a page \
         mapped once whatever its references, so the pin keeps seeing it; mTHP (6.8) postdates \
         PageAnonExclusive (6c287605fd56, 5.19)",
    );
    Rules {
        base: r,
        swapped: r,
        thp: by_mapcount,
        pte_thp: r,
        hugetlb: by_mapcount,
        mthp: by_mapcount,
    }
};

const IOURING_FORK_RULES: Rules = {
    let r = rule(
        since(5, 9, &Expect::is("unreliable"), &Expect::is("reliable")),
        "fork() copies pinned anonymous pages early since 70e806e4e645 \"mm: Do early cow for \
         pinned pages during fork() for ptes\" (5.9), so the pin keeps the parent's page",
    );
    Rules {
        hugetlb: rule(
            since(5, 11, &Expect::is("unreliable"), &Expect::is("reliable")),
            "hugetlb pages pinned at fork() are copied early since 4eae4efa2c29 \"hugetlb: do \
             early cow when page pinned on src mm\" (5.11)",
        ),
        ..Rules {
            base: r,
            swapped: r,
            thp: r,
            pte_thp: r,
            hugetlb: r,
            mthp: r,
        }
    }
};

/// When the child writes (the parent vmspliced and unmapped), the parent's vmsplice has already
/// faulted a swapped page back in, so the child's write meets a page the pipe still references:
/// the base-page rule applies to swapped backings too.
const VMSPLICE_PARENT_RULES: Rules = Rules {
    swapped: rule(
        since(5, 9, LEAK, ISOLATED),
        "the parent's vmsplice swaps the page back in before the child writes; a write to a page \
         with extra references copies since 09854ba94c6a \"mm: do_wp_page() simplification\" (5.9)",
    ),
    ..VMSPLICE_RULES
};

macro_rules! backings {
    ($id:literal, $desc:literal, $scen:ident, $rules:expr) => {
        &[
            backing!($id, $desc, $scen, "base", Base, $rules.base),
            backing!(
                $id,
                $desc,
                $scen,
                "swapped_base",
                SwappedBase,
                $rules.swapped
            ),
            backing!($id, $desc, $scen, "thp", Thp, $rules.thp),
            backing!($id, $desc, $scen, "pte_thp", PteThp, $rules.pte_thp),
            backing!(
                $id,
                $desc,
                $scen,
                "single_pte_thp",
                SinglePteThp,
                $rules.pte_thp
            ),
            backing!($id, $desc, $scen, "swapped_thp", SwappedThp, $rules.swapped),
            backing!($id, $desc, $scen, "hugetlb_2m", Hugetlb2m, $rules.hugetlb),
            backing!($id, $desc, $scen, "hugetlb_1g", Hugetlb1g, $rules.hugetlb),
            backing!($id, $desc, $scen, "mthp_16k", Mthp(16), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_32k", Mthp(32), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_64k", Mthp(64), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_128k", Mthp(128), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_256k", Mthp(256), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_512k", Mthp(512), $rules.mthp),
            backing!($id, $desc, $scen, "mthp_1024k", Mthp(1024), $rules.mthp),
        ]
    };
}

macro_rules! backing {
    ($id:literal, $desc:literal, $scen:ident, $variant:literal, $back:expr, $rule:expr) => {
        Check::kernel($id, $desc, $rule, |ctx| {
            #[allow(unused_imports)]
            use Backing::*;
            run(ctx, Scenario::$scen, $back)
        })
        .variant($variant)
    };
}

/// Every scenario over every backing.
const TABLES: &[&[Check]] = &[
    backings!("cow.fork_basic", "after fork(), each process's writes stay its own", ForkBasic, FORK_RULES),
    backings!(
        "cow.vmsplice_unmap_child",
        "child vmsplices the memory into a pipe and unmaps it; the parent writes; the child reads the pipe",
        VmspliceUnmapChild,
        VMSPLICE_RULES
    ),
    backings!(
        "cow.vmsplice_unmap_child_mprotect",
        "the same, with the parent doing mprotect(PROT_READ) then mprotect(PROT_READ|PROT_WRITE) before writing",
        VmspliceUnmapChildMprotect,
        VMSPLICE_RULES
    ),
    backings!(
        "cow.vmsplice_before_fork_unmap_parent",
        "parent vmsplices before fork() and unmaps after; the child writes; the parent reads the pipe",
        VmspliceBeforeForkUnmapParent,
        VMSPLICE_PARENT_RULES
    ),
    backings!(
        "cow.vmsplice_unmap_parent",
        "parent vmsplices after fork() and unmaps; the child writes; the parent reads the pipe",
        VmspliceUnmapParent,
        VMSPLICE_PARENT_RULES
    ),
    backings!(
        "cow.iouring_fixed_ro",
        "memory registered as an io_uring fixed buffer is mapped R/O and back, written, and written out through the buffer",
        IouringFixedRo,
        IOURING_RO_RULES
    ),
    backings!(
        "cow.iouring_fixed_fork",
        "memory registered as an io_uring fixed buffer; fork(); the parent writes it and writes it out through the buffer",
        IouringFixedFork,
        IOURING_FORK_RULES
    ),
];

/// Every scenario over every backing, flattened once.
pub fn checks() -> &'static [Check] {
    static ALL: std::sync::LazyLock<Vec<Check>> =
        std::sync::LazyLock::new(|| TABLES.iter().flat_map(|t| t.iter().copied()).collect());
    &ALL
}

const PMD: usize = 2 << 20;

/// The memory a scenario runs on; its whole reservation is unmapped on drop.
struct Region {
    reservation: *mut u8,
    reservation_len: usize,
    mem: *mut u8,
    size: usize,
}

impl Region {
    /// A short-lived view of the memory; writes go through `fill` only.
    fn bytes(&self) -> &[u8] {
        // SAFETY: mem..mem+size is mapped while the region lives (scenarios that unmap it stop
        // touching it), and no write happens while the view is held.
        unsafe { std::slice::from_raw_parts(self.mem, self.size) }
    }

    fn fill(&self, v: u8) {
        // SAFETY: mem..mem+size is mapped read/write while the region lives.
        unsafe { std::ptr::write_bytes(self.mem, v, self.size) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the reservation came from mmap.
        unsafe { libc::munmap(self.reservation.cast(), self.reservation_len) };
    }
}

fn mmap_anon(len: usize, extra_flags: i32) -> Result<*mut u8, String> {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(sys::io_error_name(&std::io::Error::last_os_error()))
    } else {
        Ok(p.cast())
    }
}

/// /proc/self/pagemap: (present, swapped) for the page at `addr`.
fn pagemap(addr: usize) -> (bool, bool) {
    let page = sys::page_size();
    let Ok(f) = File::open("/proc/self/pagemap") else {
        return (false, false);
    };
    let mut e = [0u8; 8];
    if f.read_exact_at(&mut e, (addr / page * 8) as u64).is_err() {
        return (false, false);
    }
    let v = u64::from_le_bytes(e);
    (v >> 63 & 1 == 1, v >> 62 & 1 == 1)
}

fn all_swapped(mem: *mut u8, size: usize) -> bool {
    (0..size)
        .step_by(sys::page_size())
        .all(|o| pagemap(mem as usize + o).1)
}

fn madvise(mem: *mut u8, len: usize, advice: i32) -> Result<(), String> {
    // SAFETY: advice on memory we mapped.
    if unsafe { libc::madvise(mem.cast(), len, advice) } != 0 {
        Err(sys::io_error_name(&std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn swap_out(mem: *mut u8, size: usize) -> Result<(), String> {
    madvise(mem, size, libc::MADV_PAGEOUT).map_err(|e| format!("MADV_PAGEOUT failed ({e})"))?;
    if all_swapped(mem, size) {
        Ok(())
    } else {
        Err("MADV_PAGEOUT did not swap the memory out (is swap on?)".into())
    }
}

/// Restores a THP sysfs setting when dropped.
struct SysfsRestore(Vec<(String, String)>);

impl Drop for SysfsRestore {
    fn drop(&mut self) {
        for (path, value) in &self.0 {
            let _ = std::fs::write(path, value);
        }
    }
}

fn selected(sysfs: &str) -> Option<String> {
    let s = std::fs::read_to_string(sysfs).ok()?;
    let start = s.find('[')? + 1;
    let end = s[start..].find(']')? + start;
    Some(s[start..end].to_string())
}

/// A THP of `thp` bytes at a `thp`-aligned address, populated; then shaped by `backing`.
fn thp_region(backing: Backing, thp: usize) -> Result<Region, String> {
    let page = sys::page_size();
    let reservation = mmap_anon(2 * thp, 0)?;
    let mem = ((reservation as usize + thp) & !(thp - 1)) as *mut u8;
    let mut region = Region {
        reservation,
        reservation_len: 2 * thp,
        mem,
        size: thp,
    };
    if thp == PMD {
        madvise(mem, thp, libc::MADV_HUGEPAGE)
            .map_err(|e| format!("MADV_HUGEPAGE failed ({e})"))?;
    }
    // SAFETY: mem is inside the reservation.
    unsafe { mem.write_volatile(1) };
    if !pagemap(mem as usize + thp - page).0 {
        return Err(format!("no THP of {} KiB was populated", thp >> 10));
    }
    region.fill(1);
    match backing {
        Backing::PteThp => {
            // Mapping one subpage R/O and back forces PTE mapping of the PMD THP.
            let sub = unsafe { mem.add(page) };
            // SAFETY: subpage inside the region.
            unsafe {
                libc::mprotect(sub.cast(), page, libc::PROT_READ);
                libc::mprotect(sub.cast(), page, libc::PROT_READ | libc::PROT_WRITE);
            }
        }
        Backing::SinglePteThp => {
            // SAFETY: inside the region.
            let rest = unsafe { mem.add(page) };
            madvise(rest, thp - page, libc::MADV_DONTNEED)?;
            region.size = page;
        }
        Backing::SwappedThp => swap_out(mem, thp)?,
        _ => {}
    }
    Ok(region)
}

fn hugetlb_region(size: usize, shift: i32) -> Result<Region, String> {
    let flags = libc::MAP_HUGETLB | (shift << libc::MAP_HUGE_SHIFT);
    let mem = mmap_anon(size, flags).map_err(|e| {
        format!(
            "no free {} MiB hugetlb page ({e}); guests reserve 2 MiB pages always, a 1 GiB page \
             with --memory 5120 or more",
            size >> 20
        )
    })?;
    let region = Region {
        reservation: mem,
        reservation_len: size,
        mem,
        size,
    };
    region.fill(1);
    // COW needs a second huge page, else the copy fails with SIGBUS (as cow.c notes).
    let spare = mmap_anon(size, flags).map_err(|e| {
        format!(
            "a second {} MiB hugetlb page is needed for COW ({e})",
            size >> 20
        )
    })?;
    // SAFETY: just mapped.
    unsafe { libc::munmap(spare.cast(), size) };
    Ok(region)
}

/// Builds the backing, or says why this guest cannot (a skip).
fn prepare(ctx: &Ctx, backing: Backing, restore: &mut SysfsRestore) -> Result<Region, String> {
    let page = sys::page_size();
    match backing {
        Backing::Base | Backing::SwappedBase => {
            let mem = mmap_anon(page, 0)?;
            let region = Region {
                reservation: mem,
                reservation_len: page,
                mem,
                size: page,
            };
            let _ = madvise(mem, page, libc::MADV_NOHUGEPAGE);
            region.fill(1);
            if backing == Backing::SwappedBase {
                swap_out(mem, page)?;
            }
            Ok(region)
        }
        Backing::Thp | Backing::PteThp | Backing::SinglePteThp | Backing::SwappedThp => {
            let enabled = "/sys/kernel/mm/transparent_hugepage/enabled";
            match selected(enabled).as_deref() {
                None => return Err("this kernel has no THP".into()),
                Some("never") => return Err("THP is disabled (enabled=never)".into()),
                _ => {}
            }
            thp_region(backing, PMD)
        }
        Backing::Hugetlb2m => hugetlb_region(PMD, 21),
        Backing::Hugetlb1g => hugetlb_region(1 << 30, 30),
        Backing::Mthp(kb) => {
            let dir = "/sys/kernel/mm/transparent_hugepage";
            let this = format!("{dir}/hugepages-{kb}kB/enabled");
            let pmd = format!("{dir}/hugepages-{}kB/enabled", PMD >> 10);
            let Some(old) = selected(&this) else {
                return Err(format!(
                    "no {kb} KiB mTHP on this kernel (mTHP sysfs since 6.8)"
                ));
            };
            if !ctx.owns_machine {
                return Err("choosing mTHP sizes changes machine-wide settings: guest only".into());
            }
            restore.0.push((this.clone(), old));
            if let Some(p) = selected(&pmd) {
                restore.0.push((pmd.clone(), p));
                let _ = std::fs::write(&pmd, "never");
            }
            std::fs::write(&this, "always").map_err(|e| format!("enabling {kb} KiB mTHP: {e}"))?;
            thp_region(backing, kb << 10)
        }
    }
}

pub fn run(ctx: &Ctx, scenario: Scenario, backing: Backing) -> Result<Observation, Stop> {
    let mut restore = SysfsRestore(Vec::new());
    let region = match prepare(ctx, backing, &mut restore) {
        Ok(r) => r,
        Err(why) => return Err(skip(why)),
    };
    match scenario {
        Scenario::ForkBasic => cow_in_parent(&region, false, false),
        Scenario::VmspliceUnmapChild => cow_in_parent(&region, true, false),
        Scenario::VmspliceUnmapChildMprotect => cow_in_parent(&region, true, true),
        Scenario::VmspliceBeforeForkUnmapParent => vmsplice_in_parent(&region, true),
        Scenario::VmspliceUnmapParent => vmsplice_in_parent(&region, false),
        Scenario::IouringFixedRo => iouring(ctx, &region, false),
        Scenario::IouringFixedFork => iouring(ctx, &region, true),
    }
}

/// Two one-way pipes: the child says it is ready, the parent says it is done.
struct Handshake {
    child_rx: File,
    child_tx: File,
    parent_rx: File,
    parent_tx: File,
}

impl Handshake {
    fn new() -> nix::Result<Handshake> {
        let (a, b) = nix::unistd::pipe()?;
        let (c, d) = nix::unistd::pipe()?;
        Ok(Handshake {
            child_rx: a.into(),
            child_tx: b.into(),
            parent_rx: c.into(),
            parent_tx: d.into(),
        })
    }
    fn signal(mut f: &File) {
        let _ = f.write_all(b"0");
    }
    fn wait(mut f: &File) {
        let mut b = [0u8; 1];
        let _ = f.read_exact(&mut b);
    }
}

/// vmsplice all of `mem` it takes (a pipe holds 16 pages by default); bytes taken.
fn splice_in(mem: &[u8], pipe_tx: &File) -> Result<usize, nix::errno::Errno> {
    let iov = [libc::iovec {
        iov_base: mem.as_ptr() as *mut _,
        iov_len: mem.len(),
    }];
    sys::vmsplice_raw(pipe_tx.as_raw_fd(), &iov, 0)
}

fn read_n(mut f: &File, n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    f.read_exact(&mut v)?;
    Ok(v)
}

/// The child's exit code is its comparison: 0 same bytes, 1 different, anything else a failure
/// of the probe itself (an error, not an observation).
fn verdict(status: nix::Result<WaitStatus>, what: &str) -> Result<Observation, Stop> {
    match status {
        Ok(WaitStatus::Exited(_, 0)) => {
            Ok(Observation::saw("isolated", format!("{what}: old bytes")))
        }
        Ok(WaitStatus::Exited(_, 1)) => Ok(Observation::saw(
            "leak",
            format!("{what}: saw the other process's write"),
        )),
        other => Err(broken(format!(
            "{what}: the child could not compare ({other:?})"
        ))),
    }
}

/// The child keeps a view of the memory (its mapping, or a vmsplice'd pipe it then unmaps),
/// the parent writes, the child compares.
fn cow_in_parent(region: &Region, vmsplice: bool, mprotect: bool) -> Result<Observation, Stop> {
    let hs = Handshake::new()?;
    // SAFETY: the harness forks single-threaded; the child only uses its own memory and pipes.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = (|| -> Result<bool, String> {
                let old = region.bytes().to_vec();
                if !vmsplice {
                    Handshake::signal(&hs.child_tx);
                    Handshake::wait(&hs.parent_rx);
                    return Ok(region.bytes() == &old[..]);
                }
                let (rx, tx) = nix::unistd::pipe().map_err(|e| e.to_string())?;
                let (rx, tx) = (File::from(rx), File::from(tx));
                let n = splice_in(region.bytes(), &tx).map_err(|e| e.to_string())?;
                // SAFETY: unmapping our view; `mem` is not touched again in this process.
                unsafe { libc::munmap(region.mem.cast(), region.size) };
                Handshake::signal(&hs.child_tx);
                Handshake::wait(&hs.parent_rx);
                let got = read_n(&rx, n).map_err(|e| e.to_string())?;
                Ok(got == old[..n])
            })();
            // SAFETY: leave the child without running the parent's destructors.
            unsafe {
                libc::_exit(match code {
                    Ok(true) => 0,
                    Ok(false) => 1,
                    Err(_) => 2,
                })
            }
        }
        ForkResult::Parent { child } => {
            Handshake::wait(&hs.child_rx);
            if mprotect {
                // SAFETY: our own mapping.
                unsafe {
                    libc::mprotect(region.mem.cast(), region.size, libc::PROT_READ);
                    libc::mprotect(
                        region.mem.cast(),
                        region.size,
                        libc::PROT_READ | libc::PROT_WRITE,
                    );
                }
            }
            region.fill(0xff);
            Handshake::signal(&hs.parent_tx);
            verdict(
                waitpid(child, None),
                "the child's view after the parent wrote",
            )
        }
    }
}

/// The parent vmsplices (before or after fork), unmaps, the child writes, the parent reads the
/// pipe.
fn vmsplice_in_parent(region: &Region, before_fork: bool) -> Result<Observation, Stop> {
    let hs = Handshake::new()?;
    let old = region.bytes().to_vec();
    let (rx, tx) = nix::unistd::pipe()?;
    let (rx, tx) = (File::from(rx), File::from(tx));
    let mut n = 0;
    if before_fork {
        n = match splice_in(region.bytes(), &tx) {
            Ok(n) => n,
            Err(e) => return Ok(Observation::saw(sys::errno_name(e), "vmsplice failed")),
        };
    }
    // SAFETY: as in cow_in_parent.
    match unsafe { fork() }? {
        ForkResult::Child => {
            Handshake::signal(&hs.child_tx);
            Handshake::wait(&hs.parent_rx);
            region.fill(0xff);
            // SAFETY: leave the child quietly.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            if !before_fork {
                n = match splice_in(region.bytes(), &tx) {
                    Ok(n) => n,
                    Err(e) => {
                        Handshake::signal(&hs.parent_tx);
                        let _ = waitpid(child, None);
                        return Ok(Observation::saw(sys::errno_name(e), "vmsplice failed"));
                    }
                };
            }
            Handshake::wait(&hs.child_rx);
            // SAFETY: our own mapping; not touched again here.
            unsafe { libc::munmap(region.mem.cast(), region.size) };
            Handshake::signal(&hs.parent_tx);
            let _ = waitpid(child, None);
            let got = read_n(&rx, n)?;
            Ok(if got == old[..n] {
                Observation::saw("isolated", format!("the pipe kept the old {n} bytes"))
            } else {
                Observation::saw(
                    "leak",
                    format!("the pipe showed the child's write ({n} bytes)"),
                )
            })
        }
    }
}

/// A long-term R/W pin (io_uring fixed buffer) must keep seeing the memory the process writes.
fn iouring(ctx: &Ctx, region: &Region, use_fork: bool) -> Result<Observation, Stop> {
    use io_uring::{opcode, types, IoUring};
    let mut ring = match IoUring::new(1) {
        Ok(r) => r,
        Err(e) => {
            return Err(skip(format!(
                "io_uring unavailable ({})",
                sys::io_error_name(&e)
            )))
        }
    };
    let iov = [libc::iovec {
        iov_base: region.mem.cast(),
        iov_len: region.size,
    }];
    // SAFETY: the buffer stays mapped until the ring is dropped at the end of this function.
    if let Err(e) = unsafe { ring.submitter().register_buffers(&iov) } {
        return Err(skip(format!(
            "io_uring_register_buffers failed ({})",
            sys::io_error_name(&e)
        )));
    }
    let hs = Handshake::new()?;
    let mut child = None;
    if use_fork {
        // SAFETY: as in cow_in_parent.
        match unsafe { fork() }? {
            ForkResult::Child => {
                Handshake::signal(&hs.child_tx);
                Handshake::wait(&hs.parent_rx);
                // SAFETY: leave the child quietly.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child: pid } => {
                Handshake::wait(&hs.child_rx);
                child = Some(pid);
            }
        }
    } else {
        // R/O and back, with soft-dirty cleared so mprotect cannot map the page writable again
        // without a write fault (as cow.c does).
        // SAFETY: our own mapping.
        unsafe { libc::mprotect(region.mem.cast(), region.size, libc::PROT_READ) };
        let _ = std::fs::write("/proc/self/clear_refs", "4");
        // SAFETY: our own mapping.
        unsafe {
            libc::mprotect(
                region.mem.cast(),
                region.size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
    }
    region.fill(0xff);
    let path = ctx.dir.join("cow.iouring");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    // The scratch tmpfs is small: check the first 4 MiB of what the pin sees (all of a base page
    // or THP, the head of a hugetlb page: one page either way). One write_fixed may move less
    // than asked, so go on from where it stopped, still through the registered buffer.
    let span = region.size.min(4 << 20);
    let mut done = 0usize;
    let mut failure = None;
    while done < span {
        let left = span - done;
        // SAFETY: inside the registered buffer.
        let addr = unsafe { region.mem.add(done) };
        let sqe = opcode::WriteFixed::new(types::Fd(file.as_raw_fd()), addr, left as u32, 0)
            .offset(done as u64)
            .build();
        // SAFETY: the buffer and file outlive the submission, which we wait for.
        let pushed = unsafe { ring.submission().push(&sqe) };
        let res = pushed
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|_| Ok(ring.submit_and_wait(1)?))
            .and_then(|_| {
                ring.completion()
                    .next()
                    .map(|c| c.result())
                    .ok_or_else(|| anyhow::anyhow!("no completion"))
            });
        match res {
            Ok(n) if n > 0 => done += n as usize,
            Ok(n) => {
                failure = Some(anyhow::anyhow!(
                    "write_fixed returned {n} after {done} bytes"
                ));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(pid) = child {
        Handshake::signal(&hs.parent_tx);
        let _ = waitpid(pid, None);
    }
    if let Some(e) = failure {
        return Err(Stop::Broken(e));
    }
    let written = read_n(&file, span)?;
    let _ = std::fs::remove_file(&path);
    Ok(if written == region.bytes()[..span] {
        Observation::saw(
            "reliable",
            "the fixed buffer wrote out what the process stored",
        )
    } else {
        Observation::saw(
            "unreliable",
            "the fixed buffer wrote out a page the process no longer maps",
        )
    })
}
