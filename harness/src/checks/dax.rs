//! DAX: files on persistent memory that loads and stores reach without the page cache. Is DAX
//! really on (statx, never assumed from the mount), does MAP_SYNC give a mapping whose stores
//! are the file, and what direct I/O means where there is no page cache to bypass.
//!
//! The `ext4-dax` and `xfs-dax` targets are those filesystems on a synchronous pmem region
//! (x86_64: the kernel's legacy pmem, `memmap=`; arm64: a device-tree `pmem-region`) mounted
//! `-o dax=always`; every other target answers the same questions as a file without DAX.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::{common, skip, Check, Ctx, Expect, Observation, Rule, Stop, FAULT_NOISE};
use crate::sys::{self, AlignedBuf, Mapping};

const CHECKS: &[Check] = &[
    Check::fs(
        "dax.mounted",
        "statx(2) STATX_ATTR_DAX of a new file: is DAX really on (the mount options ride along \
         in the detail)",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4-dax", Expect::is("on")),
                    ("xfs-dax", Expect::is("on")),
                ],
                otherwise: &Expect::is("off"),
            },
            "statx(2) STATX_ATTR_DAX (712b2698e4c0 \"fs/stat: Define DAX statx attribute\", \
             5.8): the file is in the DAX (cpu direct access) state. filesystems/dax.rst: with \
             -o dax=always (02beb2686ff9 \"fs/xfs: Make DAX mount option a tri-state\", \
             9cb20f94afcd \"fs/ext4: Make DAX mount option a tri-state\", 5.8-5.9; -o dax \
             before) on a device that supports DAX every regular file is DAX; a device that \
             cannot do DAX makes the mount fail or fall back, so the attribute, not the mount \
             option, is the answer. No other target is DAX",
        ),
        mounted,
    ),
    Check::fs(
        "dax.map_sync",
        "mmap(MAP_SHARED_VALIDATE|MAP_SYNC) of a file, a store through it, read() back: `ok` \
         when the mapping was granted and read() sees the store, else the errno",
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
            "mmap(2) MAP_SYNC (since 4.15, b6fb293f2497 \"mm: Define MAP_SYNC and VM_SYNC \
             flags\"): only with MAP_SHARED_VALIDATE and only for DAX files, whose stores then \
             reach persistent memory with the metadata to find them written before the fault \
             returns; EOPNOTSUPP for any other file, and on a DAX device whose region is not \
             synchronous (virtio-pmem; daxdev_mapping_supported, 5.3). The matrix's DAX \
             targets are synchronous pmem regions (x86_64's legacy memmap= pmem, arm64's \
             device-tree pmem-region, which of_pmem registers without ND_REGION_ASYNC); natively a DAX file whose MAP_SYNC is refused \
             is the ext4-dax-async or xfs-dax-async target, where EOPNOTSUPP is right",
        ),
        map_sync,
    ),
    Check::fs(
        "dax.dio",
        "an O_DIRECT read of 100 bytes at file offset 1 into a buffer 1 byte past a page \
         boundary: `ok` with the right bytes, or the errno",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4-dax", Expect::is("ok")),
                    ("xfs-dax", Expect::is("ok")),
                    ("ext4", Expect::is("EINVAL")),
                    ("xfs", Expect::is("EINVAL")),
                    ("overlay", Expect::is("EINVAL")),
                ],
                otherwise: &Expect::Measure,
            },
            "filesystems/dax.rst: a DAX file has no page cache, reads and writes copy between \
             the user buffer and persistent memory (dax_iomap_rw), at byte granularity; ext4 \
             and xfs route DAX files there before any O_DIRECT path (ext4_file_read_iter: \
             IS_DAX first; xfs_file_read_iter: xfs_file_dax_read), so the block alignment \
             open(2) NOTES ask of O_DIRECT does not apply: `ok`. On ext4 and xfs without DAX \
             (and overlay, which passes O_DIRECT to ext4) it is EINVAL; elsewhere a \
             measurement (dio.misaligned_* has the rules)",
        ),
        dio,
    )
    .per_block_size(),
    Check::fs(
        "dax.fault_scan",
        "a 4 MiB MAP_SHARED read-only mapping of a file just written, one byte read per page: \
         the page faults the scan takes",
        Rule::measure(
            "measures the faults (major + minor) of reading every page of a 4 MiB mapping: on a \
             DAX file each fault maps persistent memory itself, a page or, where a PMD fits \
             the extent and the mapping, 2 MiB at once (filesystems/dax.rst; dax_iomap_pmd_fault, \
             no page cache), elsewhere the cached pages with fault-around (16 pages a fault, \
             mmap.fault_around) or a large folio: DAX against the page cache, per kernel",
        )
        .tolerance(FAULT_NOISE),
        fault_scan,
    ),
];

/// The family's checks.
pub fn checks() -> &'static [Check] {
    CHECKS
}

/// `on` or `off`: the attribute itself, whatever stx_attributes_mask says (712b2698e4c0 set the
/// attribute without adding it to the mask, which later kernels fixed).
fn dax_state(f: &std::fs::File) -> Result<String, Stop> {
    let on = sys::dax_attr(f).map_err(|e| Stop::Broken(anyhow::anyhow!("statx: {e}")))?;
    Ok(if on == Some(true) { "on" } else { "off" }.into())
}

/// The mount options of the mount at `dir`, from /proc/self/mountinfo, for the detail.
fn mount_options(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = dir.to_string_lossy();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            if f.get(4) != Some(&want.as_ref()) {
                return None;
            }
            Some(format!(
                "{} {} {}",
                f.get(sep + 1)?,
                f.get(5)?,
                f.get(sep + 3)?
            ))
        })
        .next_back()
        .unwrap_or_else(|| "not a mount point".into())
}

fn mounted(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, _) = common::fixture(ctx, "dax.mounted", 4096, 0xda)?;
    Ok(Observation::saw(
        dax_state(&f)?,
        format!("mount: {}", mount_options(&ctx.dir)),
    ))
}

fn map_sync(ctx: &Ctx) -> Result<Observation, Stop> {
    let page = sys::page_size();
    let (f, _) = common::fixture(ctx, "dax.map_sync", page, 0xdb)?;
    let flags = libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let m = match Mapping::new(page, rw, flags, f.as_raw_fd(), 0) {
        Ok(m) => m,
        Err(e) => return Ok(common::errno(e, "MAP_SYNC mapping")),
    };
    m.write(7, 0x5a);
    let back = sys::read_at(&f, 7, 1)?;
    Ok(if back[0] == 0x5a {
        Observation::saw("ok", "MAP_SYNC granted; read() sees the store at once")
    } else {
        Observation::saw(
            "incoherent",
            "MAP_SYNC granted, but read() missed the store",
        )
    })
}

fn fault_scan(ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 4 << 20;
    let (f, _) = common::fixture(ctx, "dax.fault_scan", LEN, 0xdd)?;
    let m = Mapping::new(LEN, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)?;
    // Warm the getrusage path, so its own first-touch faults are not counted as the scan's.
    std::hint::black_box(sys::faults());
    let (maj0, min0) = sys::faults();
    let mut sum = 0u8;
    for i in (0..LEN).step_by(sys::page_size()) {
        sum = sum.wrapping_add(m.read(i));
    }
    std::hint::black_box(sum);
    let (maj1, min1) = sys::faults();
    let _ = std::fs::remove_file(ctx.dir.join("dax.fault_scan"));
    // Unnamed, the value itself: `report diff` pairs FAULT_NOISE measures by name with older
    // reports', which had it so.
    Ok(Observation::number(
        ((maj1 - maj0) + (min1 - min0)) as f64,
        "faults",
        format!(
            "major={} minor={} for {} pages; mapping {}",
            maj1 - maj0,
            min1 - min0,
            LEN / sys::page_size(),
            if m.addr() % (2 << 20) == 0 {
                "2 MiB-aligned"
            } else {
                "not 2 MiB-aligned"
            }
        ),
    ))
}

fn dio(ctx: &Ctx) -> Result<Observation, Stop> {
    let (_, data) = common::fixture(ctx, "dax.dio", 8192, 0xdc)?;
    let f = common::direct_or_skip(&ctx.dir.join("dax.dio"), false, 0)?;
    if ctx.fs.as_deref() != Some("tmpfs") {
        // A cold file, so that a buffered fall-back cannot pass for direct access.
        sys::evict(&f).map_err(|e| skip(format!("POSIX_FADV_DONTNEED: {e}")))?;
    }
    let mut buf = AlignedBuf::new(2 * 4096, 4096);
    let slice = &mut buf.as_mut_slice()[1..101];
    Ok(match f.read_at(slice, 1) {
        Ok(100) if slice[..] == data[1..101] => {
            Observation::saw("ok", "100 bytes at offset 1, data verified")
        }
        Ok(n) => Observation::saw("wrong-data", format!("{n} bytes, not the file's")),
        Err(e) => Observation::saw(sys::io_error_name(&e), format!("direct read: {e}")),
    })
}
