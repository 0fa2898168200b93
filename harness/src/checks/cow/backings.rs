//! The memory a scenario runs on, built and verified the way cow.c's `run_with_*` functions do.
//! A backing this machine cannot produce is a skip with the reason; a system call that must
//! succeed and fails is a broken probe. Nothing here changes machine-wide settings: the THP
//! sizes a variant needs are declared as [`Setting`]s and written by the runner.

use std::sync::LazyLock;

use nix::errno::Errno;

use super::super::{broken, skip, Ctx, OrSkip, Setting, Stop};
use crate::sys::{self, Mapping};

/// The value every backing is filled with before a scenario starts (as cow.c's `memset(mem, 1)`).
pub const FILL: u8 = 1;

const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

/// How a THP is mapped when the scenario starts: cow.c's `enum thp_run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// PMD-mapped (PMD size only).
    Pmd,
    /// PMD-mapped, then swapped out (PMD size only).
    SwappedPmd,
    /// PTE-mapped: one subpage mapped R/O and back (a no-op for mTHP, PTE-mapped anyway).
    Pte,
    /// PTE-mapped, then swapped out.
    SwappedPte,
    /// Every PTE but the first zapped: one PTE mapping one subpage.
    SinglePte,
    /// The same, swapped out.
    SinglePteSwapped,
    /// The upper half mremap()'ed elsewhere; the scenario runs on the lower half.
    PartialMremap,
    /// The first page shared with a child (the rest MADV_DONTFORK) that has exited.
    PartialShared,
}

impl Layout {
    pub const ALL: [Layout; 8] = [
        Layout::Pmd,
        Layout::SwappedPmd,
        Layout::Pte,
        Layout::SwappedPte,
        Layout::SinglePte,
        Layout::SinglePteSwapped,
        Layout::PartialMremap,
        Layout::PartialShared,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Layout::Pmd => "thp",
            Layout::SwappedPmd => "swapped_thp",
            Layout::Pte => "pte_thp",
            Layout::SwappedPte => "swapped_pte_thp",
            Layout::SinglePte => "single_pte_thp",
            Layout::SinglePteSwapped => "single_pte_swapped_thp",
            Layout::PartialMremap => "mremap_thp",
            Layout::PartialShared => "shared_thp",
        }
    }

    /// Only a PMD-size THP can be PMD-mapped (cow.c runs these for the PMD size only).
    pub const fn pmd_only(self) -> bool {
        matches!(self, Layout::Pmd | Layout::SwappedPmd)
    }

    pub const fn swapped(self) -> bool {
        matches!(
            self,
            Layout::SwappedPmd | Layout::SwappedPte | Layout::SinglePteSwapped
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Layout::Pmd => "PMD-mapped",
            Layout::SwappedPmd => "PMD-mapped then swapped out",
            Layout::Pte => "PTE-mapped",
            Layout::SwappedPte => "PTE-mapped then swapped out",
            Layout::SinglePte => "single PTE of",
            Layout::SinglePteSwapped => "single swapped-out PTE of",
            Layout::PartialMremap => "lower half, upper half mremap()'ed, of",
            Layout::PartialShared => "partially shared (first page only, with an exited child)",
        }
    }
}

/// The anonymous memory of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Base,
    SwappedBase,
    /// A THP of the PMD size (`kb` None, read at run time) or an mTHP of `kb` KiB.
    Thp {
        layout: Layout,
        kb: Option<usize>,
    },
    /// A hugetlb page of this many MiB (2 or 1024).
    Hugetlb {
        mb: usize,
    },
}

impl Backing {
    /// Whether building it pushes pages out to swap (MADV_PAGEOUT).
    pub const fn swapped(self) -> bool {
        match self {
            Backing::SwappedBase => true,
            Backing::Thp { layout, .. } => layout.swapped(),
            Backing::Base | Backing::Hugetlb { .. } => false,
        }
    }
}

/// The non-anonymous memory of `cow.file_basic`: cow.c's `run_with_zeropage` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileBacking {
    Zeropage,
    HugeZeropage,
    Memfd,
    Tmpfile,
    MemfdHugetlb { mb: usize },
}

/// A named backing with the machine-wide settings it needs.
#[derive(Debug)]
pub struct Variant<B> {
    pub name: String,
    pub backing: B,
    pub settings: &'static [Setting],
}

/// The mTHP sizes an x86_64 kernel with 4 KiB pages can have below the PMD size (anonymous
/// orders 2..8); the PMD size itself is the plain `<layout>` variant.
pub const MTHP_KB: [usize; 7] = [16, 32, 64, 128, 256, 512, 1024];

/// The one mTHP size of the quick profile: the size arm64's contiguous-PTE mappings use and
/// the one most often enabled; each further size costs about 0.8 s of TCG guest time on a
/// kernel that has mTHP (6.8+), so the others run with `--profile full`.
pub const QUICK_MTHP_KB: usize = 64;

/// The PMD-size THP's control, `never`, for each PMD size a guest of zcmatrix's may have: 2 MiB
/// (4 KiB pages; ppc64le's radix MMU with 64 KiB pages), 16 MiB (ppc64le's hash MMU), 32 MiB
/// (arm64 with 16 KiB pages), 512 MiB (arm64 with 64 KiB pages). Only the one present is written
/// (on arm64 with 16 KiB pages 2 MiB and 16 MiB are mTHP sizes, off by default: `never` keeps them
/// so).
macro_rules! pmd_never {
    ($($kb:literal),*) => {
        [$(Setting {
            path: concat!("/sys/kernel/mm/transparent_hugepage/hugepages-", $kb, "kB/enabled"),
            value: "never",
            why: "the PMD-size THP must be off so that the fault picks the mTHP size",
            if_present: true,
        }),*]
    };
}

/// The settings of an mTHP variant: that size `always`, and the PMD size `never` so that the
/// fault picks the smaller size (as cow.c's `thp_push_settings`).
macro_rules! mthp_settings {
    ($kb:literal) => {{
        let [a, b, c, d] = pmd_never!(2048, 16384, 32768, 524288);
        &[
            Setting {
                path: concat!(
                    "/sys/kernel/mm/transparent_hugepage/hugepages-",
                    $kb,
                    "kB/enabled"
                ),
                value: "always",
                why: concat!(
                    "no ",
                    $kb,
                    " KiB mTHP on this kernel (mTHP sysfs since 6.8)"
                ),
                if_present: false,
            },
            a,
            b,
            c,
            d,
        ]
    }};
}

const MTHP_SETTINGS: [&[Setting]; 7] = [
    mthp_settings!(16),
    mthp_settings!(32),
    mthp_settings!(64),
    mthp_settings!(128),
    mthp_settings!(256),
    mthp_settings!(512),
    mthp_settings!(1024),
];

const HUGE_ZEROPAGE: &[Setting] = &[Setting {
    path: "/sys/kernel/mm/transparent_hugepage/use_zero_page",
    value: "1",
    why: "a read fault maps the huge zeropage only with use_zero_page=1",
    if_present: false,
}];

/// Every anonymous backing, in report order: base pages, the PMD-size THP layouts, hugetlb,
/// then each mTHP size's layouts.
pub static ANON: LazyLock<Vec<Variant<Backing>>> = LazyLock::new(|| {
    let plain = |name: &str, backing| Variant {
        name: name.to_string(),
        backing,
        settings: &[],
    };
    let mut v = vec![
        plain("base", Backing::Base),
        plain("swapped_base", Backing::SwappedBase),
    ];
    v.extend(Layout::ALL.iter().map(|l| {
        plain(
            l.name(),
            Backing::Thp {
                layout: *l,
                kb: None,
            },
        )
    }));
    v.push(plain("hugetlb_2m", Backing::Hugetlb { mb: 2 }));
    v.push(plain("hugetlb_1g", Backing::Hugetlb { mb: 1024 }));
    for (kb, settings) in MTHP_KB.iter().zip(MTHP_SETTINGS) {
        for l in Layout::ALL.iter().filter(|l| !l.pmd_only()) {
            v.push(Variant {
                name: format!("{}_{kb}k", l.name()),
                backing: Backing::Thp {
                    layout: *l,
                    kb: Some(*kb),
                },
                settings,
            });
        }
    }
    v
});

pub static FILE: LazyLock<Vec<Variant<FileBacking>>> = LazyLock::new(|| {
    let v = |name: &str, backing, settings| Variant {
        name: name.to_string(),
        backing,
        settings,
    };
    vec![
        v("zeropage", FileBacking::Zeropage, &[]),
        v("huge_zeropage", FileBacking::HugeZeropage, HUGE_ZEROPAGE),
        v("memfd", FileBacking::Memfd, &[]),
        v("tmpfile", FileBacking::Tmpfile, &[]),
        v("memfd_hugetlb_2m", FileBacking::MemfdHugetlb { mb: 2 }, &[]),
        v(
            "memfd_hugetlb_1g",
            FileBacking::MemfdHugetlb { mb: 1024 },
            &[],
        ),
    ]
});

/// The variant a probe runs, from [`Ctx::variant`].
pub fn lookup<B>(table: &'static [Variant<B>], ctx: &Ctx) -> Result<&'static Variant<B>, Stop> {
    let name = ctx
        .variant
        .ok_or_else(|| broken("a cow check without a variant"))?;
    table
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| broken(format!("unknown cow variant {name}")))
}

/// The memory a scenario runs on, `mem..mem + size`; every mapping it was built from is
/// unmapped on drop.
pub struct Region {
    pub mem: *mut u8,
    pub size: usize,
    /// What it is, for the detail of a result ("PTE-mapped 2048 KiB THP").
    pub what: String,
    _maps: Vec<Mapping>,
}

impl Region {
    pub(super) fn new(maps: Vec<Mapping>, mem: *mut u8, size: usize, what: String) -> Region {
        Region {
            mem,
            size,
            what,
            _maps: maps,
        }
    }

    /// Whether every byte reads as `v`. Reading faults the memory in, as cow.c's `memcpy` of
    /// the old contents does (which swaps a swapped-out page back in, read-only).
    pub fn all(&self, v: u8) -> bool {
        // SAFETY: mem..mem+size is mapped readable while the region lives and is not written
        // while the slice exists.
        let bytes = unsafe { std::slice::from_raw_parts(self.mem, self.size) };
        all_equal(bytes, v)
    }

    pub fn fill(&self, v: u8) {
        // SAFETY: mem..mem+size is mapped read/write while the region lives.
        unsafe { std::ptr::write_bytes(self.mem, v, self.size) }
    }

    /// Removes the region from this process's page tables (cow.c's munmap), keeping the
    /// address range reserved until the region drops.
    pub fn unmap(&self) -> Result<(), Errno> {
        // SAFETY: the range is ours; callers stop touching it.
        unsafe { sys::unmap_keep_reserved(self.mem, self.size) }
    }
}

/// Whether every byte of `bytes` is `v`. Compared a page at a time with memcmp: a byte loop
/// over 2 MiB costs tens of milliseconds in a TCG guest, and every scenario compares several
/// times.
pub fn all_equal(bytes: &[u8], v: u8) -> bool {
    let page = [v; 4096];
    bytes.chunks(page.len()).all(|c| c == &page[..c.len()])
}

/// Builds and verifies the backing.
pub fn prepare(backing: Backing) -> Result<Region, Stop> {
    match backing {
        Backing::Base => base(false),
        Backing::SwappedBase => base(true),
        Backing::Thp { layout, kb: None } => {
            let pmd = pmd_thp_usable()?;
            thp(layout, pmd, pmd)
        }
        Backing::Thp {
            layout,
            kb: Some(kb),
        } => {
            let pmd = sys::pmd_size().or_skip("this kernel has no THP")?;
            mthp_fits(kb, pmd, sys::page_size()).map_err(skip)?;
            thp(layout, kb << 10, pmd)
        }
        Backing::Hugetlb { mb } => hugetlb(mb << 20),
    }
}

/// The PMD sizes whose THP the mTHP variants' settings turn off (the `pmd_never!` list): 2 MiB
/// (4 KiB pages; ppc64le's radix MMU with 64 KiB pages), 16 MiB (ppc64le's hash MMU), 32 MiB
/// (arm64 with 16 KiB pages) and 512 MiB (arm64 with 64 KiB pages).
const PMD_SIZES_KB: [usize; 4] = [2048, 16384, 32768, 524288];

/// Whether a `kb` KiB mTHP variant can run with this PMD size and page size, two separate
/// facts (ppc64le's radix MMU has 2 MiB PMDs with 64 KiB pages): its settings switch the PMD
/// size's THP off, so the PMD must be one they name; and an mTHP is a folio of several pages,
/// so the size must be more than one page and less than the PMD.
fn mthp_fits(kb: usize, pmd: usize, page: usize) -> Result<(), String> {
    if !PMD_SIZES_KB.contains(&(pmd >> 10)) {
        return Err(format!(
            "the mTHP variants' settings turn off PMD sizes of 2, 16, 32 and 512 MiB; this \
             machine's is {} KiB",
            pmd >> 10
        ));
    }
    if kb << 10 <= page || kb << 10 >= pmd {
        return Err(format!(
            "a {kb} KiB folio is no multi-page THP below the PMD size with {} KiB pages",
            page >> 10
        ));
    }
    Ok(())
}

/// The PMD size, when a MADV_HUGEPAGE area gets PMD-size THPs here: the global `enabled` is not
/// `never` (guests set `madvise` at boot) and, on kernels with per-size controls (6.8+), the
/// PMD size's own is not `never` either.
fn pmd_thp_usable() -> Result<usize, Stop> {
    let pmd = sys::pmd_size().or_skip("this kernel has no THP")?;
    let global = selected(&format!("{THP_DIR}/enabled")).or_skip("this kernel has no THP")?;
    if global == "never" {
        return Err(skip(
            "THP is disabled (transparent_hugepage/enabled is never)",
        ));
    }
    let per_size = format!("{THP_DIR}/hugepages-{}kB/enabled", pmd >> 10);
    if let Some(v) = selected(&per_size) {
        if v == "never" {
            return Err(skip(format!(
                "the PMD-size THP is disabled ({per_size} is never)"
            )));
        }
    }
    Ok(pmd)
}

/// The bracketed choice of a sysfs file such as `always [madvise] never`.
fn selected(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let start = s.find('[')? + 1;
    let end = s[start..].find(']')? + start;
    Some(s[start..end].to_string())
}

fn base(swapout: bool) -> Result<Region, Stop> {
    let page = sys::page_size();
    let m = Mapping::anon(page, RW, 0).map_err(|e| broken(format!("mmap: {e}")))?;
    // Ignored where the kernel has no THP at all (EINVAL), as cow.c does.
    match m.advise(libc::MADV_NOHUGEPAGE) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(broken(format!("MADV_NOHUGEPAGE: {e}"))),
    }
    let what = if swapout {
        "swapped-out base page"
    } else {
        "base page"
    };
    let mem = m.as_ptr();
    let r = Region::new(vec![m], mem, page, what.into());
    r.fill(FILL);
    if swapout {
        swap_out(&r)?;
    }
    Ok(r)
}

/// MADV_PAGEOUT, verified page by page in pagemap.
fn swap_out(r: &Region) -> Result<(), Stop> {
    // SAFETY: the region's own memory; its contents survive in swap.
    match unsafe { sys::madvise_range(r.mem, r.size, libc::MADV_PAGEOUT) } {
        Ok(()) => {}
        Err(Errno::EINVAL) => return Err(skip("no MADV_PAGEOUT on this kernel (since 5.4)")),
        Err(e) => return Err(broken(format!("MADV_PAGEOUT: {e}"))),
    }
    let entries = sys::pagemap_entries(r.mem as usize, r.size)?;
    let swapped = entries
        .iter()
        .filter(|e| sys::page_info(**e).swapped)
        .count();
    if swapped != entries.len() {
        return Err(skip(format!(
            "MADV_PAGEOUT swapped out {swapped} of {} pages (is swap on?)",
            entries.len()
        )));
    }
    Ok(())
}

fn present(addr: usize) -> Result<bool, Stop> {
    Ok(sys::page_info(sys::pagemap_entries(addr, 1)?[0]).present)
}

/// The PMD-mapped THP bytes (smaps AnonHugePages) of the mapping holding `addr`.
fn pmd_mapped_kb(addr: *mut u8) -> Result<u64, Stop> {
    sys::smaps_kb(addr as usize, "AnonHugePages")?
        .ok_or_else(|| broken("no AnonHugePages line for the THP's mapping in /proc/self/smaps"))
}

/// Whether `addr` maps the first page of a compound page, when this process may see page
/// frames and their flags (root); `None` when it may not.
fn compound_head(addr: *mut u8) -> Option<bool> {
    let entry = sys::pagemap_entries(addr as usize, 1).ok()?[0];
    let flags = sys::kpageflags(sys::page_frame(entry)?).ok()?;
    Some(flags >> sys::KPF_COMPOUND_HEAD & 1 == 1)
}

/// cow.c's `do_run_with_thp`: a THP of `size` bytes at a `size`-aligned address, populated,
/// verified, then shaped by `layout`.
fn thp(layout: Layout, size: usize, pmd: usize) -> Result<Region, Stop> {
    let page = sys::page_size();
    let is_pmd = size == pmd;
    if layout.pmd_only() && !is_pmd {
        return Err(broken("a PMD-mapped layout of an mTHP size"));
    }
    // Twice the size, for alignment.
    let reservation = Mapping::anon(2 * size, RW, 0).map_err(|e| broken(format!("mmap: {e}")))?;
    let start = reservation.addr();
    let mem = ((start + size) & !(size - 1)) as *mut u8;
    // SAFETY: mem..mem+size lies inside the reservation.
    unsafe { sys::madvise_range(mem, size, libc::MADV_HUGEPAGE) }
        .map_err(|e| broken(format!("MADV_HUGEPAGE: {e}")))?;
    // Touch the first subpage: a THP maps the last one too.
    // SAFETY: inside the reservation, mapped read/write.
    unsafe { mem.write_volatile(FILL) };
    let kb = size >> 10;
    if !present(mem as usize + size - page)? {
        return Err(skip(format!(
            "did not get a {kb} KiB THP populated (fragmented memory, or THP off)"
        )));
    }
    // A larger folio would have populated a neighbour inside the reservation too.
    let before = mem as usize - page;
    let after = mem as usize + size;
    if (before >= start && present(before)?) || (after < start + 2 * size && present(after)?) {
        return Err(skip(format!(
            "the fault mapped a THP larger than {kb} KiB (another size is enabled)"
        )));
    }
    let mut maps = vec![reservation];
    let mut r = Region::new(Vec::new(), mem, size, String::new());
    r.fill(FILL);
    if is_pmd && pmd_mapped_kb(mem)? < kb as u64 {
        return Err(skip(format!(
            "the {kb} KiB THP is not PMD-mapped (smaps AnonHugePages)"
        )));
    }
    match layout {
        Layout::Pmd | Layout::SwappedPmd => {}
        Layout::Pte | Layout::SwappedPte => {
            // Mapping one subpage R/O splits the PMD mapping; a no-op for an mTHP.
            // SAFETY: a subpage of the region; nothing touches it meanwhile.
            unsafe {
                sys::mprotect_range(mem.add(page), page, libc::PROT_READ)
                    .map_err(|e| broken(format!("mprotect(PROT_READ) of one subpage: {e}")))?;
                sys::mprotect_range(mem.add(page), page, RW)
                    .map_err(|e| broken(format!("mprotect(PROT_READ|PROT_WRITE): {e}")))?;
            }
        }
        Layout::SinglePte | Layout::SinglePteSwapped => {
            // SAFETY: the rest of the region, discarded on purpose.
            unsafe { sys::madvise_range(mem.add(page), size - page, libc::MADV_DONTNEED) }
                .map_err(|e| broken(format!("MADV_DONTNEED: {e}")))?;
            if present(mem as usize + page)? {
                return Err(broken("MADV_DONTNEED left the second subpage mapped"));
            }
            r.size = page;
        }
        Layout::PartialMremap => {
            let half = size / 2;
            let target = Mapping::anon(half, libc::PROT_NONE, 0)
                .map_err(|e| broken(format!("mmap: {e}")))?;
            // SAFETY: the upper half of the region onto a fresh mapping of ours; the target
            // Mapping owns (and unmaps) the moved pages.
            unsafe { sys::mremap_fixed(mem.add(half), half, target.as_ptr()) }
                .map_err(|e| broken(format!("mremap: {e}")))?;
            if !present(target.addr())? {
                return Err(broken(
                    "the mremap()'ed half is not mapped at its new address",
                ));
            }
            maps.push(target);
            r.size = half;
        }
        Layout::PartialShared => {
            let rest = size - page;
            // SAFETY: advice on the region's own memory.
            unsafe { sys::madvise_range(mem.add(page), rest, libc::MADV_DONTFORK) }
                .map_err(|e| broken(format!("MADV_DONTFORK: {e}")))?;
            match sys::in_child(|| 0)? {
                sys::ChildEnd::Exited(0) => {}
                other => return Err(broken(format!("the sharing child ended {other:?}"))),
            }
            // SAFETY: as above.
            unsafe { sys::madvise_range(mem.add(page), rest, libc::MADV_DOFORK) }
                .map_err(|e| broken(format!("MADV_DOFORK: {e}")))?;
        }
    }
    if is_pmd && !layout.pmd_only() && pmd_mapped_kb(mem)? != 0 {
        return Err(skip(format!(
            "the {kb} KiB THP is still PMD-mapped after {} (smaps AnonHugePages)",
            layout.describe()
        )));
    }
    // Where page flags are visible (root, i.e. in a guest), the memory must still be a THP,
    // not split into base pages on the way (checked before any swap-out).
    if compound_head(mem) == Some(false) {
        return Err(skip(format!(
            "the {kb} KiB THP was split into base pages ({})",
            layout.describe()
        )));
    }
    let kind = if is_pmd { "THP" } else { "mTHP" };
    r.what = format!("{} {kb} KiB {kind}", layout.describe());
    r._maps = maps;
    if layout.swapped() {
        swap_out(&r)?;
    }
    Ok(r)
}

/// cow.c's `run_with_hugetlb`: one huge page populated, and proof that a second one is free
/// (COW needs it, else SIGBUS).
fn hugetlb(size: usize) -> Result<Region, Stop> {
    let shift = size.trailing_zeros() as i32;
    let flags = libc::MAP_HUGETLB | (shift << libc::MAP_HUGE_SHIFT);
    let mb = size >> 20;
    let m = Mapping::anon(size, RW, flags).map_err(|e| {
        skip(format!(
            "no free {mb} MiB hugetlb page ({e}); guests reserve 2 MiB pages for the checks \
             that map them, 1 GiB pages with --memory 5120 or more"
        ))
    })?;
    let mem = m.as_ptr();
    let r = Region::new(vec![m], mem, size, format!("{mb} MiB hugetlb page"));
    r.fill(FILL);
    let spare = Mapping::anon(size, RW, flags).map_err(|e| {
        skip(format!(
            "a second free {mb} MiB hugetlb page is needed for COW ({e})"
        ))
    })?;
    drop(spare);
    Ok(r)
}

/// The two views of `cow.file_basic`: a private writable mapping, and another mapping of the
/// same page (a shared mapping of the file, or a second private mapping of the zeropage) that
/// must never see the private mapping's writes.
pub struct FileRegion {
    pub private: Region,
    pub other: Region,
}

/// Builds the views as cow.c's `run_with_zeropage`, `run_with_huge_zeropage`, `run_with_memfd`,
/// `run_with_tmpfile` and `run_with_memfd_hugetlb` do, both faulted in by a read. The file
/// content is zeros (fallocate), the zeropage's too.
pub fn prepare_file(ctx: &Ctx, backing: FileBacking) -> Result<FileRegion, Stop> {
    let page = sys::page_size();
    match backing {
        FileBacking::Zeropage => {
            let m = Mapping::anon(page, RW, 0).map_err(|e| broken(format!("mmap: {e}")))?;
            let s = Mapping::anon(page, libc::PROT_READ, 0)
                .map_err(|e| broken(format!("mmap: {e}")))?;
            let (mp, sp) = (m.as_ptr(), s.as_ptr());
            let r = FileRegion {
                private: Region::new(vec![m], mp, page, "shared zeropage".into()),
                other: Region::new(vec![s], sp, page, "a second private mapping".into()),
            };
            same_page(&r, "the shared zeropage")?;
            Ok(r)
        }
        FileBacking::HugeZeropage => {
            let pmd = pmd_thp_usable()?;
            let aligned = || -> Result<(Mapping, *mut u8), Stop> {
                let m = Mapping::anon(2 * pmd, RW, 0).map_err(|e| broken(format!("mmap: {e}")))?;
                let mem = ((m.addr() + pmd) & !(pmd - 1)) as *mut u8;
                // SAFETY: inside the mapping just made.
                unsafe { sys::madvise_range(mem, pmd, libc::MADV_HUGEPAGE) }
                    .map_err(|e| broken(format!("MADV_HUGEPAGE: {e}")))?;
                Ok((m, mem))
            };
            let (m, mp) = aligned()?;
            let (s, sp) = aligned()?;
            // cow.c maps the second view read-only.
            // SAFETY: our own mapping, not written through.
            unsafe { sys::mprotect_range(sp, pmd, libc::PROT_READ) }
                .map_err(|e| broken(format!("mprotect(PROT_READ): {e}")))?;
            let kb = pmd >> 10;
            let r = FileRegion {
                private: Region::new(vec![m], mp, pmd, format!("{kb} KiB huge zeropage")),
                other: Region::new(vec![s], sp, pmd, "a second private mapping".into()),
            };
            read_both(&r);
            // A read fault that maps the huge zeropage populates every subpage.
            if !present(mp as usize + page)? || !present(sp as usize + page)? {
                return Err(skip("a read fault did not map the huge zeropage"));
            }
            same_page(&r, "the huge zeropage")?;
            Ok(r)
        }
        FileBacking::Memfd => {
            let f =
                sys::memfd(c"zcmatrix-cow", 0).map_err(|e| broken(format!("memfd_create: {e}")))?;
            file_views(&f, page, "memfd page".into())
        }
        FileBacking::Tmpfile => {
            // tmpfile(3): a file nobody else can open, in the scratch directory.
            let path = ctx.dir.join("cow.file_basic.tmpfile");
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            file_views(
                &f,
                page,
                format!("page of an unlinked file in {}", ctx.dir.display()),
            )
        }
        FileBacking::MemfdHugetlb { mb } => {
            let size = mb << 20;
            let huge = if mb == 2 {
                libc::MFD_HUGE_2MB
            } else {
                libc::MFD_HUGE_1GB
            };
            let f = sys::memfd(c"zcmatrix-cow", libc::MFD_HUGETLB | huge)
                .map_err(|e| skip(format!("memfd_create(MFD_HUGETLB, {mb} MiB): {e}")))?;
            sys::allocate(&f, size).map_err(|e| {
                skip(format!(
                    "no free {mb} MiB hugetlb page for the file ({e}); guests reserve 2 MiB pages \
                     for the checks that map them, 1 GiB pages with --memory 5120 or more"
                ))
            })?;
            // The private mapping reserves the page its first write copies into.
            let m = Mapping::private(&f, size).map_err(|e| {
                skip(format!(
                    "no second free {mb} MiB hugetlb page for the private copy ({e})"
                ))
            })?;
            let s = shared_ro(&f, size)?;
            let (mp, sp) = (m.as_ptr(), s.as_ptr());
            let r = FileRegion {
                private: Region::new(vec![m], mp, size, format!("{mb} MiB hugetlb memfd page")),
                other: Region::new(vec![s], sp, size, "a shared mapping of the file".into()),
            };
            read_both(&r);
            Ok(r)
        }
    }
}

fn shared_ro(f: &std::fs::File, len: usize) -> Result<Mapping, Stop> {
    use std::os::fd::AsRawFd;
    Mapping::new(len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)
        .map_err(|e| broken(format!("mmap(MAP_SHARED): {e}")))
}

fn file_views(f: &std::fs::File, page: usize, what: String) -> Result<FileRegion, Stop> {
    sys::allocate(f, page).map_err(|e| broken(format!("fallocate: {e}")))?;
    let m = Mapping::private(f, page).map_err(|e| broken(format!("mmap(MAP_PRIVATE): {e}")))?;
    let s = shared_ro(f, page)?;
    let (mp, sp) = (m.as_ptr(), s.as_ptr());
    let r = FileRegion {
        private: Region::new(vec![m], mp, page, what),
        other: Region::new(vec![s], sp, page, "a shared mapping of the file".into()),
    };
    read_both(&r);
    if !present(mp as usize)? || !present(sp as usize)? {
        return Err(broken("a read did not map the file page"));
    }
    Ok(r)
}

/// Faults both views in with a read, as cow.c does.
fn read_both(r: &FileRegion) {
    // SAFETY: both are live readable mappings.
    unsafe {
        r.private.mem.read_volatile();
        r.other.mem.read_volatile();
    }
}

/// Both views map the same (zero) page: checked where page frames are visible (root).
fn same_page(r: &FileRegion, what: &str) -> Result<(), Stop> {
    read_both(r);
    let a = sys::pagemap_entries(r.private.mem as usize, 1)?[0];
    let b = sys::pagemap_entries(r.other.mem as usize, 1)?[0];
    if !sys::page_info(a).present || !sys::page_info(b).present {
        return Err(broken(format!("a read did not map {what}")));
    }
    match (sys::page_frame(a), sys::page_frame(b)) {
        (Some(x), Some(y)) if x != y => Err(skip(format!(
            "a read fault did not map {what} (page frames {x:#x} and {y:#x} differ)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PMD size and page size are separate facts: ppc64le's 64 KiB pages come with a 2 MiB
    /// PMD, under which a 64 KiB "mTHP" is a single page; arm64's 16 KiB pages with a 32 MiB
    /// PMD, which the settings do not name.
    #[test]
    fn an_mthp_needs_a_pmd_size_the_settings_name_and_more_than_one_page() {
        assert_eq!(mthp_fits(64, 2 << 20, 4096), Ok(()));
        assert_eq!(mthp_fits(1024, 2 << 20, 4096), Ok(()));
        let one_page = mthp_fits(64, 2 << 20, 65536).unwrap_err();
        assert!(one_page.contains("64 KiB pages"), "{one_page}");
        assert_eq!(mthp_fits(128, 2 << 20, 65536), Ok(()));
        // arm64's 16 KiB pages: a 32 MiB PMD, which the settings turn off too.
        assert_eq!(mthp_fits(64, 32 << 20, 16384), Ok(()));
        let pmd = mthp_fits(64, 1 << 30, 65536).unwrap_err();
        assert!(pmd.contains("1048576 KiB"), "{pmd}");
    }
}
