//! What each scenario should observe on each kind of backing, and where that is written down.
//!
//! CVE-2020-29374 (Jann Horn): a vmsplice'd page stayed readable through the pipe after another
//! process wrote to it. Fixed for base pages by 09854ba94c6a "mm: do_wp_page() simplification"
//! (5.9, copy whenever the page has other references), for swapped and PMD-mapped THP pages by
//! c145e0b47c77 "mm: streamline COW logic in do_swap_page()" and 3bff7e3f1f16 "mm/huge_memory:
//! streamline COW logic in do_huge_pmd_wp_page()" (5.18); hugetlb is still open (cow.c marks its
//! vmsplice cases xfail). Long-term pins became reliable with PageAnonExclusive (6c287605fd56
//! "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive", 5.19) and, across
//! fork, with early COW of pinned pages (70e806e4e645 "mm: Do early cow for pinned pages during
//! fork() for ptes", 5.9; 4eae4efa2c29 for hugetlb, 5.11).
//!
//! The backings fall into classes by the fault path a write takes:
//! - `base`: a base page, do_wp_page();
//! - `swapped`: every swapped-out layout (base page, PMD- or PTE-mapped THP, a single PTE of a
//!   THP). These kernels swap in base pages only from a disk (THP swap-in is for
//!   SWP_SYNCHRONOUS_IO devices, 6.12+), so the first write after swap-in meets do_swap_page();
//! - `thp`: a PMD-mapped THP, do_huge_pmd_wp_page();
//! - `pte_thp`: a PTE-mapped PMD-size THP, however it came to be PTE-mapped (mprotect of one
//!   subpage, a single remaining PTE, a partially mremap()'ed or partially shared THP): the
//!   write meets one subpage of a compound page through do_wp_page(), which since 09854ba94c6a
//!   copies whenever the page has any reference besides the faulting mapping;
//! - `hugetlb`: hugetlb_cow()/hugetlb_wp();
//! - `mthp`: any layout of an mTHP size, which exists only since 6.8, after every fix above;
//!   cow.c expects every anonymous mTHP case to pass.

use super::super::{Expect, Pred, Rule};
use super::scenarios::Scenario;

/// What a user must never rely on: another process's data through a pipe, or a pin that no
/// longer sees the memory it was registered for.
pub const HAZARDS: &[&str] = &["leak", "unreliable"];

const ISOLATED: &Expect = &Expect::is("isolated");
const LEAK: &Expect = &Expect::is("leak");
const RELIABLE: &Expect = &Expect::is("reliable");
const UNRELIABLE: &Expect = &Expect::is("unreliable");

/// The fault path a write takes on a backing (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Base,
    Swapped,
    Thp,
    PteThp,
    Hugetlb,
    Mthp,
}

/// The rules of one scenario for each class.
#[derive(Clone, Copy)]
struct Rules {
    base: Rule,
    swapped: Rule,
    thp: Rule,
    pte_thp: Rule,
    hugetlb: Rule,
    mthp: Rule,
}

impl Rules {
    const fn all(r: Rule) -> Rules {
        Rules {
            base: r,
            swapped: r,
            thp: r,
            pte_thp: r,
            hugetlb: r,
            mthp: r,
        }
    }

    const fn of(&self, c: Class) -> Rule {
        match c {
            Class::Base => self.base,
            Class::Swapped => self.swapped,
            Class::Thp => self.thp,
            Class::PteThp => self.pte_thp,
            Class::Hugetlb => self.hugetlb,
            Class::Mthp => self.mthp,
        }
    }
}

const fn rule(expect: Expect, evidence: &'static str) -> Rule {
    Rule::new(expect, evidence).hazards(HAZARDS)
}

const fn since(major: u32, minor: u32, before: &'static Expect, after: &'static Expect) -> Expect {
    Expect::since(major, minor, before, after)
}

/// The rule of `scenario` on a backing of class `class`.
pub const fn of(scenario: Scenario, class: Class) -> Rule {
    let rules = match scenario {
        Scenario::ForkBasic => FORK,
        Scenario::ForkBasicMprotect => FORK_MPROTECT,
        Scenario::VmspliceUnmapChild | Scenario::VmspliceUnmapChildMprotect => VMSPLICE_CHILD,
        Scenario::VmspliceBeforeForkUnmapParent | Scenario::VmspliceUnmapParent => VMSPLICE_PARENT,
        Scenario::IouringFixedRo => IOURING_RO,
        Scenario::IouringFixedFork => IOURING_FORK,
    };
    rules.of(class)
}

const FORK: Rules = Rules::all(rule(
    *ISOLATED,
    "fork(2): the child's memory is a copy; writes by one process do not affect the other \
     (copy-on-write)",
));

const FORK_MPROTECT: Rules = Rules::all(rule(
    *ISOLATED,
    "fork(2) copy-on-write; mprotect(2) R/O and back must not map a COW-shared page writable: \
     since 64fe24a3e05e \"mm/mprotect: try avoiding write faults for exclusive anonymous pages \
     when changing protection\" (6.0) it does so only for pages known exclusive \
     (PageAnonExclusive), before it never did for private memory",
));

/// The child vmsplices and unmaps, the parent writes: the parent's write fault decides.
const VMSPLICE_CHILD: Rules = Rules {
    base: rule(
        since(5, 9, LEAK, ISOLATED),
        "CVE-2020-29374, fixed for base pages by 09854ba94c6a \"mm: do_wp_page() simplification\" \
         (5.9)",
    ),
    swapped: rule(
        since(5, 18, LEAK, ISOLATED),
        "CVE-2020-29374 for swapped-out memory (base pages, and THPs, which come back from a disk \
         as base pages): do_swap_page() reused a page mapped and swapped once whatever the pipe \
         held until c145e0b47c77 \"mm: streamline COW logic in do_swap_page()\" (5.18)",
    ),
    thp: rule(
        since(5, 18, LEAK, ISOLATED),
        "CVE-2020-29374 for PMD-mapped THP: 3bff7e3f1f16 \"mm/huge_memory: streamline COW logic \
         in do_huge_pmd_wp_page()\" (5.18)",
    ),
    pte_thp: rule(
        since(5, 9, LEAK, ISOLATED),
        "PTE-mapped THP subpages (mprotect()-split, single PTE, partially mremap()'ed or shared) \
         take do_wp_page(), copied on any extra reference since 09854ba94c6a \"mm: do_wp_page() \
         simplification\" (5.9)",
    ),
    hugetlb: rule(
        Expect::Always(Pred::OneOf(&["isolated", "leak"])),
        "not fixed for hugetlb: tools/testing/selftests/mm/cow.c passes these vmsplice cases when \
         nothing leaks and marks a leak xfail (\"harder to fix and nobody really cares\"), so \
         isolation is right and a leak a known hazard. Which one a kernel shows depends on how \
         the architecture maps the huge page (a PMD on x86_64; contiguous PTEs for 2 MiB with \
         arm64's 16 KiB pages)",
    ),
    mthp: rule(
        *ISOLATED,
        "mTHP (6.8) arrived after every COW fix; cow.c expects isolation",
    ),
};

/// The parent vmsplices and unmaps, the child writes. cow.c (and this probe) reads the whole
/// memory in the parent before fork() to keep the old contents, which swaps a swapped-out page
/// back in: fork() then shares a present page, and the child's write meets do_wp_page().
const VMSPLICE_PARENT: Rules = Rules {
    swapped: rule(
        since(5, 9, LEAK, ISOLATED),
        "the parent reads the memory before fork() (cow.c keeps the old contents), swapping it \
         back in, so the child's write meets a present page with the pipe's reference: copied \
         since 09854ba94c6a \"mm: do_wp_page() simplification\" (5.9)",
    ),
    ..VMSPLICE_CHILD
};

const IOURING_RO: Rules = {
    let r = rule(
        since(5, 19, UNRELIABLE, RELIABLE),
        "a R/W long-term pin survives R/O mapping only since PageAnonExclusive: 6c287605fd56 \"mm: \
         remember exclusively mapped anonymous pages with PG_anon_exclusive\" (5.19); before, \
         do_wp_page copied any page with extra references (09854ba94c6a, 5.9), pinned ones too. \
         Swapped-out memory is swapped in as base pages by the pin; PTE-mapped THP subpages take \
         do_wp_page too",
    );
    let by_mapcount = rule(
        *RELIABLE,
        "PMD-mapped THP (do_huge_pmd_wp_page) and hugetlb (hugetlb_cow) write faults reuse a page \
         mapped once whatever its references, so the pin keeps seeing it; mTHP (6.8) postdates \
         PageAnonExclusive (6c287605fd56, 5.19)",
    );
    Rules {
        thp: by_mapcount,
        hugetlb: by_mapcount,
        mthp: by_mapcount,
        ..Rules::all(r)
    }
};

const IOURING_FORK: Rules = Rules {
    hugetlb: rule(
        since(5, 11, UNRELIABLE, RELIABLE),
        "hugetlb pages pinned at fork() are copied early since 4eae4efa2c29 \"hugetlb: do early \
         cow when page pinned on src mm\" (5.11)",
    ),
    ..Rules::all(rule(
        since(5, 9, UNRELIABLE, RELIABLE),
        "fork() copies pinned anonymous pages early since 70e806e4e645 \"mm: Do early cow for \
         pinned pages during fork() for ptes\" (5.9; a pinned PMD-mapped THP is split to PTEs \
         first), so the pin keeps the parent's page; the pin swaps swapped-out memory in first",
    ))
};

/// `cow.file_basic`: cow.c's non-anonymous "Basic COW".
pub const FILE_BASIC: Rule = rule(
    *ISOLATED,
    "mmap(2) MAP_PRIVATE: updates to the mapping are not visible to other processes mapping the \
     same file (or the zeropage), and fork(2) gives the child a copy-on-write view",
);
