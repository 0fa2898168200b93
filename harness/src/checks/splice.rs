//! splice(2): which ends work, how much one call moves, what the flags do, and that a pipe filled
//! from a file holds references to page-cache pages rather than copies.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};

use super::{broken, common, skip, Check, Ctx, Expect, Observation, Pred, Rule, Stop};
use crate::sys;

const EVIDENCE_SPLICE: &str = "splice(2): moves data between two descriptors where one is a pipe";

/// pipe(7): the default of /proc/sys/fs/pipe-max-size, which the pipe_capacity rule is about.
const PIPE_MAX_SIZE_DEFAULT: usize = 1 << 20;

pub const CHECKS: &[Check] = &[
    Check::fs(
        "splice.file_to_pipe",
        "16 KiB from a file into a pipe, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_SPLICE),
        file_to_pipe,
    ),
    Check::fs(
        "splice.pipe_to_file",
        "16 KiB from a pipe into a file, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_SPLICE),
        pipe_to_file,
    ),
    Check::kernel(
        "splice.pipe_to_tcp",
        "16 KiB from a pipe into a loopback TCP socket, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_SPLICE),
        pipe_to_tcp,
    ),
    Check::kernel(
        "splice.tcp_to_pipe",
        "16 KiB from a loopback TCP socket into a pipe, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_SPLICE),
        tcp_to_pipe,
    ),
    Check::kernel(
        "splice.no_pipe",
        "splice between two regular files, neither a pipe",
        Rule::new(
            Expect::is("EINVAL"),
            "splice(2) ERRORS: EINVAL, neither of the file descriptors refers to a pipe",
        ),
        no_pipe,
    ),
    Check::kernel(
        "splice.pipe_to_pipe",
        "splice with a pipe on both ends, data verified",
        Rule::new(
            Expect::is("ok"),
            "splice(2): both ends may be pipes (splice_pipe_to_pipe)",
        ),
        pipe_to_pipe,
    ),
    Check::kernel(
        "splice.pipe_capacity",
        "a new pipe's capacity, a pipe raised to pipe-max-size with F_SETPIPE_SZ: its size, \
         and what one file→pipe splice moves",
        Rule::new(
            Expect::Always(Pred::Fields(&[
                ("default", Pred::Pages(16)),
                ("max", Pred::Is("1048576")),
                ("moved", Pred::Is("1048576")),
            ])),
            "pipe(7) Pipe capacity: since 2.6.11 the capacity is 16 pages (65,536 bytes with \
             4096-byte pages; 256 KiB with 16 KiB pages, 1 MiB with 64 KiB); \
             /proc/sys/fs/pipe-max-size defaults to 1048576 (a skip where it is set otherwise) \
             and fcntl(2) F_SETPIPE_SZ may raise a pipe to it; one splice fills what the pipe \
             holds",
        ),
        pipe_capacity,
    ),
    Check::kernel(
        "splice.nonblock_empty",
        "SPLICE_F_NONBLOCK from an empty pipe whose writer is open",
        Rule::new(
            Expect::is("EAGAIN"),
            "splice(2) ERRORS: EAGAIN, SPLICE_F_NONBLOCK was specified and the operation would \
             block",
        ),
        nonblock_empty,
    ),
    Check::fs(
        "splice.append_out",
        "from a pipe into a file opened O_APPEND",
        Rule::new(
            Expect::is("EINVAL"),
            "splice(2) ERRORS: EINVAL, the target file is opened in append mode",
        ),
        append_out,
    ),
    Check::fs(
        "splice.dio_in",
        "from a file opened O_DIRECT into a pipe, data verified",
        Rule::new(Expect::is("ok"), common::EVIDENCE_DIO_SPLICE),
        dio_in,
    )
    .per_block_size(),
    Check::fs(
        "splice.dio_out",
        "from a pipe into a file opened O_DIRECT, page-aligned data, verified",
        Rule::new(
            Expect::is("ok"),
            "splice(2) into an O_DIRECT file: iter_file_splice_write hands the pipe's whole \
             pages to ->write_iter, which takes them for direct I/O since they are block-aligned \
             (open(2) NOTES, O_DIRECT); where O_DIRECT does not open (tmpfs before 6.6) the \
             check is a skip and dio.open records it",
        ),
        dio_out,
    )
    .per_block_size(),
    Check::fs(
        "splice.by_reference",
        "splice a file range into a pipe, overwrite the range with write(), read the pipe",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("ext4-dax", Expect::is("old")),
                    ("xfs-dax", Expect::is("old")),
                ],
                otherwise: &Expect::is("new"),
            },
            "splice(2) NOTES: a pipe buffer is a set of reference-counted pointers to pages of \
             kernel memory; filled from a file they are its page-cache pages, so a write() after \
             the splice shows through: the reader gets bytes the file did not hold when splice \
             returned. Zero-copy's documented contract (a copy would be `old`), not a kernel \
             hazard. A DAX file has no page cache: its read_iter copies into the pipe's own \
             pages, and since 6.5 splice says so (b85930a07738 \"splice: Make splice from a DAX \
             file use copy_splice_read()\"): `old` there. overlay splices its upper ext4 \
             file's pages (d4120d87a0ed \"overlayfs: Implement splice-read\", 6.5; before, \
             through its read_iter)",
        ),
        by_reference,
    ),
    Check::kernel(
        "splice.procfs_source",
        "/proc/version and /sys/kernel/uevent_seqnum spliced into a pipe",
        Rule::new(Expect::is("proc=ok sys=ok"), common::EVIDENCE_PSEUDO_FILES),
        procfs_source,
    ),
];

/// Splices `len` bytes from `from` to `to` (offsets from the files' positions).
fn splice_all(from: impl AsFd, to: impl AsFd, len: usize) -> sys::Moved {
    let mut moved = 0;
    while moved < len {
        match splice(
            from.as_fd(),
            None,
            to.as_fd(),
            None,
            len - moved,
            SpliceFFlags::empty(),
        ) {
            Ok(0) => break,
            Ok(n) => moved += n,
            Err(e) => return Err((moved, e)),
        }
    }
    Ok(moved)
}

fn source(ctx: &Ctx, name: &str, len: usize) -> Result<(File, Vec<u8>), Stop> {
    common::source(ctx, name, len, 0x5911)
}

fn file_to_pipe(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "splice.file_to_pipe", 16 << 10)?;
    let (res, got) = sys::collect_pipe(|tx| splice_all(&src, tx, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

fn pipe_to_file(ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x9f);
    let rx = sys::filled_pipe(&data)?;
    let path = ctx.dir.join("splice.pipe_to_file");
    let out = File::create(&path)?;
    let res = splice_all(&rx, &out, data.len());
    drop(out);
    Ok(common::moved(res, &std::fs::read(&path)?, &data))
}

fn pipe_to_tcp(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x7c);
    let rx = sys::filled_pipe(&data)?;
    let (sock_tx, sock_rx) = sys::tcp_pair()?;
    let reader = sys::drain(sock_rx);
    let res = splice_all(&rx, &sock_tx, data.len());
    drop(sock_tx);
    let got = reader.join().expect("reader thread")?;
    Ok(common::moved(res, &got, &data))
}

fn tcp_to_pipe(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x7d);
    let (mut sock_tx, sock_rx) = sys::tcp_pair()?;
    sock_tx.write_all(&data)?;
    drop(sock_tx);
    let (res, got) = sys::collect_pipe(|tx| splice_all(&sock_rx, tx, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

/// splice moves data to or from a pipe buffer; with no pipe on either side there is nothing for
/// it to move through, and the syscall refuses before looking at the files.
fn no_pipe(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, _) = source(ctx, "splice.no_pipe.in", 4096)?;
    let dst = File::create(ctx.dir.join("splice.no_pipe.out"))?;
    let mut off_in: i64 = 0;
    let mut off_out: i64 = 0;
    Ok(
        match splice(
            src.as_fd(),
            Some(&mut off_in),
            dst.as_fd(),
            Some(&mut off_out),
            4096,
            SpliceFFlags::empty(),
        ) {
            Ok(n) => Observation::saw("ok", format!("splice moved {n} bytes between two files")),
            Err(e) => Observation::saw(sys::errno_name(e), format!("splice: {e}")),
        },
    )
}

fn pipe_to_pipe(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x22);
    let a_rx = sys::filled_pipe(&data)?;
    let (res, got) = sys::collect_pipe(|tx| splice_all(&a_rx, tx, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

/// F_SETPIPE_SZ rounds up to a power-of-two number of pages, capped (for unprivileged callers)
/// by pipe-max-size; one splice from a large enough file then fills the whole pipe.
fn pipe_capacity(ctx: &Ctx) -> Result<Observation, Stop> {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")?
        .trim()
        .parse()?;
    if max != PIPE_MAX_SIZE_DEFAULT {
        return Err(skip(format!(
            "pipe-max-size is {max} on this machine, not its default {PIPE_MAX_SIZE_DEFAULT}"
        )));
    }
    let (src, _) = source(ctx, "splice.pipe_capacity", 2 * max)?;
    let _ = std::fs::remove_file(ctx.dir.join("splice.pipe_capacity"));
    let (_rx, tx) = sys::pipe()?;
    let default = match fcntl(&tx, FcntlArg::F_GETPIPE_SZ) {
        Ok(s) => s,
        Err(e) => return Ok(common::errno(e, "F_GETPIPE_SZ of a new pipe")),
    };
    let size = match fcntl(&tx, FcntlArg::F_SETPIPE_SZ(max as i32)) {
        Ok(s) => s,
        // pipe-user-pages-hard/soft are per-user budgets other pipes on this machine share.
        Err(e @ (Errno::EPERM | Errno::ENOMEM)) => {
            return Err(skip(format!(
                "F_SETPIPE_SZ to {max} refused with {} (this user's pipe budget)",
                sys::errno_name(e)
            )))
        }
        Err(e) => return Ok(common::errno(e, "F_SETPIPE_SZ to pipe-max-size")),
    };
    Ok(
        match splice(
            src.as_fd(),
            None,
            tx.as_fd(),
            None,
            2 * max,
            SpliceFFlags::empty(),
        ) {
            Ok(n) => Observation::numbers(
                &[
                    ("default", default as f64, "bytes"),
                    ("max", size as f64, "bytes"),
                    ("moved", n as f64, "bytes"),
                ],
                format!("pipe-max-size {max}; one splice asked for {}", 2 * max),
            ),
            Err(e) => common::errno(e, "splice into the enlarged pipe"),
        },
    )
}

fn nonblock_empty(_ctx: &Ctx) -> Result<Observation, Stop> {
    let (rx, _tx) = sys::pipe()?;
    let (_out_rx, out_tx) = sys::pipe()?;
    Ok(
        match splice(
            rx.as_fd(),
            None,
            out_tx.as_fd(),
            None,
            4096,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        ) {
            Ok(n) => Observation::number(n as f64, "bytes", "returned instead of refusing"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

fn append_out(ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(4096, 0xa9);
    let rx = sys::filled_pipe(&data)?;
    let path = ctx.dir.join("splice.append_out");
    std::fs::write(&path, b"head")?;
    let out = OpenOptions::new().append(true).open(&path)?;
    Ok(match splice_all(&rx, &out, data.len()) {
        Ok(n) => {
            let want = [&b"head"[..], &data].concat();
            if std::fs::read(&path)? == want {
                Observation::saw("ok", format!("{n} bytes appended after the old content"))
            } else {
                Observation::saw(
                    "misplaced",
                    format!("{n} bytes reported, file content wrong"),
                )
            }
        }
        Err((n, e)) => common::errno_after(n, e),
    })
}

fn dio_in(ctx: &Ctx) -> Result<Observation, Stop> {
    let (_, data) = source(ctx, "splice.dio_in", 16 << 10)?;
    let src = common::direct_or_skip(&ctx.dir.join("splice.dio_in"), false, 0)?;
    let (res, got) = sys::collect_pipe(|tx| splice_all(&src, tx, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

fn dio_out(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("splice.dio_out");
    let _ = std::fs::remove_file(&path);
    let out = common::direct_or_skip(&path, true, 0)?;
    let data = sys::pattern(16 << 10, 0xd0);
    let rx = sys::filled_pipe(&data)?;
    let res = splice_all(&rx, &out, data.len());
    drop(out);
    Ok(common::moved(res, &std::fs::read(&path)?, &data))
}

/// The pipe keeps pointers to the file's page-cache pages; write() changes those pages in place,
/// so the reader sees the new bytes.
fn by_reference(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, old) = source(ctx, "splice.by_reference", 4096)?;
    let (rx, tx) = sys::pipe()?;
    match splice_all(&src, &tx, old.len()) {
        Ok(n) if n == old.len() => {}
        // A short splice would read as "mixed" below without saying why.
        Ok(n) => return Err(broken(format!("splice moved {n} of {}", old.len()))),
        Err((n, e)) => return Ok(common::errno_after(n, e)),
    }
    let new = sys::pattern(4096, 0xbeef);
    let w = OpenOptions::new()
        .write(true)
        .open(ctx.dir.join("splice.by_reference"))?;
    std::os::unix::fs::FileExt::write_all_at(&w, &new, 0)?;
    drop(tx);
    let got = sys::read_all(rx)?;
    Ok(if got == new {
        Observation::saw("new", "the pipe showed the bytes written after the splice")
    } else if got == old {
        Observation::saw("old", "the pipe held a copy taken at splice time")
    } else {
        Observation::saw(
            "mixed",
            "the pipe held neither the old nor the new bytes alone",
        )
    })
}

fn procfs_source(_ctx: &Ctx) -> Result<Observation, Stop> {
    Ok(common::pseudo_sources(|f, tx| {
        splice(
            f.as_fd(),
            None,
            tx.as_fd(),
            None,
            4096,
            SpliceFFlags::empty(),
        )
    }))
}
