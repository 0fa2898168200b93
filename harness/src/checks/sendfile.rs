//! sendfile(2): which descriptors may stand on each side, how much one call moves, and what the
//! offset argument and the output's flags do. Data is verified byte for byte wherever it moves.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::sendfile::sendfile;

use super::{common, skip, Check, Ctx, Expect, Measure, Observation, Pred, Profile, Rule, Stop};
use crate::kver::KernelVersion;
use crate::sys;

/// sendfile and read/write never move more than this in one call (INT_MAX & PAGE_MASK).
fn max_rw_count() -> usize {
    super::rule::max_rw_count(sys::page_size() as u32) as usize
}

const EVIDENCE_ANY_OUT: &str = "sendfile(2) NOTES: before Linux 2.6.33 out_fd had to be a \
    socket; since then it can be any file (5.10's splice rework broke pipes briefly: \
    \"fs/pipe: allow sendfile() to pipe again\")";

pub const CHECKS: &[Check] = &[
    Check::fs(
        "sendfile.file_to_tcp",
        "a 256 KiB file to a loopback TCP socket, data verified",
        Rule::new(
            Expect::is("ok"),
            "sendfile(2): the classic use, a file to a socket",
        ),
        file_to_tcp,
    ),
    Check::fs(
        "sendfile.file_to_unix",
        "a 256 KiB file to an AF_UNIX stream socket, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_ANY_OUT),
        file_to_unix,
    ),
    Check::fs(
        "sendfile.file_to_file",
        "a 64 KiB file to a regular file on the same filesystem, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_ANY_OUT),
        file_to_file,
    ),
    Check::fs(
        "sendfile.file_to_pipe",
        "a whole 16 KiB file into a pipe, data verified",
        Rule::new(Expect::is("ok"), EVIDENCE_ANY_OUT),
        file_to_pipe,
    ),
    Check::kernel(
        "sendfile.socket_source",
        "a connected TCP socket as in_fd",
        Rule::new(
            Expect::is("EINVAL"),
            "sendfile(2) EINVAL: an mmap(2)-like operation is not available for in_fd \
             (splice_direct_to_actor takes only regular files and block devices)",
        ),
        socket_source,
    ),
    Check::fs(
        "sendfile.max_count",
        "bytes one call moves when asked for 4 GiB of a sparse 5 GiB file into /dev/null",
        Rule::new(
            Expect::Always(Pred::MaxRwCount),
            "sendfile(2) NOTES: sendfile() will transfer at most 0x7ffff000 (2,147,479,552) \
             bytes (MAX_RW_COUNT, as read(2)/write(2)), which is INT_MAX & PAGE_MASK \
             (include/linux/fs.h): 0x7fffc000 with 16 KiB pages, 0x7fff0000 with 64 KiB. Read \
             from tmpfs holes, which cost \
             nothing since bd194b187115 \"shmem: Implement splice-read\" (6.5); before it from \
             the holes of a sparse ext4 file, once per guest (its first ext4 cell), since tmpfs \
             then allocated every hole read; that read costs 12-15 s of TCG guest time, so it \
             runs with --profile full only. A source that runs out of room or memory is a \
             skip, not a count",
        ),
        max_count,
    ),
    Check::fs(
        "sendfile.offset_pointer",
        "with an offset pointer the file position stays and the pointer advances; with NULL \
         the position advances",
        Rule::new(
            Expect::is("ok"),
            "sendfile(2): if offset is not NULL, sendfile() does not modify the file offset of \
             in_fd and sets *offset past the last byte read; if NULL, the file offset of in_fd is \
             updated",
        ),
        offset_pointer,
    ),
    Check::fs(
        "sendfile.past_eof",
        "an offset beyond end of file: the return value",
        Rule::new(
            Expect::is("0"),
            "sendfile(2) RETURN VALUE: the number of bytes written; at or past end of file there \
             is nothing to read, as with read(2)",
        ),
        past_eof,
    ),
    Check::fs(
        "sendfile.append_out",
        "an output file opened O_APPEND",
        Rule::new(
            Expect::is("EINVAL"),
            "sendfile(2) EINVAL: out_fd has the O_APPEND flag set, which is not currently \
             supported by sendfile()",
        ),
        append_out,
    ),
    Check::fs(
        "sendfile.nonblock_partial",
        "8 MiB to a non-blocking TCP socket with a 4 KiB send buffer and no reader",
        Rule::new(
            Expect::is("partial"),
            "sendfile(2) and send(2): on a non-blocking socket a call moves what fits and returns \
             that count (EAGAIN only when nothing fits)",
        ),
        nonblock_partial,
    ),
    Check::fs(
        "sendfile.dio_source",
        "an input file opened O_DIRECT, to a pipe, data verified",
        Rule::new(Expect::is("ok"), common::EVIDENCE_DIO_SPLICE),
        dio_source,
    )
    .per_block_size(),
    Check::kernel(
        "sendfile.procfs_source",
        "/proc/version and /sys/kernel/uevent_seqnum as in_fd",
        Rule::new(Expect::is("proc=ok sys=ok"), common::EVIDENCE_PSEUDO_FILES),
        procfs_source,
    ),
];

fn source(ctx: &Ctx, name: &str, len: usize) -> Result<(File, Vec<u8>), Stop> {
    common::source(ctx, name, len, 0x5e4d)
}

/// Sends `len` bytes from `src` (its own file position) to `out` until done, an error, or 0.
fn send_all(out: impl AsFd, src: &File, len: usize) -> sys::Moved {
    let mut sent = 0;
    while sent < len {
        match sendfile(out.as_fd(), src.as_fd(), None, len - sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) => return Err((sent, e)),
        }
    }
    Ok(sent)
}

/// A file to a stream whose other end a thread drains.
fn to_stream(
    src: &File,
    data: &[u8],
    tx: impl AsFd,
    rx: impl Read + Send + 'static,
) -> Result<Observation, Stop> {
    let reader = sys::drain(rx);
    let res = send_all(&tx, src, data.len());
    drop(tx);
    let got = reader.join().expect("reader thread")?;
    Ok(common::moved(res, &got, data))
}

fn file_to_tcp(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.file_to_tcp", 256 << 10)?;
    let (tx, rx) = sys::tcp_pair()?;
    to_stream(&src, &data, tx, rx)
}

fn file_to_unix(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.file_to_unix", 256 << 10)?;
    let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
    to_stream(&src, &data, tx, rx)
}

fn file_to_file(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.file_to_file", 64 << 10)?;
    let out_path = ctx.dir.join("sendfile.file_to_file.out");
    let out = File::create(&out_path)?;
    let res = send_all(&out, &src, data.len());
    Ok(common::moved(res, &std::fs::read(&out_path)?, &data))
}

/// 16 KiB fits in a default 64 KiB pipe, so no reader is needed while sending.
fn file_to_pipe(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.file_to_pipe", 16 << 10)?;
    let (res, got) = sys::collect_pipe(|tx| send_all(tx, &src, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

/// sendfile reads through splice_direct_to_actor, which refuses anything but regular files and
/// block devices as input.
fn socket_source(_ctx: &Ctx) -> Result<Observation, Stop> {
    let (tx, rx) = sys::tcp_pair()?;
    std::io::Write::write_all(&mut &tx, b"hello")?;
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    Ok(match sendfile(null.as_fd(), rx.as_fd(), None, 5) {
        Ok(n) => Observation::saw("ok", format!("moved {n} bytes from a socket")),
        Err(e) => Observation::saw(sys::errno_name(e), format!("sendfile from a socket: {e}")),
    })
}

/// The first kernel whose tmpfs splices holes as the zero page: bd194b187115 "shmem: Implement
/// splice-read" (6.5). Before it, shmem_file_read_iter allocated (and dirtied) a page for every hole
/// a splice read, so 2 GiB of holes filled the guest's tmpfs and memory.
const TMPFS_ZERO_PAGE_HOLES: KernelVersion = KernelVersion::new(6, 5, 0);

/// One call asks for 4 GiB and do_sendfile caps the count at MAX_RW_COUNT before any
/// filesystem code runs, so any source that can supply 2 GiB answers for the kernel. Moving
/// 2 GiB costs what the source costs: nothing from tmpfs holes since 6.5 (this filesystem's
/// when it is tmpfs, else a private tmpfs mount); before 6.5, a page-cache page per hole of a
/// sparse disk file (12-15 s under TCG), paid once per guest, on its first ext4 cell.
fn max_count(ctx: &Ctx) -> Result<Observation, Stop> {
    let tmpfs = ctx.fs.as_deref() == Some("tmpfs");
    if ctx.kernel >= TMPFS_ZERO_PAGE_HOLES {
        if tmpfs {
            return count_from_holes(&ctx.dir, "tmpfs holes");
        }
        let dir = ctx.dir.join("sendfile.max_count.tmpfs");
        std::fs::create_dir_all(&dir)?;
        // A tiny tmpfs: holes take no room, and a kernel that allocated them would fill it at
        // once and be told apart by its statfs.
        let mounted = nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        );
        if mounted.is_ok() {
            let seen = count_from_holes(&dir, "holes of a private tmpfs");
            nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)?;
            let _ = std::fs::remove_dir(&dir);
            return seen;
        }
        let _ = std::fs::remove_dir(&dir);
        // No mount without root: fall through to this filesystem's holes.
    } else if tmpfs {
        return Err(skip(
            "tmpfs before 6.5 allocates a page for every hole splice reads, so 2 GiB would not \
             fit this tmpfs or memory; measured from a sparse ext4 file instead",
        ));
    }
    if ctx.owns_machine {
        if ctx.profile < Profile::Full {
            return Err(skip(
                "before 6.5 this reads 2 GiB through the page cache, 12-15 s of TCG guest \
                 time the quick profile has no room for: --profile full measures it",
            ));
        }
        if ctx.fs.as_deref() != Some("ext4") {
            return Err(skip(
                "a 2 GiB page-cache read costs 12-15 s in a TCG guest, so a guest measures it \
                 once, on ext4; the cap is the VFS's, not this filesystem's",
            ));
        }
        if let Ok(note) = std::fs::read_to_string(GUEST_NOTE) {
            return Err(skip(format!(
                "a 2 GiB page-cache read costs 12-15 s in a TCG guest, so a guest measures it \
                 once: {note}"
            )));
        }
    }
    let seen = count_from_holes(&ctx.dir, "holes of a sparse file (page cache)")?;
    if ctx.owns_machine {
        // A guest's /tmp lives as long as its boot: the note cannot outlive this kernel.
        let _ = std::fs::write(
            GUEST_NOTE,
            format!("{} on {}", seen.value, ctx.dir.display()),
        );
    }
    Ok(seen)
}

/// Where a guest notes its one costly measurement before 6.5, for its other ext4 cells.
const GUEST_NOTE: &str = "/tmp/zcmatrix-sendfile.max_count";

/// sendfile of 4 GiB from a sparse 5 GiB file in `dir` to /dev/null: the count, or a skip when
/// the filesystem or memory ran out first.
fn count_from_holes(dir: &Path, what: &str) -> Result<Observation, Stop> {
    let path = dir.join("sendfile.max_count");
    let f = File::create(&path)?;
    let sized = f.set_len(5 << 30);
    drop(f);
    if let Err(e) = sized {
        let _ = std::fs::remove_file(&path);
        return Err(skip(format!(
            "cannot make a sparse 5 GiB file here: {}",
            sys::io_error_name(&e)
        )));
    }
    let src = File::open(&path)?;
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    let free_before = nix::sys::statvfs::statvfs(dir)?.blocks_available();
    let started = Instant::now();
    let res = sendfile(null.as_fd(), src.as_fd(), None, 4 << 30);
    let took = started.elapsed().as_millis();
    // Measured before the file goes: a filesystem that allocated the holes it read shows it.
    let free_after = nix::sys::statvfs::statvfs(dir)?.blocks_available();
    drop(src);
    std::fs::remove_file(&path)?;
    match res {
        Err(e @ (Errno::ENOMEM | Errno::ENOSPC | Errno::EFBIG)) => Err(skip(format!(
            "sendfile from {what} failed with {}: the guest ran out, not the kernel's cap",
            sys::errno_name(e)
        ))),
        Err(e) => Ok(common::errno(e, &format!("sendfile of 4 GiB from {what}"))),
        Ok(n) if n < max_rw_count() && (free_after == 0 || free_after < free_before) => {
            Err(skip(format!(
                "moved {n} from {what}, and the filesystem lost {} of {free_before} free \
                 blocks doing it: the source ran out of room, not the call",
                free_before - free_after
            )))
        }
        Ok(n) => Ok(Observation::saw(
            n.to_string(),
            format!("asked 4294967296, moved {n} from {what} in {took} ms"),
        )
        .measured(vec![Measure::new("", n as f64, "bytes")])),
    }
}

fn position(f: &File) -> std::io::Result<u64> {
    let mut g = f;
    g.stream_position()
}

fn offset_pointer(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, _) = source(ctx, "sendfile.offset_pointer", 8192)?;
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    let mut off: libc::off_t = 1000;
    let n1 = sendfile(null.as_fd(), src.as_fd(), Some(&mut off), 500)?;
    let pos1 = position(&src)?;
    let n2 = sendfile(null.as_fd(), src.as_fd(), None, 700)?;
    let pos2 = position(&src)?;
    let mut wrong = Vec::new();
    if n1 != 500 || off != 1500 {
        wrong.push(format!(
            "with a pointer: moved {n1}, pointer now {off} (want 500, 1500)"
        ));
    }
    if pos1 != 0 {
        wrong.push(format!("with a pointer the file position moved to {pos1}"));
    }
    if n2 != 700 || pos2 != 700 {
        wrong.push(format!(
            "with NULL: moved {n2}, position now {pos2} (want 700, 700)"
        ));
    }
    Ok(if wrong.is_empty() {
        Observation::saw("ok", "pointer advanced alone; NULL advanced the position")
    } else {
        Observation::saw("deviates", wrong.join("; "))
    })
}

fn past_eof(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, _) = source(ctx, "sendfile.past_eof", 4096)?;
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    let mut off: libc::off_t = 10_000;
    Ok(
        match sendfile(null.as_fd(), src.as_fd(), Some(&mut off), 4096) {
            Ok(n) => Observation::number(n as f64, "bytes", "offset 10000 of a 4096-byte file"),
            Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
        },
    )
}

fn append_out(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.append_out", 4096)?;
    let out_path = ctx.dir.join("sendfile.append_out.out");
    std::fs::write(&out_path, b"head")?;
    let out = OpenOptions::new().append(true).open(&out_path)?;
    Ok(match send_all(&out, &src, data.len()) {
        Ok(sent) => {
            let want = [&b"head"[..], &data].concat();
            if std::fs::read(&out_path)? == want {
                Observation::saw("ok", format!("{sent} bytes appended after the old content"))
            } else {
                Observation::saw(
                    "misplaced",
                    format!("{sent} bytes reported, file content wrong"),
                )
            }
        }
        Err((sent, e)) => common::errno_after(sent, e),
    })
}

fn nonblock_partial(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = source(ctx, "sendfile.nonblock_partial", 8 << 20)?;
    let (tx, _rx) = sys::tcp_pair()?;
    tx.set_nonblocking(true)?;
    let size: libc::c_int = 4096;
    // SAFETY: valid socket and option buffer of the size given.
    let set = unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(set)?;
    Ok(match sendfile(tx.as_fd(), src.as_fd(), None, data.len()) {
        Ok(n) if n > 0 && n < data.len() => Observation::saw(
            "partial",
            format!("moved {n} of {} and returned", data.len()),
        ),
        // Socket buffers sized by this machine's tcp_wmem/tcp_rmem held it all: nothing was
        // left to be partial about.
        Ok(n) if n == data.len() => {
            return Err(skip(format!(
                "the socket buffers took all {n} bytes; no partial send to observe"
            )))
        }
        Ok(n) => Observation::number(n as f64, "bytes", format!("moved {n} of {}", data.len())),
        Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
    })
}

fn dio_source(ctx: &Ctx) -> Result<Observation, Stop> {
    let (_, data) = source(ctx, "sendfile.dio_source", 16 << 10)?;
    let src = common::direct_or_skip(&ctx.dir.join("sendfile.dio_source"), false, 0)?;
    let (res, got) = sys::collect_pipe(|tx| send_all(tx, &src, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

/// Pseudo-files whose file operations lack ->splice_read fail with EINVAL since 5.10.
fn procfs_source(_ctx: &Ctx) -> Result<Observation, Stop> {
    Ok(common::pseudo_sources(|f, tx| {
        sendfile(tx.as_fd(), f.as_fd(), None, 4096)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(kernel: (u32, u32), fs: &str) -> Ctx {
        Ctx {
            kernel: KernelVersion::new(kernel.0, kernel.1, 0),
            dir: std::path::PathBuf::from("/nonexistent/zcmatrix"),
            fs: Some(fs.into()),
            logical_block_size: None,
            device: None,
            owns_machine: true,
            mounts: Vec::new(),
            profile: Profile::Full,
            variant: None,
        }
    }

    fn skipped(r: Result<Observation, Stop>) -> String {
        match r {
            Err(Stop::Skip(why)) => why,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn max_count_skips_sources_that_would_allocate_or_cost_a_guest_twice() {
        // Neither touches the (nonexistent) directory: the decision comes first.
        assert!(skipped(max_count(&ctx((5, 10), "tmpfs"))).contains("allocates a page"));
        assert!(skipped(max_count(&ctx((6, 1), "xfs"))).contains("once, on ext4"));
    }

    #[test]
    fn max_count_reads_gigabytes_before_6_5_only_in_the_full_profile() {
        let quick = |k, fs| Ctx {
            profile: Profile::Quick,
            ..ctx(k, fs)
        };
        assert!(skipped(max_count(&quick((6, 1), "ext4"))).contains("--profile full"));
        assert!(skipped(max_count(&quick((5, 10), "ext4"))).contains("--profile full"));
    }
}
