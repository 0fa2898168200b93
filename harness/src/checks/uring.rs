//! io_uring on files: fixed (registered) buffers with O_DIRECT, IORING_OP_SPLICE and
//! IORING_OP_TEE, whether a file mapping can be registered as a fixed buffer (a long-term pin of
//! page-cache pages), and the feature bits the kernel announces.
//!
//! Where io_uring cannot be set up (a kernel built without it, `kernel.io_uring_disabled`, a
//! seccomp filter) every check is a skip naming the errno: that is a property of the machine,
//! not of the operation probed.

use std::fs::File;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{broken, common, skip, Check, Ctx, Expect, Measure, Observation, Pred, Rule, Stop};
use crate::sys::{self, AlignedBuf};

/// One page: the unit every probe moves.
const BLOCK: usize = 4096;

const EVIDENCE_FIXED_DIRECT: &str = "io_uring_enter(2) IORING_OP_READ_FIXED and \
    IORING_OP_WRITE_FIXED (since 5.1): read and write through a buffer registered with \
    io_uring_register(2) IORING_REGISTER_BUFFERS; on an O_DIRECT file open(2) NOTES' alignment \
    applies as for read(2), and this probe aligns buffer, offset and length to a page. Where \
    O_DIRECT does not open (tmpfs before 6.6) the check is a skip and dio.open records it";

const EVIDENCE_MISALIGNED: &str = "open(2) NOTES, O_DIRECT, as dio.misaligned_offset: a \
    direct read at a file offset not aligned to the logical block size is EINVAL on ext4 and \
    xfs; btrfs serves it with a buffered read (btrfs_direct_read → check_direct_read), which \
    leaves the range in the page cache O_DIRECT promises to bypass: `buffered`, a hazard, seen \
    with mincore(2) after POSIX_FADV_DONTNEED emptied the cache; tmpfs's direct I/O is its page cache (e88e0d366f9c \"tmpfs: trivial support for direct \
    IO\"), so there the bytes arrive, as on DAX files, read at byte granularity (dax_iomap_rw); \
    overlay passes the read to its ext4 file (EINVAL); a fixed buffer changes nothing in that \
    (io_uring_enter(2) IORING_OP_READ_FIXED reads like IORING_OP_READ)";

const EVIDENCE_SPLICE: &str = "io_uring_enter(2) IORING_OP_SPLICE (since 5.7, 7d67af2c0134 \
    \"io_uring: add splice(2) support\"): splice(2) from a file at an offset into a pipe; an \
    opcode a kernel does not know completes with EINVAL";

const EVIDENCE_TEE: &str = "io_uring_enter(2) IORING_OP_TEE (since 5.8, \"io_uring: add \
    tee(2) support\"): tee(2) between two pipes, the source keeps its data; an opcode a kernel \
    does not know completes with EINVAL";

const EVIDENCE_FILE_BUFFER: &str = "io_uring_register(2) IORING_REGISTER_BUFFERS pins the \
    pages long-term (FOLL_WRITE|FOLL_LONGTERM). Up to 6.4 io_uring refused file-backed memory \
    itself with EOPNOTSUPP, first all of it but hugetlbfs, from 5.14 with shmem (tmpfs, memfd) \
    allowed (40dad765c045 \"io_uring: enable shmem/memfd memory registration\"; on the 5.10 \
    stable line since 5.10.162, 788d0824269b \"io_uring: import 5.15-stable io_uring\"). 6.5 left the \
    decision to GUP (34ed8d0dcd69 \"io_uring: rsrc: delegate VMA file-backed check to GUP\", \
    8ac268436e6d \"mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to file-backed \
    mappings\"): a writable long-term pin of a shared mapping that needs dirty tracking (a \
    disk filesystem) is EFAULT, shmem is allowed, and a MAP_PRIVATE mapping is pinned after \
    copy-on-write gave it anonymous pages, so it registers on every filesystem but DAX: GUP \
    never pins a DAX file's mapping long-term, shared or private (check_vma_flags: \
    FOLL_LONGTERM on vma_is_fsdax is EOPNOTSUPP; before 6.5 io_uring refused it first). \
    overlay maps its upper ext4 file, so it answers as ext4";

/// A mapping of a DAX file: never pinned long-term (see [`EVIDENCE_FILE_BUFFER`]).
const FSDAX: Expect = Expect::is("EOPNOTSUPP");

/// A shmem (tmpfs) mapping, shared or private: registers from 5.14 (40dad765c045), and on the
/// 5.10 stable line from 5.10.162, which imported 5.15's io_uring (788d0824269b "io_uring: import
/// 5.15-stable io_uring", ChangeLog-5.10.162); earlier 5.10 point releases and 5.11 to 5.13
/// refuse.
const SHMEM: Expect = Expect::since(
    5,
    14,
    &Expect::since(
        5,
        11,
        &Expect::since_release(5, 10, 162, &Expect::is("EOPNOTSUPP"), &Expect::is("ok")),
        &Expect::is("EOPNOTSUPP"),
    ),
    &Expect::is("ok"),
);

const EVIDENCE_MEM_ALIGN: &str = "io_uring_enter(2) IORING_OP_READ_FIXED imports the \
    registered buffer as a bvec of its pages, from the offset asked: a buffer `a` bytes into a \
    page gives segments of 4096-a bytes. Direct I/O checked every segment's length against the \
    logical block size (iov_iter_is_aligned in iomap_dio_bio_iter and blkdev_dio_unaligned), so \
    on ext4 and xfs a fixed buffer needed the logical block size even after b1a000d3b8ec \
    \"block: relax direct io memory alignment\" (6.0) relaxed plain read(2) buffers to the DMA \
    alignment (dio.min_mem_align); 6.18's \"iomap: simplify direct io validity check\" and \
    \"block: align the bio after building it\" (Keith Busch: \"removes the direct io \
    requirement that io vector lengths align to the logical block size\") left only the DMA \
    alignment, 512 on virtio-blk. btrfs serves a misaligned buffer with a buffered read and \
    tmpfs from its page cache, and DAX files copy at byte granularity (dax_iomap_rw), so any \
    alignment works there; overlay passes the read to its ext4 file";

/// Ext4 and xfs: the logical block size before 6.18, the DMA alignment (512) since.
const FIXED_MEM_ALIGN_BLOCKDEV: Expect =
    Expect::since(6, 18, &Expect::Always(Pred::Lbs), &Expect::is("512"));

const FIXED_MEM_ALIGN: Expect = Expect::ByFs {
    cases: &[
        ("ext4", FIXED_MEM_ALIGN_BLOCKDEV),
        ("xfs", FIXED_MEM_ALIGN_BLOCKDEV),
        ("btrfs", Expect::is("1")),
        ("tmpfs", Expect::is("1")),
        ("overlay", FIXED_MEM_ALIGN_BLOCKDEV),
        ("ext4-dax", Expect::is("1")),
        ("xfs-dax", Expect::is("1")),
    ],
    otherwise: &Expect::Always(Pred::Between(1, BLOCK as i64)),
};

/// MAP_SHARED of a file: shmem as [`SHMEM`]; disk filesystems refused by io_uring, then by GUP.
const SHARED: Expect = Expect::ByFs {
    cases: &[("tmpfs", SHMEM), ("ext4-dax", FSDAX), ("xfs-dax", FSDAX)],
    otherwise: &Expect::since(6, 5, &Expect::is("EOPNOTSUPP"), &Expect::is("EFAULT")),
};

/// MAP_PRIVATE of a file: shmem as [`SHMEM`]; everywhere from 6.5 (anonymous pages after CoW).
const PRIVATE: Expect = Expect::ByFs {
    cases: &[("tmpfs", SHMEM), ("ext4-dax", FSDAX), ("xfs-dax", FSDAX)],
    otherwise: &Expect::since(6, 5, &Expect::is("EOPNOTSUPP"), &Expect::is("ok")),
};

static CHECKS: &[Check] = &[
    Check::kernel(
        "uring.features",
        "the IORING_FEAT_* bits io_uring_setup(2) returns for a plain one-entry ring",
        Rule::measure(
            "measures params.features of io_uring_setup(2) (IORING_FEAT_*, named in bit \
             order; unknown bits as bitN): what this kernel's io_uring promises without probing \
             each opcode, to compare kernels",
        ),
        features,
    ),
    Check::kernel(
        "uring.opcodes",
        "how many io_uring opcodes IORING_REGISTER_PROBE reports supported, and the highest",
        Rule::measure(
            "measures the opcodes io_uring_register(2) IORING_REGISTER_PROBE (since 5.6) marks \
             IO_URING_OP_SUPPORTED, counted over 0..=255 with the highest named: how far this \
             kernel's io_uring reaches, to compare kernels without probing each operation",
        ),
        opcodes,
    ),
    Check::fs(
        "uring.read_fixed_direct",
        "IORING_OP_WRITE_FIXED then IORING_OP_READ_FIXED of a page on an O_DIRECT file, \
         page-aligned registered buffer, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_FIXED_DIRECT),
        read_fixed_direct,
    )
    .per_block_size(),
    Check::fs(
        "uring.read_fixed_misaligned",
        "IORING_OP_READ_FIXED of a page at file offset 1 of a cold O_DIRECT file",
        Rule::new(
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
        .hazards(&["buffered"]),
        read_fixed_misaligned,
    )
    .per_block_size(),
    Check::fs(
        "uring.fixed_min_mem_align",
        "smallest offset into a page-aligned registered buffer at which an aligned 4096-byte \
         IORING_OP_READ_FIXED of an O_DIRECT file works",
        Rule::new(FIXED_MEM_ALIGN, EVIDENCE_MEM_ALIGN),
        fixed_min_mem_align,
    )
    .per_block_size(),
    Check::fs(
        "uring.splice",
        "IORING_OP_SPLICE of 16 KiB from a file at offset 4096 into a pipe, data verified",
        Rule::new(
            Expect::since(5, 7, &Expect::is("EINVAL"), &Expect::is("ok")),
            EVIDENCE_SPLICE,
        ),
        splice,
    ),
    Check::kernel(
        "uring.tee",
        "IORING_OP_TEE of 16 KiB between two pipes: both hold the data afterwards",
        Rule::new(
            Expect::since(5, 8, &Expect::is("EINVAL"), &Expect::is("ok")),
            EVIDENCE_TEE,
        ),
        tee,
    ),
    Check::fs(
        "uring.fixed_buffer_file",
        "register two pages of a MAP_SHARED mapping of a file as an io_uring fixed buffer",
        Rule::new(SHARED, EVIDENCE_FILE_BUFFER),
        fixed_buffer_file,
    )
    .variant("shared"),
    Check::fs(
        "uring.fixed_buffer_file",
        "register two pages of a MAP_PRIVATE mapping of a file as an io_uring fixed buffer",
        Rule::new(PRIVATE, EVIDENCE_FILE_BUFFER),
        fixed_buffer_file,
    )
    .variant("private"),
];

pub fn checks() -> &'static [Check] {
    CHECKS
}

/// A ring of `entries`, or a skip where io_uring is absent or disabled here (an error for any
/// other refusal: see [`common::uring_setup_refused`]).
fn ring(entries: u32) -> Result<IoUring, Stop> {
    common::uring_ring(entries)
}

/// Submits one entry and waits for its completion: the result (bytes, or -errno).
///
/// # Safety
/// Every buffer and descriptor `sqe` names must stay valid until this returns.
unsafe fn one(ring: &mut IoUring, sqe: &squeue::Entry) -> Result<i32, Stop> {
    // SAFETY: the caller keeps what the entry names alive until we return, and we wait for it.
    unsafe { ring.submission().push(sqe) }
        .map_err(|e| broken(format!("io_uring submission queue: {e}")))?;
    ring.submit_and_wait(1)?;
    ring.completion()
        .next()
        .map(|c| c.result())
        .ok_or_else(|| broken("io_uring: no completion"))
}

/// A negative completion as its errno name.
fn errno_of(res: i32) -> String {
    sys::errno_name(nix::errno::Errno::from_raw(-res))
}

fn features(_ctx: &Ctx) -> Result<Observation, Stop> {
    let f = sys::io_uring_features().map_err(common::uring_setup_refused)?;
    let names = sys::io_uring_feature_names(f);
    Ok(Observation::saw(
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(" ")
        },
        format!("features {f:#x}, {} bits", names.len()),
    ))
}

/// The opcodes the probe marks supported: their count is the value, the highest the detail.
fn opcodes(_ctx: &Ctx) -> Result<Observation, Stop> {
    let ring = ring(1)?;
    let mut probe = io_uring::Probe::new();
    // Before 5.6 there is no probe: the errno is what this kernel says.
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Ok(Observation::saw(
            sys::io_error_name(&e),
            "IORING_REGISTER_PROBE refused",
        ));
    }
    let supported: Vec<u8> = (0..=u8::MAX).filter(|&op| probe.is_supported(op)).collect();
    let mut measures = vec![Measure::new("supported", supported.len() as f64, "opcodes")];
    measures.extend(
        supported
            .last()
            .map(|&op| Measure::new("highest", f64::from(op), "")),
    );
    Ok(Observation::saw(
        supported.len().to_string(),
        format!(
            "highest supported opcode {}",
            supported.last().map_or("none".into(), |op| op.to_string())
        ),
    )
    .measured(measures))
}

/// A fresh O_DIRECT file of `pages` pattern pages and a ring with one registered, page-aligned
/// buffer of `buf_len` bytes; the buffer outlives the ring (fields drop in order).
struct Fixed {
    ring: IoUring,
    buf: AlignedBuf,
    file: File,
    data: Vec<u8>,
}

fn fixed(ctx: &Ctx, name: &str, pages: usize, buf_len: usize) -> Result<Fixed, Stop> {
    let (_, data) = common::fixture(ctx, name, pages * BLOCK, 0x0121)?;
    let file = common::direct_or_skip(&ctx.dir.join(name), true, 0)?;
    let ring = ring(2)?;
    let mut buf = AlignedBuf::new(buf_len, BLOCK);
    let iov = [libc::iovec {
        iov_base: buf.as_mut_slice().as_mut_ptr().cast(),
        iov_len: buf_len,
    }];
    // SAFETY: `buf` lives in the same struct as the ring and is dropped after it.
    unsafe { ring.submitter().register_buffers(&iov) }.map_err(|e| {
        broken(format!(
            "registering an anonymous page as a fixed buffer failed ({})",
            sys::io_error_name(&e)
        ))
    })?;
    Ok(Fixed {
        ring,
        buf,
        file,
        data,
    })
}

/// WRITE_FIXED of a fresh page at offset 4096, then READ_FIXED of page 0 into the same buffer;
/// the write is checked with a buffered read, the read against the fixture.
fn read_fixed_direct(ctx: &Ctx) -> Result<Observation, Stop> {
    let mut f = fixed(ctx, "uring.read_fixed_direct", 2, BLOCK)?;
    let fd = types::Fd(f.file.as_raw_fd());
    let new = sys::pattern(BLOCK, 0x0122);
    f.buf.as_mut_slice().copy_from_slice(&new);
    let ptr = f.buf.as_mut_slice().as_mut_ptr();
    let w = opcode::WriteFixed::new(fd, ptr, BLOCK as u32, 0)
        .offset(BLOCK as u64)
        .build();
    // SAFETY: the registered buffer and the file live in `f` until after the completion.
    let res = unsafe { one(&mut f.ring, &w) }?;
    if res < 0 {
        return Ok(Observation::saw(errno_of(res), "WRITE_FIXED failed"));
    }
    if res as usize != BLOCK {
        return Ok(Observation::saw(
            "short",
            format!("WRITE_FIXED wrote {res} of 4096"),
        ));
    }
    f.buf.as_mut_slice().fill(0);
    let r = opcode::ReadFixed::new(fd, ptr, BLOCK as u32, 0)
        .offset(0)
        .build();
    // SAFETY: as above.
    let res = unsafe { one(&mut f.ring, &r) }?;
    if res < 0 {
        return Ok(Observation::saw(errno_of(res), "READ_FIXED failed"));
    }
    let plain = File::open(ctx.dir.join("uring.read_fixed_direct"))?;
    let written = sys::read_at(&plain, BLOCK as u64, BLOCK)?;
    let read = f.buf.as_mut_slice();
    Ok(if res as usize != BLOCK {
        Observation::saw("short", format!("READ_FIXED read {res} of 4096"))
    } else if read != &f.data[..BLOCK] {
        Observation::saw(
            "wrong-data",
            "READ_FIXED returned other bytes than the file's",
        )
    } else if written != new {
        Observation::saw(
            "wrong-data",
            "a buffered read after WRITE_FIXED did not see the written page",
        )
    } else {
        Observation::saw(
            "ok",
            "4096 bytes written and read through the registered buffer, data verified",
        )
    })
}

/// READ_FIXED at offset 1 after the file's pages were dropped from the cache.
fn read_fixed_misaligned(ctx: &Ctx) -> Result<Observation, Stop> {
    let name = "uring.read_fixed_misaligned";
    let mut f = fixed(ctx, name, 3, BLOCK)?;
    let plain = File::open(ctx.dir.join(name))?;
    let tmpfs = ctx.fs.as_deref() == Some("tmpfs");
    if !tmpfs {
        sys::evict(&plain)?;
        let cached = sys::cached_pages(&plain, 3 * BLOCK)?;
        if cached > 0 {
            return Err(skip(format!(
                "{cached} pages of the file stayed cached after POSIX_FADV_DONTNEED, so a \
                 buffered fall-back could not be told from a direct read"
            )));
        }
    }
    let fd = types::Fd(f.file.as_raw_fd());
    let ptr = f.buf.as_mut_slice().as_mut_ptr();
    let r = opcode::ReadFixed::new(fd, ptr, BLOCK as u32, 0)
        .offset(1)
        .build();
    // SAFETY: the registered buffer and the file live in `f` until after the completion.
    let res = unsafe { one(&mut f.ring, &r) }?;
    if res < 0 {
        return Ok(Observation::saw(errno_of(res), "READ_FIXED at offset 1"));
    }
    Ok(if res as usize != BLOCK {
        Observation::saw("short", format!("READ_FIXED read {res} of 4096"))
    } else if f.buf.as_mut_slice() != &f.data[1..=BLOCK] {
        Observation::saw("wrong-data", "READ_FIXED at offset 1 returned other bytes")
    } else if tmpfs {
        Observation::saw(
            "ok",
            "4096 bytes from offset 1, data verified (tmpfs: the page cache is the file)",
        )
    } else {
        match sys::cached_pages(&plain, 3 * BLOCK)? {
            0 => Observation::saw(
                "ok",
                "4096 bytes from offset 1, data verified, page cache untouched",
            ),
            n => Observation::saw(
                "buffered",
                format!(
                    "4096 bytes from offset 1, data verified, and {n} of 3 pages of the file are \
                     now in the page cache: served by a buffered read"
                ),
            ),
        }
    })
}

/// READ_FIXED of page 0 into the registered buffer at offsets 1, 2, 4, … 4096: the smallest that
/// reads exactly, `wrong-data` if one returns other bytes, `none` if every one is refused.
fn fixed_min_mem_align(ctx: &Ctx) -> Result<Observation, Stop> {
    let mut f = fixed(ctx, "uring.fixed_min_mem_align", 2, 2 * BLOCK)?;
    let fd = types::Fd(f.file.as_raw_fd());
    let mut refusals = Vec::new();
    for shift in 0..=12 {
        let a = 1usize << shift;
        f.buf.as_mut_slice().fill(0);
        // SAFETY: `a + BLOCK <= 2 * BLOCK`, inside the registered buffer.
        let ptr = unsafe { f.buf.as_mut_slice().as_mut_ptr().add(a) };
        let r = opcode::ReadFixed::new(fd, ptr, BLOCK as u32, 0)
            .offset(0)
            .build();
        // SAFETY: the registered buffer and the file live in `f` until after the completion.
        let res = unsafe { one(&mut f.ring, &r) }?;
        if res < 0 {
            refusals.push(format!("{a}:{}", errno_of(res)));
            continue;
        }
        let got = &f.buf.as_mut_slice()[a..a + BLOCK];
        if res as usize != BLOCK || got != &f.data[..BLOCK] {
            return Ok(Observation::saw(
                "wrong-data",
                format!("at buffer offset {a}: READ_FIXED returned {res}, bytes differ"),
            ));
        }
        return Ok(Observation::number(
            a as f64,
            "bytes",
            if refusals.is_empty() {
                "any alignment works".to_string()
            } else {
                format!("refused: {}", refusals.join(", "))
            },
        ));
    }
    Ok(Observation::saw(
        "none",
        format!("every alignment refused: {}", refusals.join(", ")),
    ))
}

/// IORING_OP_SPLICE from the file at offset 4096 (an explicit offset, so the file position
/// stays) into a pipe.
fn splice(ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 16 << 10;
    let (file, data) = common::source(ctx, "uring.splice", LEN + BLOCK, 0x0123)?;
    let mut ring = ring(2)?;
    let (rx, tx) = sys::pipe()?;
    let sqe = opcode::Splice::new(
        types::Fd(file.as_raw_fd()),
        BLOCK as i64,
        types::Fd(tx.as_raw_fd()),
        -1,
        LEN as u32,
    )
    .build();
    // SAFETY: the file and the pipe are open until after the completion.
    let res = unsafe { one(&mut ring, &sqe) }?;
    drop(tx);
    if res < 0 {
        return Ok(Observation::saw(errno_of(res), "IORING_OP_SPLICE"));
    }
    let got = sys::read_all(rx)?;
    Ok(common::moved(Ok(res as usize), &got, &data[BLOCK..]))
}

/// IORING_OP_TEE from one pipe into another; both are read out afterwards.
fn tee(_ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 16 << 10;
    let data = sys::pattern(LEN, 0x0124);
    let a_rx = sys::filled_pipe(&data)?;
    let (b_rx, b_tx) = sys::pipe()?;
    let mut ring = ring(2)?;
    let sqe = opcode::Tee::new(
        types::Fd(a_rx.as_raw_fd()),
        types::Fd(b_tx.as_raw_fd()),
        LEN as u32,
    )
    .build();
    // SAFETY: both pipes are open until after the completion.
    let res = unsafe { one(&mut ring, &sqe) }?;
    drop(b_tx);
    if res < 0 {
        return Ok(Observation::saw(errno_of(res), "IORING_OP_TEE"));
    }
    let (copy, original) = (sys::read_all(b_rx)?, sys::read_all(a_rx)?);
    Ok(if res as usize == LEN && copy == data && original == data {
        Observation::saw(
            "ok",
            format!("{res} bytes duplicated; the source kept them"),
        )
    } else {
        Observation::saw(
            "deviates",
            format!(
                "tee completed with {res}; copy {} bytes (right: {}), source {} bytes (intact: {})",
                copy.len(),
                copy == data,
                original.len(),
                original == data
            ),
        )
    })
}

/// Two pages of a file mapped shared or private (the variant), faulted in, then registered.
/// `ok` when the registration holds, verified by a READ_FIXED from a second file landing in the
/// mapping; otherwise the errno of io_uring_register(2).
fn fixed_buffer_file(ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 2 * BLOCK;
    let shared = match ctx.variant {
        Some("shared") => true,
        Some("private") => false,
        v => return Err(broken(format!("uring.fixed_buffer_file: variant {v:?}"))),
    };
    let name = format!(
        "uring.fixed_buffer_file.{}",
        ctx.variant.unwrap_or_default()
    );
    let (file, _) = common::fixture(ctx, &name, LEN, 0x0125)?;
    let map = if shared {
        sys::Mapping::shared(&file, LEN)
    } else {
        sys::Mapping::private(&file, LEN)
    }
    .map_err(|e| broken(format!("mmap of the file: {e}")))?;
    // Fault both pages in (read), as an application would have touched its buffer.
    (0..LEN).step_by(BLOCK).for_each(|i| {
        std::hint::black_box(map.read(i));
    });
    let mut ring = ring(2)?;
    let iov = [libc::iovec {
        iov_base: map.as_ptr().cast(),
        iov_len: LEN,
    }];
    // SAFETY: `map` outlives the ring: the ring is dropped (unregistering) before the mapping.
    if let Err(e) = unsafe { ring.submitter().register_buffers(&iov) } {
        return Ok(Observation::saw(
            sys::io_error_name(&e),
            format!(
                "io_uring_register(IORING_REGISTER_BUFFERS) of a MAP_{} file mapping refused",
                if shared { "SHARED" } else { "PRIVATE" }
            ),
        ));
    }
    let src_data = sys::pattern(BLOCK, 0x0126);
    let src = sys::write_file_synced(&ctx.dir.join(format!("{name}.src")), &src_data)?;
    let sqe = opcode::ReadFixed::new(types::Fd(src.as_raw_fd()), map.as_ptr(), BLOCK as u32, 0)
        .offset(0)
        .build();
    // SAFETY: the registered mapping and the source file outlive the completion.
    let res = unsafe { one(&mut ring, &sqe) }?;
    if res < 0 {
        return Ok(Observation::saw(
            format!("registered-{}", errno_of(res)),
            "registered, but READ_FIXED into it failed",
        ));
    }
    let seen: Vec<u8> = (0..BLOCK).map(|i| map.read(i)).collect();
    drop(ring);
    Ok(if res as usize == BLOCK && seen == src_data {
        Observation::saw(
            "ok",
            "registered; a READ_FIXED into it shows through the mapping",
        )
    } else {
        Observation::saw(
            "wrong-data",
            format!("registered; READ_FIXED returned {res} but the mapping shows other bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Where;
    use crate::kver::KernelVersion;
    use zcmatrix_protocol::Outcome;

    fn judge(e: Expect, k: (u32, u32), fs: &str, seen: &str) -> Outcome {
        judge_at(e, KernelVersion::new(k.0, k.1, 0), fs, seen)
    }

    fn judge_at(e: Expect, kernel: KernelVersion, fs: &str, seen: &str) -> Outcome {
        let on = Where {
            kernel,
            fs: Some(fs),
            logical_block_size: Some(4096),
            page_size: 4096,
        };
        Rule::new(e, "t").judge(&on, seen).outcome
    }

    #[test]
    fn file_buffers_follow_the_gup_history() {
        // The 5.10 stable line carries 5.15's io_uring from 5.10.162; 5.11 to 5.13 do not.
        let k = |patch| KernelVersion::new(5, 10, patch);
        assert_eq!(judge_at(SHARED, k(262), "tmpfs", "ok"), Outcome::Pass);
        assert_eq!(judge_at(SHARED, k(162), "tmpfs", "ok"), Outcome::Pass);
        assert_eq!(judge_at(SHARED, k(161), "tmpfs", "ok"), Outcome::Fail);
        assert_eq!(
            judge_at(SHARED, k(161), "tmpfs", "EOPNOTSUPP"),
            Outcome::Pass
        );
        assert_eq!(judge(SHARED, (5, 10), "ext4", "EOPNOTSUPP"), Outcome::Pass);
        assert_eq!(
            judge(PRIVATE, (5, 13), "tmpfs", "EOPNOTSUPP"),
            Outcome::Pass
        );
        assert_eq!(judge(PRIVATE, (5, 9), "tmpfs", "ok"), Outcome::Fail);
        assert_eq!(judge(SHARED, (6, 1), "tmpfs", "ok"), Outcome::Pass);
        assert_eq!(judge(SHARED, (6, 1), "ext4", "EOPNOTSUPP"), Outcome::Pass);
        assert_eq!(judge(SHARED, (6, 12), "xfs", "EFAULT"), Outcome::Pass);
        assert_eq!(judge(SHARED, (6, 12), "xfs", "ok"), Outcome::Fail);
        assert_eq!(judge(PRIVATE, (6, 1), "btrfs", "EOPNOTSUPP"), Outcome::Pass);
        assert_eq!(judge(PRIVATE, (6, 12), "btrfs", "ok"), Outcome::Pass);
        assert_eq!(judge(PRIVATE, (6, 12), "btrfs", "EFAULT"), Outcome::Fail);
    }

    /// A fixed buffer's pages are bvec segments whose lengths had to be block multiples until
    /// 6.18, so on a 4096-byte disk 6.12 still needs 4096 where read(2) needs 512.
    #[test]
    fn fixed_buffer_alignment_kept_the_block_size_until_6_18() {
        assert_eq!(
            judge(FIXED_MEM_ALIGN, (6, 12), "ext4", "4096"),
            Outcome::Pass
        );
        assert_eq!(judge(FIXED_MEM_ALIGN, (6, 12), "xfs", "512"), Outcome::Fail);
        assert_eq!(judge(FIXED_MEM_ALIGN, (7, 2), "xfs", "512"), Outcome::Pass);
        assert_eq!(judge(FIXED_MEM_ALIGN, (7, 2), "btrfs", "1"), Outcome::Pass);
    }

    #[test]
    fn feature_names_cover_known_and_unknown_bits() {
        assert_eq!(sys::io_uring_feature_names(0b11), ["single_mmap", "nodrop"]);
        assert_eq!(sys::io_uring_feature_names(1 << 20), ["bit20"]);
    }
}
