//! Direct I/O (O_DIRECT): whether it opens, what alignment buffer, offset and length need, what
//! happens when they are wrong (EINVAL, or a silent fall-back to buffered I/O), and whether direct
//! and buffered I/O stay coherent.
//!
//! Where O_DIRECT cannot be opened (tmpfs before 6.6) every probe that needs it is a skip naming
//! the errno; `dio.open` is the check that records the refusal itself.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;

use super::{broken, common, skip, Check, Ctx, Expect, Measure, Observation, Pred, Rule, Stop};
use crate::sys::{self, AlignedBuf};

/// One page, and the unit every probe transfers unless it varies the length.
const BLOCK: usize = 4096;

/// Alignments probed, smallest first: 1, 2, 4, … 4096.
const ALIGNMENTS: [usize; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

const EVIDENCE_ALIGN: &str = "open(2) NOTES, O_DIRECT: buffer, offset and length must be aligned \
    to the logical block size; since 6.0 the buffer needs only the device's DMA alignment \
    (b1a000d3b8ec \"block: relax direct io memory alignment\", bf8d08532bc1 \"iomap: add support \
    for dma aligned direct-io\"; virtio-blk's is 512); btrfs falls back to buffered I/O for \
    unaligned requests (btrfs_direct_read → check_direct_read); tmpfs copies through the page \
    cache (e88e0d366f9c \"tmpfs: trivial support for direct IO\", 6.6); overlay passes it to \
    its upper ext4 file (d1d04ef8572b \"ovl: stack file ops\"); DAX files (ext4-dax, xfs-dax) \
    copy at byte granularity with no alignment at all (dax_iomap_rw, filesystems/dax.rst)";

/// ext4 and xfs before 6.0: everything at the logical block size; since: memory at 512.
const MEM_ALIGN_BLOCKDEV: Expect =
    Expect::since(6, 0, &Expect::Always(Pred::Lbs), &Expect::is("512"));

/// Filesystems without a rule of their own (a host directory in a native run): some alignment
/// up to a page works and returns the right bytes; `none` or `wrong-data` fail.
const UP_TO_A_PAGE: Expect = Expect::Always(Pred::Between(1, BLOCK as i64));

/// Offset and length: the logical block size on ext4 and xfs; any on btrfs (buffered
/// fall-back) and tmpfs (page cache).
const BLOCK_ALIGNED_ON_BLOCK_FS: Expect = Expect::ByFs {
    cases: &[
        ("ext4", Expect::Always(Pred::Lbs)),
        ("xfs", Expect::Always(Pred::Lbs)),
        ("btrfs", Expect::is("1")),
        ("tmpfs", Expect::is("1")),
        ("overlay", Expect::Always(Pred::Lbs)),
        ("ext4-dax", Expect::is("1")),
        ("xfs-dax", Expect::is("1")),
    ],
    otherwise: &UP_TO_A_PAGE,
};

/// A misaligned request: refused on ext4 and xfs; served by a silent buffered read on btrfs;
/// served from the page cache on tmpfs, which is all its direct I/O ever is; refused or served
/// (never wrong data) anywhere else.
const MISALIGNED: Rule = Rule::new(
    Expect::ByFs {
        cases: &[
            ("ext4", Expect::is("EINVAL")),
            ("xfs", Expect::is("EINVAL")),
            ("btrfs", Expect::is("buffered")),
            ("tmpfs", Expect::is("ok")),
            ("overlay", Expect::is("EINVAL")),
            ("ext4-dax", Expect::is("ok")),
            ("xfs-dax", Expect::is("ok")),
        ],
        otherwise: &Expect::Always(Pred::OneOf(&["EINVAL", "ok", "buffered"])),
    },
    EVIDENCE_MISALIGNED,
)
.hazards(&["buffered"]);

const EVIDENCE_MISALIGNED: &str = "open(2) NOTES, O_DIRECT: I/O is done directly to/from \
    user-space buffers and misaligned requests may fail with EINVAL, as on ext4 and xfs; btrfs \
    serves them with a buffered read instead (btrfs_direct_read: check_direct_read fails, \
    filemap_read runs), which leaves the range in the page cache O_DIRECT promises to bypass: \
    `buffered`, a hazard, observed with mincore(2) after POSIX_FADV_DONTNEED emptied the cache; \
    tmpfs direct I/O is its page cache by design (e88e0d366f9c \"tmpfs: trivial support for \
    direct IO\"). overlay passes direct I/O to its upper ext4 file (d1d04ef8572b \"ovl: stack \
    file ops\"); a DAX file has no page cache and ext4 and xfs serve it at byte granularity \
    before any O_DIRECT path (dax_iomap_rw; filesystems/dax.rst), so nothing is misaligned \
    there";

/// STATX_DIOALIGN since 6.1 on ext4 and xfs: the offset alignment is the logical block size;
/// the memory alignment is the device's DMA alignment, at most a page.
const STATX_SINCE_6_1: Expect = Expect::since(
    6,
    1,
    &Expect::is("unsupported"),
    &Expect::Always(Pred::Fields(&[
        ("mem", Pred::Between(1, BLOCK as i64)),
        ("offset", Pred::Lbs),
    ])),
);

pub const CHECKS: &[Check] = &[
    Check::fs(
        "dio.open",
        "open(O_CREAT|O_RDWR|O_DIRECT) of a new file",
        Rule::new(
            common::DIRECT_OPEN,
            "open(2) EINVAL: filesystem does not support O_DIRECT; tmpfs gained it in 6.6 with \
             e88e0d366f9c \"tmpfs: trivial support for direct IO\"",
        ),
        open,
    ),
    Check::fs(
        "dio.statx_dioalign",
        "statx(STATX_DIOALIGN) on a regular file",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4", STATX_SINCE_6_1),
                    ("xfs", STATX_SINCE_6_1),
                    ("overlay", STATX_SINCE_6_1),
                    ("ext4-dax", STATX_SINCE_6_1),
                    ("xfs-dax", STATX_SINCE_6_1),
                ],
                otherwise: &Expect::is("unsupported"),
            },
            "statx(2) STATX_DIOALIGN (since Linux 6.1): 825cf206ed51 \"statx: add direct I/O \
             alignment information\", with \"ext4: support STATX_DIOALIGN\" and \"xfs: support \
             STATX_DIOALIGN\" in the same release; btrfs and tmpfs do not fill it. overlay \
             asks its real file with the caller's mask (ovl_getattr → vfs_getattr), so ext4 \
             answers; on DAX ext4_getattr and xfs_vn_getattr report the block device's \
             alignments as for any file (stricter than DAX needs, which dio.statx_agrees \
             accepts)",
        ),
        statx_dioalign,
    ),
    Check::fs(
        "dio.min_mem_align",
        "smallest buffer alignment for which an aligned 4096-byte direct read works",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4", MEM_ALIGN_BLOCKDEV),
                    ("xfs", MEM_ALIGN_BLOCKDEV),
                    ("btrfs", Expect::is("1")),
                    ("tmpfs", Expect::is("1")),
                    ("overlay", MEM_ALIGN_BLOCKDEV),
                    ("ext4-dax", Expect::is("1")),
                    ("xfs-dax", Expect::is("1")),
                ],
                otherwise: &UP_TO_A_PAGE,
            },
            EVIDENCE_ALIGN,
        ),
        min_mem_align,
    ),
    Check::fs(
        "dio.min_offset_align",
        "smallest file-offset alignment a direct read accepts (page-aligned buffer)",
        Rule::new(BLOCK_ALIGNED_ON_BLOCK_FS, EVIDENCE_ALIGN),
        min_offset_align,
    ),
    Check::fs(
        "dio.min_len_align",
        "smallest length granularity a direct read accepts",
        Rule::new(BLOCK_ALIGNED_ON_BLOCK_FS, EVIDENCE_ALIGN),
        min_len_align,
    ),
    Check::fs(
        "dio.misaligned_buffer",
        "direct read of 4096 bytes into a buffer 1 byte past a page boundary, from a cold file",
        MISALIGNED,
        misaligned_buffer,
    ),
    Check::fs(
        "dio.buffer_4k_aligned",
        "direct read of 4096 bytes into a buffer 4096 bytes past a page boundary (page-aligned \
         only with 4 KiB pages), from a cold file",
        Rule::new(
            Expect::is("ok"),
            "open(2) NOTES, O_DIRECT: since 2.6 alignment to the logical block size of the \
             storage suffices, and the page size plays no part: a 4 KiB-aligned buffer reads \
             directly on a 16 KiB or 64 KiB kernel too (the block layer's DMA alignment, \
             512 by default, is the memory rule; dio.min_mem_align measures it)",
        )
        .hazards(&["buffered"]),
        buffer_4k_aligned,
    ),
    Check::fs(
        "dio.misaligned_offset",
        "direct read of 4096 bytes at file offset 1, from a cold file",
        MISALIGNED,
        misaligned_offset,
    ),
    Check::fs(
        "dio.statx_agrees",
        "every alignment statx(STATX_DIOALIGN) promises works when probed",
        Rule::new(
            Expect::is("agrees"),
            "statx(2): stx_dio_mem_align and stx_dio_offset_align are the alignments direct \
             I/O requires; a promise the kernel must keep",
        ),
        statx_agrees,
    ),
    Check::fs(
        "dio.read_eof",
        "aligned 8192-byte direct read of a 4196-byte file: the count returned",
        Rule::new(
            Expect::is("4196"),
            "read(2): a short count at end of file is not an error; direct reads stop at i_size \
             like buffered ones (iomap_dio_rw, blockdev_direct_IO)",
        ),
        read_eof,
    ),
    Check::fs(
        "dio.write_extend",
        "aligned direct write of 4096 bytes at offset 8192 of an empty file",
        Rule::new(
            Expect::is("12288"),
            "pwrite(2)/lseek(2): a write past end of file extends it and the gap reads as \
             zeros, direct or not",
        ),
        write_extend,
    ),
    Check::fs(
        "dio.append",
        "two aligned O_DIRECT|O_APPEND writes land after the existing 4096 bytes",
        Rule::new(
            Expect::is("ok"),
            "open(2) O_APPEND: the offset is set to end of file before each write, for direct \
             writes too",
        ),
        append,
    ),
    Check::fs(
        "dio.sees_dirty_cache",
        "a direct read after a buffered write left dirty in the page cache",
        Rule::new(
            Expect::is("new"),
            "direct reads write back dirty page-cache pages of their range first \
             (filemap_write_and_wait_range in __iomap_dio_rw and btrfs; open(2) NOTES warn \
             against mixing, the kernel keeps them coherent for this case)",
        ),
        sees_dirty_cache,
    ),
    Check::fs(
        "dio.sees_dirty_mmap",
        "a direct read after a write through a MAP_SHARED mapping (not msync'd)",
        Rule::new(
            Expect::is("new"),
            "a store through a shared mapping dirties the page-cache page, which a direct read \
             writes back first (filemap_write_and_wait_range)",
        ),
        sees_dirty_mmap,
    ),
    Check::fs(
        "dio.invalidates_cache",
        "a buffered read after a direct write over a cached range",
        Rule::new(
            Expect::is("new"),
            "direct writes invalidate the page cache over their range \
             (invalidate_inode_pages2_range / kiocb_invalidate_post_direct_write)",
        ),
        invalidates_cache,
    ),
    Check::fs(
        "dio.blockdev_align",
        "O_DIRECT on the block device under the filesystem: offset and length alignment",
        Rule::new(
            Expect::Always(Pred::Fields(&[("offset", Pred::Lbs), ("len", Pred::Lbs)])),
            "block/fops.c: direct I/O on a block device needs offset and length aligned to its \
             logical block size (blkdev_dio_unaligned); unchanged by b1a000d3b8ec \"block: relax \
             direct io memory alignment\"",
        ),
        blockdev_align,
    ),
];

/// Writes `len` pattern bytes to a fresh file (synced) and opens it for direct I/O.
fn fixture(ctx: &Ctx, name: &str, len: usize) -> Result<(File, Vec<u8>), Stop> {
    let (_, data) = common::fixture(ctx, name, len, 0xd10)?;
    Ok((common::direct_or_skip(&ctx.dir.join(name), false, 0)?, data))
}

/// The outcome of one direct read.
enum Attempt {
    /// Full length, right bytes.
    Exact,
    /// Returned `n` bytes of which the first `at` were right.
    Wrong {
        n: usize,
        at: usize,
    },
    Failed(Errno),
}

/// One O_DIRECT pread of `len` bytes at `offset`, into a buffer `mem_off` bytes past a page
/// boundary; compared with `expect` (the file's bytes from `offset`).
fn read_attempt(f: &File, offset: u64, len: usize, mem_off: usize, expect: &[u8]) -> Attempt {
    // Aligned to the page (not to BLOCK), so that `mem_off` is an offset from a page boundary
    // on 16 KiB and 64 KiB kernels as well.
    let page = sys::page_size().max(BLOCK);
    let mut buf = AlignedBuf::new(mem_off + len + page, page);
    let target = &mut buf.as_mut_slice()[mem_off..mem_off + len];
    match f.read_at(target, offset) {
        Err(e) => Attempt::Failed(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
        Ok(n) => match sys::first_difference(&target[..n], &expect[..len.min(expect.len())]) {
            None if n == len => Attempt::Exact,
            None => Attempt::Wrong { n, at: n },
            Some(at) => Attempt::Wrong { n, at },
        },
    }
}

fn describe(a: &Attempt) -> String {
    match a {
        Attempt::Exact => "ok".into(),
        Attempt::Wrong { n, at } => format!("returned {n} bytes, wrong from byte {at}"),
        Attempt::Failed(e) => sys::errno_name(*e),
    }
}

/// The smallest alignment in [`ALIGNMENTS`] for which `attempt` reads exactly; a read that
/// succeeds with wrong data ends the probe, since that is worse than any refusal.
fn smallest(attempt: impl Fn(usize) -> Attempt) -> Observation {
    let mut refusals = Vec::new();
    for a in ALIGNMENTS {
        match attempt(a) {
            Attempt::Exact if refusals.is_empty() => {
                return Observation::number(a as f64, "bytes", "any alignment works")
            }
            Attempt::Exact => {
                return Observation::number(
                    a as f64,
                    "bytes",
                    format!(
                        "{a} is the smallest that works; refused: {}",
                        refusals.join(", ")
                    ),
                )
            }
            w @ Attempt::Wrong { .. } => {
                return Observation::saw(
                    "wrong-data",
                    format!("at alignment {a}: {}", describe(&w)),
                )
            }
            Attempt::Failed(e) => refusals.push(format!("{a}:{}", sys::errno_name(e))),
        }
    }
    Observation::saw(
        "none",
        format!("every alignment refused: {}", refusals.join(", ")),
    )
}

/// Filesystems without a direct_IO path (tmpfs before 6.6) refuse the flag at open time with
/// EINVAL: open(2) lists this case. The errno is the observation.
fn open(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.open");
    let _ = std::fs::remove_file(&path);
    Ok(match common::open_direct(&path, true, 0) {
        Ok(_) => Observation::saw("ok", "O_DIRECT open succeeded"),
        Err(e) => Observation::saw(sys::io_error_name(&e), format!("open: {e}")),
    })
}

/// What statx says about direct I/O alignment: `None` when the kernel or filesystem does not
/// return the STATX_DIOALIGN bit (statx(2): fields not in stx_mask are unset).
fn statx_align(path: &Path) -> anyhow::Result<Option<(u32, u32)>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: zeroed statx is a valid out-parameter.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and out-pointer.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_DIOALIGN, &mut st) };
    if r != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((st.stx_mask & libc::STATX_DIOALIGN != 0)
        .then_some((st.stx_dio_mem_align, st.stx_dio_offset_align)))
}

/// STATX_DIOALIGN arrived in 6.1 with ext4 and xfs support; other filesystems leave the bit
/// unset (`unsupported`). A set bit with zero fields means "no direct I/O on this file".
fn statx_dioalign(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.statx");
    sys::write_file_synced(&path, &sys::pattern(BLOCK, 1))?;
    Ok(match statx_align(&path)? {
        None => Observation::saw("unsupported", "STATX_DIOALIGN not in stx_mask"),
        Some((0, 0)) => Observation::saw("none", "statx says direct I/O is not supported"),
        Some((m, o)) => Observation::numbers(
            &[
                ("mem", f64::from(m), "bytes"),
                ("offset", f64::from(o), "bytes"),
            ],
            "from stx_dio_*_align",
        ),
    })
}

/// Since 6.0 the block layer checks user memory against the queue's DMA alignment only, while
/// offsets and lengths keep the logical block size.
fn min_mem_align(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, data) = fixture(ctx, "dio.min_mem_align", 2 * BLOCK)?;
    Ok(smallest(|a| read_attempt(&f, 0, BLOCK, a, &data)))
}

fn min_offset_align(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, data) = fixture(ctx, "dio.min_offset_align", 3 * BLOCK)?;
    Ok(smallest(|a| {
        read_attempt(&f, a as u64, BLOCK, 0, &data[a..])
    }))
}

fn min_len_align(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, data) = fixture(ctx, "dio.min_len_align", 2 * BLOCK)?;
    Ok(smallest(|a| read_attempt(&f, 0, a, 0, &data)))
}

/// ext4 and xfs refuse an address not aligned to the device's DMA alignment with EINVAL;
/// btrfs serves it with a buffered read, tmpfs from its page cache.
fn misaligned_buffer(ctx: &Ctx) -> Result<Observation, Stop> {
    misaligned(ctx, "dio.misaligned_buffer", 0, 1, "buffer at +1")
}

fn buffer_4k_aligned(ctx: &Ctx) -> Result<Observation, Stop> {
    misaligned(
        ctx,
        "dio.buffer_4k_aligned",
        0,
        4096,
        "buffer at page + 4096",
    )
}

fn misaligned_offset(ctx: &Ctx) -> Result<Observation, Stop> {
    misaligned(ctx, "dio.misaligned_offset", 1, 0, "offset 1")
}

/// One misaligned direct read of BLOCK bytes from a file whose pages were just dropped from
/// the cache. Served with the right bytes, it is `buffered` if it left any page of the file in
/// the page cache (a direct read never does), else `ok`; tmpfs has no cache to drop, so there
/// the right bytes are `ok`.
fn misaligned(
    ctx: &Ctx,
    name: &str,
    offset: u64,
    mem_off: usize,
    what: &str,
) -> Result<Observation, Stop> {
    const LEN: usize = 3 * BLOCK;
    let (f, data) = fixture(ctx, name, LEN)?;
    let plain = File::open(ctx.dir.join(name))?;
    let tmpfs = ctx.fs.as_deref() == Some("tmpfs");
    if !tmpfs {
        sys::evict(&plain)?;
        let cached = sys::cached_pages(&plain, LEN)?;
        if cached > 0 {
            return Err(skip(format!(
                "{cached} pages of the file stayed cached after POSIX_FADV_DONTNEED, so a \
                 buffered fall-back could not be told from a direct read"
            )));
        }
    }
    let a = read_attempt(&f, offset, BLOCK, mem_off, &data[offset as usize..]);
    Ok(match a {
        Attempt::Failed(e) => Observation::saw(sys::errno_name(e), format!("{what}: refused")),
        w @ Attempt::Wrong { .. } => {
            Observation::saw("wrong-data", format!("{what}: {}", describe(&w)))
        }
        Attempt::Exact if tmpfs => Observation::saw(
            "ok",
            format!("{what}: 4096 bytes, data correct (tmpfs: the page cache is the file)"),
        ),
        Attempt::Exact => match sys::cached_pages(&plain, LEN)? {
            0 => Observation::saw(
                "ok",
                format!("{what}: 4096 bytes, data correct, page cache untouched"),
            ),
            n => Observation::saw(
                "buffered",
                format!(
                    "{what}: 4096 bytes, data correct, and {n} of {} pages of the file are now \
                     in the page cache: served by a buffered read",
                    LEN / BLOCK
                ),
            ),
        },
    })
}

/// A statx promise is kept when reads aligned exactly to the promised memory and offset
/// alignments succeed with the right data.
fn statx_agrees(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.statx_agrees");
    let data = sys::pattern(3 * BLOCK, 0x5a);
    sys::write_file_synced(&path, &data)?;
    let (mem, off) = match statx_align(&path)? {
        None => return Err(skip("statx does not report STATX_DIOALIGN here")),
        Some((0, 0)) => return Err(skip("statx reports no direct I/O support")),
        Some(v) => v,
    };
    let f = common::direct_or_skip(&path, false, 0)?;
    let (mem, off) = (mem as usize, off as usize);
    if off > BLOCK || mem > BLOCK || !mem.is_power_of_two() || !off.is_power_of_two() {
        // The probe's buffers and file are a few pages; a promise beyond a page is not wrong,
        // only outside what this probe can try.
        return Err(skip(format!(
            "statx promises mem={mem} offset={off}, beyond the page this probe tries"
        )));
    }
    let at_mem = read_attempt(&f, 0, BLOCK, mem % BLOCK, &data);
    let at_off = read_attempt(&f, off as u64, off, 0, &data[off..]);
    Ok(match (&at_mem, &at_off) {
        (Attempt::Exact, Attempt::Exact) => Observation::saw(
            "agrees",
            format!("buffer at +{mem} and offset/length {off} both work"),
        ),
        _ => Observation::saw(
            "disagrees",
            format!(
                "statx promised mem={mem} offset={off}; buffer at +{mem}: {}; offset {off} \
                 length {off}: {}",
                describe(&at_mem),
                describe(&at_off)
            ),
        ),
    })
}

/// A direct read that crosses end of file returns the bytes up to it.
fn read_eof(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, data) = fixture(ctx, "dio.read_eof", BLOCK + 100)?;
    let mut buf = AlignedBuf::new(2 * BLOCK, BLOCK);
    let target = buf.as_mut_slice();
    Ok(match f.read_at(target, 0) {
        Err(e) => Observation::saw(sys::io_error_name(&e), "direct read across EOF failed"),
        Ok(n) => {
            match sys::first_difference(&target[..n.min(data.len())], &data[..n.min(data.len())]) {
                None => Observation::number(
                    n as f64,
                    "bytes",
                    format!("asked 8192, file is {}", data.len()),
                ),
                Some(at) => {
                    Observation::saw("wrong-data", format!("returned {n}, wrong from byte {at}"))
                }
            }
        }
    })
}

/// Writes `bytes` at `offset` through an aligned buffer.
fn direct_write(f: &File, offset: u64, bytes: &[u8]) -> std::io::Result<usize> {
    let mut buf = AlignedBuf::new(bytes.len(), BLOCK);
    buf.as_mut_slice().copy_from_slice(bytes);
    f.write_at(buf.as_mut_slice(), offset)
}

/// The file grows to cover the write and the gap reads as zeros.
fn write_extend(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.write_extend");
    let _ = std::fs::remove_file(&path);
    let f = common::direct_or_skip(&path, true, 0)?;
    let data = sys::pattern(BLOCK, 0xe7);
    if let Err(e) = direct_write(&f, 2 * BLOCK as u64, &data) {
        return Ok(Observation::saw(
            sys::io_error_name(&e),
            "direct write past EOF failed",
        ));
    }
    drop(f);
    let back = std::fs::read(&path)?;
    let mut want = vec![0u8; 2 * BLOCK];
    want.extend_from_slice(&data);
    Ok(match sys::first_difference(&back, &want) {
        None => Observation::number(back.len() as f64, "bytes", "size and contents as written"),
        Some(_) if back.len() != want.len() => {
            Observation::number(back.len() as f64, "bytes", "size differs from 12288")
        }
        Some(at) => Observation::saw("wrong-data", format!("contents differ from byte {at}")),
    })
}

fn append(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.append");
    let first = sys::pattern(BLOCK, 0xa1);
    sys::write_file_synced(&path, &first)?;
    let f = common::direct_or_skip(&path, true, libc::O_APPEND)?;
    let (a, b) = (sys::pattern(BLOCK, 0xa2), sys::pattern(BLOCK, 0xa3));
    for chunk in [&a, &b] {
        // With O_APPEND the offset argument of pwrite is ignored on Linux (pwrite(2) BUGS), so
        // 0 here proves the append, not the offset.
        if let Err(e) = direct_write(&f, 0, chunk) {
            return Ok(Observation::saw(
                sys::io_error_name(&e),
                "O_DIRECT|O_APPEND write failed",
            ));
        }
    }
    drop(f);
    let back = std::fs::read(&path)?;
    let want = [first, a, b].concat();
    Ok(match sys::first_difference(&back, &want) {
        None => Observation::saw("ok", "12288 bytes in write order"),
        Some(at) => Observation::saw(
            "misplaced",
            format!("size {} (want 12288), first difference at {at}", back.len()),
        ),
    })
}

/// Compares a direct read of the first block with the old and new contents.
fn old_or_new(f: &File, old: &[u8], new: &[u8]) -> Observation {
    let mut buf = AlignedBuf::new(BLOCK, BLOCK);
    let target = buf.as_mut_slice();
    match f.read_at(target, 0) {
        Err(e) => Observation::saw(sys::io_error_name(&e), "direct read failed"),
        Ok(n) if n == BLOCK && target == new => {
            Observation::saw("new", "direct read saw the new bytes")
        }
        Ok(n) if n == BLOCK && target == old => {
            Observation::saw("stale", "direct read returned what the disk held before")
        }
        Ok(n) => Observation::saw(
            "wrong-data",
            format!("returned {n} bytes, neither old nor new"),
        ),
    }
}

fn sees_dirty_cache(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.sees_dirty_cache");
    let old = sys::pattern(2 * BLOCK, 0xc0);
    let buffered = sys::write_file_synced(&path, &old)?;
    let direct = common::direct_or_skip(&path, false, 0)?;
    let new = sys::pattern(BLOCK, 0xc1);
    buffered.write_all_at(&new, 0)?; // left dirty: no fsync
    Ok(old_or_new(&direct, &old[..BLOCK], &new))
}

fn sees_dirty_mmap(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.sees_dirty_mmap");
    let old = sys::pattern(2 * BLOCK, 0xd0);
    let f = sys::write_file_synced(&path, &old)?;
    let direct = common::direct_or_skip(&path, false, 0)?;
    let new = sys::pattern(BLOCK, 0xd1);
    let m = sys::Mapping::shared(&f, BLOCK)?;
    new.iter().enumerate().for_each(|(i, &b)| m.write(i, b)); // dirty, not msync'd
    Ok(old_or_new(&direct, &old[..BLOCK], &new))
}

fn invalidates_cache(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("dio.invalidates_cache");
    let old = sys::pattern(2 * BLOCK, 0xe0);
    let buffered = sys::write_file_synced(&path, &old)?;
    if sys::read_at(&buffered, 0, BLOCK)? != old[..BLOCK] {
        return Err(broken(
            "a buffered read of the fresh fixture returned other bytes",
        ));
    } // now in the page cache
    let direct = common::direct_or_skip(&path, true, 0)?;
    let new = sys::pattern(BLOCK, 0xe1);
    if let Err(e) = direct_write(&direct, 0, &new) {
        return Ok(Observation::saw(
            sys::io_error_name(&e),
            "direct write failed",
        ));
    }
    let after = sys::read_at(&buffered, 0, BLOCK)?;
    Ok(if after == new {
        Observation::saw("new", "buffered read after the direct write saw it")
    } else if after == old[..BLOCK] {
        Observation::saw("stale", "the page cache kept the old bytes")
    } else {
        Observation::saw(
            "wrong-data",
            "buffered read returned neither old nor new bytes",
        )
    })
}

/// Needs the block device under the filesystem (only a guest knows it); reads only.
fn blockdev_align(ctx: &Ctx) -> Result<Observation, Stop> {
    let Some(dev) = &ctx.device else {
        return Err(skip("no block device under this directory is known"));
    };
    let what = format!("O_DIRECT open of {}", dev.display());
    let f = common::open_direct(dev, false, 0).map_err(|e| {
        skip(
            sys::needs_root(&what, sys::errno_of(&e))
                .unwrap_or_else(|| format!("{what}: {}", sys::io_error_name(&e))),
        )
    })?;
    let plain = File::open(dev)?;
    let reference = sys::read_at(&plain, 0, 3 * BLOCK)?;
    let off = smallest(|a| read_attempt(&f, a as u64, BLOCK, 0, &reference[a..]));
    let len = smallest(|a| read_attempt(&f, 0, a, 0, &reference));
    // Each part's number, where it found one, named for the part.
    let measures = [("offset", &off), ("len", &len)]
        .into_iter()
        .flat_map(|(name, o)| {
            o.measures
                .iter()
                .map(move |m| Measure::new(name, m.value, &m.unit))
        })
        .collect();
    Ok(Observation::saw(
        format!("offset={} len={}", off.value, len.value),
        format!(
            "probed on {}: {}; {}",
            dev.display(),
            off.detail,
            len.detail
        ),
    )
    .measured(measures))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Where;
    use crate::kver::KernelVersion;
    use zcmatrix_protocol::Outcome;

    fn judge(rule: &Rule, fs: &str, lbs: Option<u32>, seen: &str) -> Outcome {
        let on = Where {
            kernel: KernelVersion::new(6, 12, 0),
            fs: Some(fs),
            logical_block_size: lbs,
            page_size: 4096,
        };
        rule.judge(&on, seen).outcome
    }

    #[test]
    fn a_buffered_fall_back_is_a_known_hazard_on_btrfs_and_a_failure_where_einval_is_due() {
        assert_eq!(
            judge(&MISALIGNED, "btrfs", Some(4096), "buffered"),
            Outcome::Xfail
        );
        assert_eq!(
            judge(&MISALIGNED, "btrfs", Some(4096), "ok"),
            Outcome::Xpass
        );
        assert_eq!(
            judge(&MISALIGNED, "btrfs", Some(4096), "EINVAL"),
            Outcome::Xpass
        );
        assert_eq!(
            judge(&MISALIGNED, "ext4", Some(512), "EINVAL"),
            Outcome::Pass
        );
        assert_eq!(
            judge(&MISALIGNED, "ext4", Some(512), "buffered"),
            Outcome::Fail
        );
        assert_eq!(judge(&MISALIGNED, "tmpfs", None, "ok"), Outcome::Pass);
        assert_eq!(judge(&MISALIGNED, "nfs", None, "wrong-data"), Outcome::Fail);
    }

    #[test]
    fn alignments_on_an_unlisted_filesystem_are_judged_not_globbed() {
        let rule = Rule::new(BLOCK_ALIGNED_ON_BLOCK_FS, EVIDENCE_ALIGN);
        assert_eq!(judge(&rule, "fuse", None, "512"), Outcome::Pass);
        assert_eq!(judge(&rule, "fuse", None, "none"), Outcome::Fail);
        assert_eq!(judge(&rule, "fuse", None, "wrong-data"), Outcome::Fail);
        assert_eq!(judge(&rule, "xfs", Some(4096), "512"), Outcome::Fail);
        // overlay is ext4's rule; DAX needs no alignment at all.
        assert_eq!(judge(&rule, "overlay", Some(4096), "4096"), Outcome::Pass);
        assert_eq!(judge(&rule, "overlay", Some(4096), "512"), Outcome::Fail);
        assert_eq!(judge(&rule, "ext4-dax", Some(512), "1"), Outcome::Pass);
        assert_eq!(judge(&rule, "xfs-dax", Some(512), "512"), Outcome::Fail);
    }

    #[test]
    fn the_block_device_rule_names_both_alignments() {
        let rule = CHECKS
            .iter()
            .find(|c| c.id == "dio.blockdev_align")
            .unwrap()
            .rule;
        let at = |seen| judge(&rule, "ext4", Some(4096), seen);
        assert_eq!(at("offset=4096 len=4096"), Outcome::Pass);
        assert_eq!(at("offset=512 len=4096"), Outcome::Fail);
    }
}
