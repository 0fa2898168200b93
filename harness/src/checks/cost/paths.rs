//! The ways a file can reach a sink, each moving the whole file and counting the system calls it
//! makes (every call, including the mmap/munmap and the completion reaping a path needs, so
//! that a path which saves copies but needs more calls shows both).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;

use super::sink::SinkKind;
use crate::checks::{broken, common, skip, Stop};
use crate::sys::{self, Mapping};

/// What read+write, splice and io_uring move per call: a 64 KiB buffer, the size of a default
/// pipe (pipe(7)), so those three differ in how, not in how much per call.
pub const CHUNK: usize = 64 << 10;

/// Buffers io_uring chains per submission (each a read then a write).
const URING_DEPTH: usize = 4;

use libc::SO_ZEROCOPY;
use sys::abi::{SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY};

/// How a file moves to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// read(2) into a 64 KiB buffer, write(2) it out: the baseline every ratio compares with.
    ReadWrite,
    /// mmap(2) the file, one write(2) of the mapping, munmap.
    MmapWrite,
    /// sendfile(2) with an offset pointer until done.
    Sendfile,
    /// splice(2) file → pipe → sink, 64 KiB at a time.
    Splice,
    /// copy_file_range(2) (file sinks).
    CopyFileRange,
    /// io_uring IORING_OP_READ_FIXED then IORING_OP_WRITE_FIXED through four registered 64 KiB
    /// buffers, linked in one chain per submission.
    Uring,
    /// mmap(2) the file, send(2) it with MSG_ZEROCOPY, reap the completions from the error
    /// queue (socket sinks).
    MsgZerocopy,
    /// mmap(2) the file, IORING_OP_SEND_ZC it, wait for the result and the notification (socket
    /// sinks, 6.0+).
    UringSendZc,
}

/// A system call's return value as a count or its errno.
fn ret(r: isize) -> Result<usize, Errno> {
    Errno::result(r).map(|n| n as usize)
}

/// A failed call of a path: the probe cannot measure it.
fn failed(what: &str, e: Errno) -> Stop {
    broken(format!("{what}: {}", sys::errno_name(e)))
}

/// One system call of a path that moves bytes, counted and retried on EINTR: the bytes it
/// moved; none before the end, or an errno, and the probe cannot measure the path.
fn moving(
    calls: &mut u64,
    what: &str,
    mut call: impl FnMut() -> Result<usize, Errno>,
) -> Result<usize, Stop> {
    loop {
        *calls += 1;
        match call() {
            Ok(0) => return Err(broken(format!("{what} moved 0 bytes before the end"))),
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(failed(what, e)),
        }
    }
}

/// Writes all of `buf` to `fd` with write(2), counting calls.
fn write_all(fd: RawFd, buf: &[u8], calls: &mut u64) -> Result<(), Stop> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        done += moving(calls, "write", || {
            // SAFETY: `rest` is valid for reads of its length.
            ret(unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) })
        })?;
    }
    Ok(())
}

/// A read-only shared mapping of the first `len` bytes of `src`: one call.
fn map(src: &File, len: usize, calls: &mut u64) -> Result<Mapping, Stop> {
    *calls += 1;
    Mapping::new(len, libc::PROT_READ, libc::MAP_SHARED, src.as_raw_fd(), 0)
        .map_err(|e| failed("mmap", e))
}

/// io_uring state: the ring and the registered buffers it reads into (dropped after the ring).
struct Ring {
    ring: IoUring,
    bufs: Vec<Vec<u8>>,
}

/// One path, ready to move files to one sink: buffers, a pipe, a ring, set up once outside the
/// measured window (a server does that once, not per file).
pub struct Mover {
    pub path: Path,
    buf: Vec<u8>,
    pipe: Option<(File, File)>,
    ring: Option<Ring>,
    /// MSG_ZEROCOPY: the id the next send gets (ids count per socket, from 0).
    zc_next: u32,
    /// MSG_ZEROCOPY: how many sends the kernel has said it is done with.
    zc_done: u32,
    /// Whether a MSG_ZEROCOPY completion said the kernel copied after all
    /// (SO_EE_CODE_ZEROCOPY_COPIED); `None` before the first.
    pub copied: Option<bool>,
}

impl Mover {
    pub fn new(path: Path, sink: SinkKind, out: BorrowedFd) -> Result<Mover, Stop> {
        let mut m = Mover {
            path,
            buf: Vec::new(),
            pipe: None,
            ring: None,
            zc_next: 0,
            zc_done: 0,
            copied: None,
        };
        match path {
            Path::ReadWrite => m.buf = vec![0u8; CHUNK],
            Path::Splice => m.pipe = Some(sys::pipe()?),
            Path::CopyFileRange if sink != SinkKind::File => {
                return Err(broken("copy_file_range needs a file sink"))
            }
            Path::Uring => {
                let ring = common::uring_ring(2 * URING_DEPTH as u32)?;
                let bufs: Vec<Vec<u8>> = (0..URING_DEPTH).map(|_| vec![0u8; CHUNK]).collect();
                let iov: Vec<libc::iovec> = bufs
                    .iter()
                    .map(|b| libc::iovec {
                        iov_base: b.as_ptr() as *mut _,
                        iov_len: b.len(),
                    })
                    .collect();
                // SAFETY: the buffers live in the same Ring and are dropped after the ring.
                unsafe { ring.submitter().register_buffers(&iov) }.map_err(|e| {
                    broken(format!(
                        "registering fixed buffers: {}",
                        sys::io_error_name(&e)
                    ))
                })?;
                m.ring = Some(Ring { ring, bufs });
            }
            Path::MsgZerocopy => {
                let one: libc::c_int = 1;
                // SAFETY: setsockopt with a pointer to an int of the size given.
                let r = unsafe {
                    libc::setsockopt(
                        out.as_raw_fd(),
                        libc::SOL_SOCKET,
                        SO_ZEROCOPY,
                        (&one as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as u32,
                    )
                };
                Errno::result(r).map_err(|e| {
                    skip(format!(
                        "setsockopt(SO_ZEROCOPY) refused with {} (MSG_ZEROCOPY came in 4.14)",
                        sys::errno_name(e)
                    ))
                })?;
            }
            Path::UringSendZc => {
                let ring = common::uring_ring(4)?;
                if !common::uring_probe(&ring)?.is_supported(opcode::SendZc::CODE) {
                    return Err(skip(
                        "this kernel's io_uring has no IORING_OP_SEND_ZC (it came in 6.0, \
                         b48c312be05e \"io_uring/net: simplify zerocopy send user API\")",
                    ));
                }
                m.ring = Some(Ring {
                    ring,
                    bufs: Vec::new(),
                });
            }
            Path::MmapWrite | Path::Sendfile | Path::CopyFileRange => {}
        }
        Ok(m)
    }

    /// Moves `len` bytes of `src` (from offset 0; its file position is 0) to `out`; returns the
    /// system calls made.
    pub fn run(&mut self, src: &File, out: BorrowedFd, len: usize) -> Result<u64, Stop> {
        let mut calls = 0;
        match self.path {
            Path::ReadWrite => self.read_write(src, out, len, &mut calls)?,
            Path::MmapWrite => {
                let m = map(src, len, &mut calls)?;
                // SAFETY: the mapping is live and `len` bytes long.
                let bytes = unsafe { std::slice::from_raw_parts(m.as_ptr(), len) };
                write_all(out.as_raw_fd(), bytes, &mut calls)?;
                drop(m);
                calls += 1; // munmap
            }
            Path::Sendfile => {
                let mut off: libc::off_t = 0;
                while (off as usize) < len {
                    let left = len - off as usize;
                    moving(&mut calls, "sendfile", || {
                        nix::sys::sendfile::sendfile(out, src.as_fd(), Some(&mut off), left)
                    })?;
                }
            }
            Path::Splice => self.splice(src, out, len, &mut calls)?,
            Path::CopyFileRange => {
                let out = File::from(out.try_clone_to_owned()?);
                let mut done = 0;
                while done < len {
                    let off = done as i64;
                    done += moving(&mut calls, "copy_file_range", || {
                        sys::copy_range(src, Some(off), &out, Some(off), len - done)
                    })?;
                }
            }
            Path::Uring => self.uring(src, out, len, &mut calls)?,
            Path::MsgZerocopy => self.msg_zerocopy(src, out, len, &mut calls)?,
            Path::UringSendZc => self.send_zc(src, out, len, &mut calls)?,
        }
        Ok(calls)
    }

    fn read_write(
        &mut self,
        src: &File,
        out: BorrowedFd,
        len: usize,
        calls: &mut u64,
    ) -> Result<(), Stop> {
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len());
            let buf = self.buf.as_mut_ptr();
            let n = moving(calls, "read", || {
                // SAFETY: the buffer is valid for writes of `want <= len()` bytes.
                ret(unsafe { libc::read(src.as_raw_fd(), buf.cast(), want) })
            })?;
            write_all(out.as_raw_fd(), &self.buf[..n], calls)?;
            left -= n;
        }
        Ok(())
    }

    fn splice(
        &mut self,
        src: &File,
        out: BorrowedFd,
        len: usize,
        calls: &mut u64,
    ) -> Result<(), Stop> {
        let (rx, tx) = self.pipe.as_ref().expect("a splice mover has a pipe");
        let mut off: libc::loff_t = 0;
        while (off as usize) < len {
            let want = CHUNK.min(len - off as usize);
            let mut n = moving(calls, "splice from the file", || {
                let flags = SpliceFFlags::empty();
                nix::fcntl::splice(src.as_fd(), Some(&mut off), tx.as_fd(), None, want, flags)
            })?;
            while n > 0 {
                n -= moving(calls, "splice to the sink", || {
                    nix::fcntl::splice(rx.as_fd(), None, out, None, n, SpliceFFlags::empty())
                })?;
            }
        }
        Ok(())
    }

    /// Rounds of one chain READ_FIXED → WRITE_FIXED → READ_FIXED → … over the four buffers, one
    /// io_uring_enter each. A chain runs in order, so a stream receives the bytes in order; a
    /// short write breaks it, and the next round starts where the bytes written end.
    fn uring(
        &mut self,
        src: &File,
        out: BorrowedFd,
        len: usize,
        calls: &mut u64,
    ) -> Result<(), Stop> {
        let Ring { ring, bufs } = self.ring.as_mut().expect("a uring mover has a ring");
        let is_file = nix::sys::stat::fstat(out)
            .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG)
            .unwrap_or(false);
        let (src_fd, out_fd) = (types::Fd(src.as_raw_fd()), types::Fd(out.as_raw_fd()));
        let mut done = 0usize;
        while done < len {
            let mut pairs = Vec::new();
            let mut off = done;
            let depth = bufs.len();
            for (i, b) in bufs.iter_mut().enumerate() {
                if off >= len {
                    break;
                }
                let n = CHUNK.min(len - off);
                pairs.push(n);
                let read = opcode::ReadFixed::new(src_fd, b.as_mut_ptr(), n as u32, i as u16)
                    .offset(off as u64)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data((2 * i) as u64);
                // A stream ignores the offset (its position is the stream's).
                let write = opcode::WriteFixed::new(out_fd, b.as_ptr(), n as u32, i as u16)
                    .offset(if is_file { off as u64 } else { 0 })
                    .build()
                    .user_data((2 * i + 1) as u64);
                let last = off + n >= len || i + 1 == depth;
                let write = if last {
                    write
                } else {
                    write.flags(squeue::Flags::IO_LINK)
                };
                // SAFETY: the registered buffers and both descriptors outlive the wait below.
                unsafe {
                    let mut sq = ring.submission();
                    sq.push(&read)
                        .and_then(|_| sq.push(&write))
                        .map_err(|_| broken("io_uring submission queue full"))?;
                }
                off += n;
            }
            let want = 2 * pairs.len();
            *calls += 1;
            ring.submit_and_wait(want)?;
            let mut res = vec![0i32; want];
            let mut seen = 0;
            while seen < want {
                for c in ring.completion() {
                    res[c.user_data() as usize] = c.result();
                    seen += 1;
                }
                if seen < want {
                    *calls += 1;
                    ring.submit_and_wait(want - seen)?;
                }
            }
            // Bytes that reached the sink, in order, up to the first pair that fell short.
            for (i, n) in pairs.iter().enumerate() {
                let (r, w) = (res[2 * i], res[2 * i + 1]);
                if r < 0 && r != -libc::ECANCELED {
                    return Err(failed("IORING_OP_READ_FIXED", Errno::from_raw(-r)));
                }
                if w < 0 && w != -libc::ECANCELED {
                    return Err(failed("IORING_OP_WRITE_FIXED", Errno::from_raw(-w)));
                }
                if r < 0 || w < 0 {
                    break;
                }
                done += w as usize;
                if w as usize != *n {
                    break;
                }
            }
        }
        Ok(())
    }

    fn msg_zerocopy(
        &mut self,
        src: &File,
        out: BorrowedFd,
        len: usize,
        calls: &mut u64,
    ) -> Result<(), Stop> {
        let m = map(src, len, calls)?;
        let fd = out.as_raw_fd();
        let mut sent = 0;
        while sent < len {
            // SAFETY: the mapping is live for `len` bytes; the kernel pins the pages it sends
            // and reports on the error queue when it has let go of them, which we wait for
            // before unmapping.
            let r = unsafe {
                libc::send(
                    fd,
                    m.as_ptr().add(sent).cast(),
                    len - sent,
                    libc::MSG_ZEROCOPY,
                )
            };
            *calls += 1;
            match ret(r) {
                Ok(n) => {
                    sent += n;
                    self.zc_next += 1;
                }
                Err(Errno::EINTR) => {}
                // The socket's optmem limit: reap completions, then go on. With no send
                // outstanding there is nothing to reap: the pages could not be pinned.
                Err(Errno::ENOBUFS) if self.zc_done < self.zc_next => {
                    self.reap(fd, false, calls)?
                }
                Err(e @ Errno::ENOBUFS) => {
                    return Err(sys::needs_memlock("send(MSG_ZEROCOPY)", e)
                        .map(skip)
                        .unwrap_or_else(|| failed("send(MSG_ZEROCOPY)", e)))
                }
                Err(e) => return Err(failed("send(MSG_ZEROCOPY)", e)),
            }
        }
        self.reap(fd, true, calls)?;
        drop(m);
        *calls += 1; // munmap
        Ok(())
    }

    /// Reads MSG_ZEROCOPY completions from the error queue: until every send so far is
    /// complete (`all`), or until one arrived.
    fn reap(&mut self, fd: RawFd, all: bool, calls: &mut u64) -> Result<(), Stop> {
        let mut done_upto: Option<u32> = None;
        loop {
            if let Some(hi) = done_upto {
                self.zc_done = self.zc_done.max(hi + 1);
            }
            let complete = self.zc_done >= self.zc_next;
            if complete || (!all && done_upto.is_some()) {
                return Ok(());
            }
            let mut pfd = libc::pollfd {
                fd,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd. POLLERR is always reported: the error queue has data.
            let r = unsafe { libc::poll(&mut pfd, 1, 10_000) };
            *calls += 1;
            match Errno::result(r) {
                Ok(0) => return Err(broken("no MSG_ZEROCOPY completion within 10 s")),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(failed("poll", e)),
            }
            // Everything queued, until EAGAIN.
            loop {
                let mut control = [0u64; 16];
                // SAFETY: msghdr is plain data; zeroed is an empty header.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control) as _;
                // SAFETY: `msg` points at a control buffer we own; no data iovec.
                let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE) };
                *calls += 1;
                match ret(r as isize) {
                    Ok(_) => {}
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(failed("recvmsg(MSG_ERRQUEUE)", e)),
                }
                // SAFETY: walking the control messages the kernel wrote into `msg`.
                let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
                while !c.is_null() {
                    // SAFETY: `c` is a control message header inside `control`.
                    let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
                    if (level, kind) == (libc::SOL_IP, libc::IP_RECVERR)
                        || (level, kind) == (libc::SOL_IPV6, libc::IPV6_RECVERR)
                    {
                        // SAFETY: IP_RECVERR carries a struct sock_extended_err.
                        let e: libc::sock_extended_err =
                            unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                        if e.ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                            // ee_info..=ee_data: the range of send ids completed.
                            done_upto = Some(done_upto.map_or(e.ee_data, |d| d.max(e.ee_data)));
                            let copied = e.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0;
                            self.copied = Some(self.copied.unwrap_or(false) || copied);
                        }
                    }
                    // SAFETY: as above.
                    c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
                }
            }
        }
    }

    fn send_zc(
        &mut self,
        src: &File,
        out: BorrowedFd,
        len: usize,
        calls: &mut u64,
    ) -> Result<(), Stop> {
        let m = map(src, len, calls)?;
        let ring = &mut self.ring.as_mut().expect("a send_zc mover has a ring").ring;
        let mut sent = 0;
        while sent < len {
            let n = (len - sent).min(u32::MAX as usize);
            // SAFETY: the mapping lives until after the notification below, which says the
            // kernel is done with its pages.
            let sqe = unsafe {
                opcode::SendZc::new(types::Fd(out.as_raw_fd()), m.as_ptr().add(sent), n as u32)
                    .flags(libc::MSG_WAITALL)
                    .build()
            };
            // SAFETY: as above.
            unsafe { ring.submission().push(&sqe) }
                .map_err(|_| broken("io_uring submission queue full"))?;
            let (mut result, mut notified) = (None, false);
            while result.is_none() || !notified {
                *calls += 1;
                ring.submit_and_wait(1)?;
                for c in ring.completion() {
                    if cqueue::notif(c.flags()) {
                        notified = true;
                    } else {
                        result = Some(c.result());
                        // Without IORING_CQE_F_MORE no notification follows.
                        notified |= !cqueue::more(c.flags());
                    }
                }
            }
            match result.expect("loop ends with a result") {
                r if r < 0 => {
                    let e = Errno::from_raw(-r);
                    return Err(sys::needs_memlock("IORING_OP_SEND_ZC", e)
                        .map(skip)
                        .unwrap_or_else(|| failed("IORING_OP_SEND_ZC", e)));
                }
                0 => return Err(broken("IORING_OP_SEND_ZC sent 0 bytes")),
                r => sent += r as usize,
            }
        }
        drop(m);
        *calls += 1; // munmap
        Ok(())
    }
}
