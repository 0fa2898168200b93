//! sendfile(2): which descriptors may stand on each side, how much one call moves, and what the
//! offset argument and the output's flags do. Data is verified byte for byte wherever it moves.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::sys::sendfile::sendfile;

use super::{common, Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys;

/// sendfile and read/write never move more than this in one call.
pub const MAX_RW_COUNT: usize = 0x7fff_f000;

const EVIDENCE_ANY_OUT: &str = "sendfile(2) NOTES: before Linux 2.6.33 out_fd had to be a \
    socket; since then it can be any file (5.10's splice rework broke pipes briefly: \
    \"fs/pipe: allow sendfile() to pipe again\")";

/// Why /proc and /sys files still splice after 5.10 made ->splice_read mandatory.
pub const EVIDENCE_PSEUDO_FILES: &str = "36e2c7421f02 \"fs: don't allow splice read/write without \
    explicit ops\" (5.10) made files without ->splice_read fail with EINVAL; fe33850ff798 \"proc: \
    wire up generic_file_splice_read for iter ops\" and \"kernfs: wire up ->splice_read and \
    ->splice_write\" (5.10 and its stable updates) gave procfs seq files and sysfs one back";

pub const CHECKS: &[Check] = &[
    Check::fs(
        "sendfile.file_to_tcp",
        "a 256 KiB file to a loopback TCP socket, data verified",
        Rule::new(Expect::is("ok"), "sendfile(2): the classic use, a file to a socket"),
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
        Rule::new(Expect::is("EINVAL"), "sendfile(2) EINVAL: an mmap(2)-like operation is not available for in_fd \
                       (splice_direct_to_actor takes only regular files and block devices)"),
        socket_source,
    ),
    Check::kernel(
        "sendfile.max_count",
        "bytes one call moves when asked for 4 GiB of a sparse 5 GiB file into /dev/null",
        Rule::new(Expect::is("2147479552"), "sendfile(2) NOTES: sendfile() will transfer at most 0x7ffff000 \
                       (2,147,479,552) bytes (MAX_RW_COUNT, as read(2)/write(2))"),
        max_count,
    ),
    Check::fs(
        "sendfile.offset_pointer",
        "with an offset pointer the file position stays and the pointer advances; with NULL the position advances",
        Rule::new(Expect::is("ok"), "sendfile(2): if offset is not NULL, sendfile() does not modify the file \
                       offset of in_fd and sets *offset past the last byte read; if NULL, the \
                       file offset of in_fd is updated"),
        offset_pointer,
    ),
    Check::fs(
        "sendfile.past_eof",
        "an offset beyond end of file: the return value",
        Rule::new(Expect::is("0"), "sendfile(2) RETURN VALUE: the number of bytes written; at or past end of \
                       file there is nothing to read, as with read(2)"),
        past_eof,
    ),
    Check::fs(
        "sendfile.append_out",
        "an output file opened O_APPEND",
        Rule::new(Expect::is("EINVAL"), "sendfile(2) EINVAL: out_fd has the O_APPEND flag set, which is not \
                       currently supported by sendfile()"),
        append_out,
    ),
    Check::fs(
        "sendfile.nonblock_partial",
        "8 MiB to a non-blocking TCP socket with a 4 KiB send buffer and no reader",
        Rule::new(Expect::is("partial"), "sendfile(2) and send(2): on a non-blocking socket a call moves what fits \
                       and returns that count (EAGAIN only when nothing fits)"),
        nonblock_partial,
    ),
    Check::fs(
        "sendfile.dio_source",
        "an input file opened O_DIRECT, to a pipe, data verified",
        Rule::new(common::DIRECT_OPEN, "splice and sendfile read O_DIRECT files (through the page cache up to 6.4, \
                       since 6.5 by \"splice: Make splice from an O_DIRECT fd use \
                       copy_splice_read()\"); tmpfs opens O_DIRECT only since 6.6 (e88e0d366f9c)"),
        dio_source,
    ),
    Check::kernel(
        "sendfile.procfs_source",
        "/proc/version and /sys/kernel/uevent_seqnum as in_fd",
        Rule::new(Expect::is("proc=ok sys=ok"), EVIDENCE_PSEUDO_FILES),
        procfs_source,
    ),
];

fn source(ctx: &Ctx, name: &str, len: usize) -> anyhow::Result<(File, Vec<u8>)> {
    let path = ctx.dir.join(name);
    let data = sys::pattern(len, name.len() as u64 ^ 0x5e4d);
    sys::write_file_synced(&path, &data)?;
    Ok((File::open(&path)?, data))
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

/// One call asks for 4 GiB; do_sendfile caps the count at MAX_RW_COUNT before any filesystem
/// code runs, so this is a kernel-scope check, measured on the scratch tmpfs: 2 GiB of holes
/// through a disk filesystem's page cache cost 15-20 s per filesystem under TCG and would say
/// nothing more. The file is sparse so that nothing is stored.
fn max_count(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("sendfile.max_count");
    let f = File::create(&path)?;
    f.set_len(5 << 30)?;
    drop(f);
    let src = File::open(&path)?;
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    let res = sendfile(null.as_fd(), src.as_fd(), None, 4 << 30);
    // Measured before the file goes: a short count with no space left means the filesystem
    // allocated the holes it read and ran out, not that sendfile has another cap.
    let full = nix::sys::statvfs::statvfs(&ctx.dir).map(|v| v.blocks_available() == 0);
    drop(src);
    std::fs::remove_file(&path)?;
    Ok(match res {
        Ok(n) if n < MAX_RW_COUNT && full == Ok(true) => Observation::saw(
            "fs-full",
            format!("moved {n}, then the filesystem under the file had no space left"),
        ),
        Ok(n) => Observation::saw(n.to_string(), format!("asked 4294967296, moved {n}")),
        Err(e) => Observation::saw(sys::errno_name(e), format!("sendfile of 4 GiB: {e}")),
    })
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
            Ok(n) => Observation::saw(n.to_string(), "offset 10000 of a 4096-byte file"),
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
    // SAFETY: valid socket and option buffer.
    unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok(match sendfile(tx.as_fd(), src.as_fd(), None, data.len()) {
        Ok(n) if n > 0 && n < data.len() => Observation::saw(
            "partial",
            format!("moved {n} of {} and returned", data.len()),
        ),
        Ok(n) => Observation::saw(
            if n == 0 { "0" } else { "complete" },
            format!("moved {n} of {}", data.len()),
        ),
        Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
    })
}

fn dio_source(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("sendfile.dio_source");
    let data = sys::pattern(16 << 10, 0xd105);
    sys::write_file_synced(&path, &data)?;
    let src = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            return Ok(Observation::saw(
                sys::io_error_name(&e),
                "the input cannot be opened O_DIRECT here",
            ))
        }
    };
    let (res, got) = sys::collect_pipe(|tx| send_all(tx, &src, data.len()))?;
    Ok(common::moved(res, &got, &data))
}

/// /proc/version and /sys/kernel/uevent_seqnum moved into a pipe by `mover`: `ok` when
/// something arrived, else the errno (or `missing`, `empty`).
pub fn pseudo_sources(mover: impl Fn(&File, &File) -> nix::Result<usize>) -> Observation {
    let one = |path: &str| {
        let Ok(f) = File::open(path) else {
            return "missing".to_string();
        };
        match sys::collect_pipe(|tx| mover(&f, tx)) {
            Ok((Ok(0), _)) => "empty".into(),
            Ok((Ok(_), _)) => "ok".into(),
            Ok((Err(e), _)) => sys::errno_name(e),
            Err(e) => sys::io_error_name(&e),
        }
    };
    Observation::saw(
        format!(
            "proc={} sys={}",
            one("/proc/version"),
            one("/sys/kernel/uevent_seqnum")
        ),
        "/proc/version and /sys/kernel/uevent_seqnum into a pipe",
    )
}

/// Pseudo-files whose file operations lack ->splice_read fail with EINVAL since 5.10.
fn procfs_source(_ctx: &Ctx) -> Result<Observation, Stop> {
    Ok(pseudo_sources(|f, tx| {
        sendfile(tx.as_fd(), f.as_fd(), None, 4096)
    }))
}
