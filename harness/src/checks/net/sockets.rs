//! Socket helpers of the family: setsockopt of a typed value, send(MSG_ZEROCOPY) in chunks, and
//! reading the zero-copy completions off a socket's error queue.

use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use libc::SO_ZEROCOPY;
use nix::errno::Errno;

use super::super::{broken, Stop};
use crate::sys::abi::{SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY};

pub(super) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> nix::Result<()> {
    // SAFETY: `value` is a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    Errno::result(r).map(drop)
}

/// What the zero-copy completions of a socket said.
#[derive(Debug, Default)]
pub(super) struct Completions {
    /// Send calls the completions cover.
    covered: u32,
    /// Of those, in ranges flagged SO_EE_CODE_ZEROCOPY_COPIED.
    copied: u32,
    /// Each completion's range of send calls, `first..last`, with ` copied` when flagged.
    pub(super) ranges: Vec<String>,
}

impl Completions {
    /// `copied`, `zerocopy` or `mixed`; `missing` when some send has no completion.
    pub(super) fn word(&self, calls: u32) -> &'static str {
        if self.covered < calls {
            "missing"
        } else if self.copied == self.covered {
            "copied"
        } else if self.copied == 0 {
            "zerocopy"
        } else {
            "mixed"
        }
    }
}

/// Reads zero-copy completions from `fd`'s error queue until `calls` send calls are covered or
/// `wait` passes.
pub(super) fn completions(fd: RawFd, calls: u32, wait: Duration) -> Result<Completions, Stop> {
    let mut c = Completions::default();
    let end = Instant::now() + wait;
    while c.covered < calls {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
        if n < 0 && Errno::last() != Errno::EINTR {
            return Err(broken(format!("poll for POLLERR: {}", Errno::last())));
        }
        if n <= 0 || pfd.revents & libc::POLLERR == 0 {
            continue;
        }
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; zeroed is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at a control buffer that outlives the call; no data buffers.
        let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE) };
        if r < 0 {
            match Errno::last() {
                Errno::EAGAIN | Errno::EINTR => continue,
                e => return Err(broken(format!("recvmsg(MSG_ERRQUEUE): {e}"))),
            }
        }
        // SAFETY: walking the control messages the kernel wrote into `control`.
        let mut cm = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cm.is_null() {
            // SAFETY: cm points into `control`, inside msg_controllen.
            let h = unsafe { &*cm };
            if (h.cmsg_level, h.cmsg_type) == (libc::SOL_IP, libc::IP_RECVERR)
                || (h.cmsg_level, h.cmsg_type) == (libc::SOL_IPV6, libc::IPV6_RECVERR)
            {
                // SAFETY: IP_RECVERR data is a sock_extended_err; read unaligned from the buffer.
                let e: libc::sock_extended_err =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast()) };
                if e.ee_origin == SO_EE_ORIGIN_ZEROCOPY && e.ee_errno == 0 {
                    let n = e.ee_data.wrapping_sub(e.ee_info) + 1;
                    c.covered += n;
                    let copied = e.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0;
                    if copied {
                        c.copied += n;
                    }
                    c.ranges.push(format!(
                        "{}..{}{}",
                        e.ee_info,
                        e.ee_data,
                        if copied { " copied" } else { "" }
                    ));
                }
            }
            // SAFETY: as above.
            cm = unsafe { libc::CMSG_NXTHDR(&msg, cm) };
        }
    }
    Ok(c)
}

/// Sets SO_ZEROCOPY and sends `data` in `chunk`-byte send(MSG_ZEROCOPY) calls; returns the
/// number of calls that sent something, or the errno (with what failed) that stopped it.
pub(super) fn send_zerocopy(
    s: &TcpStream,
    data: &[u8],
    chunk: usize,
) -> Result<u32, (Errno, &'static str)> {
    let fd = s.as_raw_fd();
    setsockopt(fd, libc::SOL_SOCKET, SO_ZEROCOPY, &1 as &libc::c_int)
        .map_err(|e| (e, "setsockopt(SO_ZEROCOPY)"))?;
    let mut calls = 0;
    let mut at = 0;
    while at < data.len() {
        let n = chunk.min(data.len() - at);
        // SAFETY: the buffer is valid for n bytes; `data` outlives the completions, which the
        // caller reads before dropping it.
        let r = unsafe { libc::send(fd, data[at..].as_ptr().cast(), n, libc::MSG_ZEROCOPY) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err((e, "send(MSG_ZEROCOPY)")),
            }
        }
        at += r as usize;
        calls += 1;
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_what_they_covered() {
        let c = Completions {
            covered: 4,
            copied: 4,
            ranges: vec![],
        };
        assert_eq!(c.word(4), "copied");
        assert_eq!(c.word(5), "missing");
        let c = Completions {
            covered: 4,
            copied: 1,
            ranges: vec![],
        };
        assert_eq!(c.word(4), "mixed");
    }
}
