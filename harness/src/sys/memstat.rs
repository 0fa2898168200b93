//! What the kernel says about this process's memory: pagemap entries, page flags, smaps
//! fields, fault counts and /proc/vmstat counters.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::page_size;

pub use super::abi::KPF_COMPOUND_HEAD;

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

/// (major, minor) page faults of this process so far.
pub fn faults() -> (i64, i64) {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| (u.major_page_faults(), u.minor_page_faults()))
        .unwrap_or((-1, -1))
}

/// A counter of /proc/vmstat (`thp_file_fallback`, ...), `None` where this kernel has none.
pub fn vmstat(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmstat_reads_counters_and_knows_unknown_names() {
        assert!(vmstat("nr_free_pages").is_some());
        assert_eq!(vmstat("nr_free"), None);
        assert_eq!(vmstat("zcmatrix_no_such_counter"), None);
    }
}
