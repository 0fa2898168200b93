//! TCP receive zero-copy: mmap(2) of a TCP socket and getsockopt(TCP_ZEROCOPY_RECEIVE), over
//! loopback and from the host end through virtio-net.

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::super::{broken, common, Check, Ctx, Expect, Observation, Pred, Rule, Stop};
use super::sockets::{completions, send_zerocopy};
use super::ZC_LEN;
use crate::sys::{self, AlignedBuf};
use sys::abi::TcpZerocopyReceive as ZeroCopyReceive;

const EVIDENCE_ZC_RECEIVE: &str = "05255b823a61 \"tcp: add TCP_ZEROCOPY_RECEIVE support for \
    zerocopy receive\" and 93ab6cc69162 \"tcp: implement mmap() for zero copy receive\" (4.18): \
    mmap(2) of a TCP socket, then getsockopt(TCP_ZEROCOPY_RECEIVE) maps the received payload \
    that lies in whole pages (can_map_frag: a fragment of PAGE_SIZE at offset 0) and returns in \
    recv_skip_hint the bytes that must be read with recvmsg(2) instead: the documented fallback. \
    On loopback a MSG_ZEROCOPY sender's pages are copied on delivery into fresh order-0 pages \
    (skb_copy_ubufs), so a payload of many pages arrives page-aligned (`mapped`); a payload \
    shorter than a page can never be mapped (`copied`, all through the hint)";

const EVIDENCE_ZC_RECEIVE_ALIGNED: &str = "as tcp_zerocopy_receive: only a fragment of \
    exactly PAGE_SIZE at offset 0 maps (can_map_frag). On loopback skb_copy_ubufs copies the \
    sender's pages into fresh pages filled one after another, whole but the last; a loopback \
    segment carries less than 64 KiB (gso_max_size 65536 less the headers, tcp_tso_autosize), \
    so it holds whole 4 KiB and 16 KiB pages (`mapped`) but never a whole 64 KiB page: with \
    64 KiB pages every byte comes through recv_skip_hint (`copied`)";

const EVIDENCE_ZC_RECEIVE_NIC: &str = "as tcp_zerocopy_receive: only whole, page-aligned \
    fragments map (can_map_frag); through virtio-net with a 1500-byte MTU every segment carries \
    at most 1460 bytes in its own receive buffer, so nothing is a whole page and every byte comes \
    through recv_skip_hint and recvmsg(2) (`copied`), data from the host end verified";

pub(super) static CHECKS: &[Check] = &[
    Check::kernel(
        "net.tcp_zerocopy_receive",
        "64 KiB over loopback from a MSG_ZEROCOPY sender, received with mmap and \
         getsockopt(TCP_ZEROCOPY_RECEIVE), the rest through recv_skip_hint, data verified",
        Rule::new(
            Expect::Always(Pred::PagesBelow {
                limit: 65536,
                below: "mapped",
                from: "copied",
            }),
            EVIDENCE_ZC_RECEIVE_ALIGNED,
        ),
        tcp_zerocopy_receive,
    )
    .variant("aligned"),
    Check::kernel(
        "net.tcp_zerocopy_receive",
        "3000 bytes over loopback, less than a page, received with \
         getsockopt(TCP_ZEROCOPY_RECEIVE)",
        Rule::new(Expect::is("copied"), EVIDENCE_ZC_RECEIVE),
        tcp_zerocopy_receive,
    )
    .variant("unaligned"),
    Check::kernel(
        "net.tcp_zerocopy_receive",
        "64 KiB from the host end through virtio-net, received with \
         getsockopt(TCP_ZEROCOPY_RECEIVE)",
        Rule::new(Expect::is("copied"), EVIDENCE_ZC_RECEIVE_NIC),
        tcp_zerocopy_receive,
    )
    .variant("nic")
    .needs_net(),
];

/// What a receive loop moved: bytes mapped, bytes read through the hint, the data in order.
struct Received {
    mapped: usize,
    copied: usize,
    data: Vec<u8>,
    calls: u32,
}

/// Receives `len` bytes from `rx` with TCP_ZEROCOPY_RECEIVE: pages mapped into a region of the
/// socket's mapping, the rest read with recv(2) as recv_skip_hint says. The errno of mmap or of
/// the getsockopt when the kernel refuses.
fn zerocopy_receive(rx: &TcpStream, len: usize) -> Result<Result<Received, (Errno, String)>, Stop> {
    let fd = rx.as_raw_fd();
    let page = sys::page_size();
    let map_len = len.div_ceil(page).max(1) * page;
    // SAFETY: a fresh shared read-only mapping of the socket; unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Ok(Err((Errno::last(), "mmap of the TCP socket".into())));
    }
    let out = receive_into(rx, map.cast(), map_len, len);
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(map, map_len) };
    out
}

fn receive_into(
    rx: &TcpStream,
    map: *mut u8,
    map_len: usize,
    len: usize,
) -> Result<Result<Received, (Errno, String)>, Stop> {
    let fd = rx.as_raw_fd();
    let page = sys::page_size();
    let mut r = Received {
        mapped: 0,
        copied: 0,
        data: Vec::with_capacity(len),
        calls: 0,
    };
    let end = Instant::now() + Duration::from_secs(20);
    while r.data.len() < len {
        if Instant::now() > end {
            return Err(broken(format!(
                "received {} of {len} bytes in 20 s",
                r.data.len()
            )));
        }
        let mut zc = ZeroCopyReceive {
            address: map as u64,
            length: (map_len.min((len - r.data.len()).div_ceil(page) * page)) as u32,
            ..Default::default()
        };
        let mut optlen = std::mem::size_of::<ZeroCopyReceive>() as libc::socklen_t;
        // SAFETY: zc is a live struct of optlen bytes.
        let res = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_ZEROCOPY_RECEIVE,
                (&mut zc as *mut ZeroCopyReceive).cast(),
                &mut optlen,
            )
        };
        r.calls += 1;
        if res < 0 {
            return Ok(Err((
                Errno::last(),
                "getsockopt(TCP_ZEROCOPY_RECEIVE)".into(),
            )));
        }
        let mapped = zc.length as usize;
        if mapped > 0 {
            // SAFETY: the kernel mapped `mapped` bytes at the start of the region.
            let bytes = unsafe { std::slice::from_raw_parts(map, mapped) };
            r.data.extend_from_slice(bytes);
            r.mapped += mapped;
        }
        let mut hint = zc.recv_skip_hint as usize;
        if mapped == 0 && hint == 0 {
            // Nothing queued yet: wait for data.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            continue;
        }
        let mut buf = vec![0u8; page];
        while hint > 0 {
            let n = (&*rx).read(&mut buf[..hint.min(page)])?;
            if n == 0 {
                break;
            }
            r.data.extend_from_slice(&buf[..n]);
            r.copied += n;
            hint -= n;
        }
    }
    Ok(Ok(r))
}

/// The observation of a zero-copy receive of `want`.
fn received(res: Result<Received, (Errno, String)>, want: &[u8]) -> Observation {
    let r = match res {
        Ok(r) => r,
        Err((e, what)) => return common::errno(e, &what),
    };
    let detail = format!(
        "{} bytes mapped, {} read through recv_skip_hint, {} getsockopt calls",
        r.mapped, r.copied, r.calls
    );
    if let Some(at) = sys::first_difference(&r.data, want) {
        return Observation::saw("corrupt", format!("{detail}; first difference at {at}"));
    }
    Observation::saw(
        if r.mapped > 0 { "mapped" } else { "copied" },
        format!("{detail}; data verified"),
    )
}

/// Waits until `len` bytes are queued on `rx` (SIOCINQ), so one getsockopt sees them all.
fn wait_queued(rx: &TcpStream, len: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        let mut inq: libc::c_int = 0;
        // SAFETY: FIONREAD (SIOCINQ) writes an int.
        let r = unsafe { libc::ioctl(rx.as_raw_fd(), libc::FIONREAD as _, &mut inq) };
        if r < 0 || inq as usize >= len {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn tcp_zerocopy_receive(ctx: &Ctx) -> Result<Observation, Stop> {
    if ctx.variant == Some("nic") {
        return tcp_zerocopy_receive_nic();
    }
    let (len, seed) = match ctx.variant {
        Some("aligned") => (ZC_LEN, 0x2e73),
        Some("unaligned") => (3000, 0x2e74),
        v => return Err(broken(format!("net.tcp_zerocopy_receive: variant {v:?}"))),
    };
    let (tx, rx) = sys::tcp_pair()?;
    // A page-aligned buffer: on loopback its pages are copied on delivery into fresh pages
    // either way, but it is what an application that wants zero-copy would send.
    let page = sys::page_size();
    let mut buf = AlignedBuf::new(len.div_ceil(page) * page, page);
    let data = sys::pattern(len, seed);
    buf.as_mut_slice()[..len].copy_from_slice(&data);
    let sent = send_zerocopy(&tx, &buf.as_mut_slice()[..len], len);
    if let Err((e, what)) = sent {
        return Err(broken(format!("the sender's {what}: {e}")));
    }
    wait_queued(&rx, len);
    let res = zerocopy_receive(&rx, len)?;
    // The sender's completions, so its buffer is released before it is freed.
    let _ = completions(tx.as_raw_fd(), 1, Duration::from_secs(5))?;
    Ok(received(res, &data))
}

/// 64 KiB from the host end's source through virtio-net.
fn tcp_zerocopy_receive_nic() -> Result<Observation, Stop> {
    let nic = common::nic_or_skip()?;
    let seed = 0x2e75;
    let s = common::nic_connect(
        nic,
        zcmatrix_protocol::net::Request {
            op: zcmatrix_protocol::net::Op::Source,
            seed,
            len: ZC_LEN as u64,
        },
    )?;
    wait_queued(&s, ZC_LEN);
    let res = zerocopy_receive(&s, ZC_LEN)?;
    let mut o = received(res, &zcmatrix_protocol::net::pattern(seed, ZC_LEN));
    o.detail = format!("{}, from the host end through {}", o.detail, nic.name);
    Ok(o)
}
