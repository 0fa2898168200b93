//! Zero-copy on sockets: MSG_ZEROCOPY on loopback and through the guest's virtio-net device,
//! TCP receive zero-copy (mmap of a TCP socket), io_uring's zero-copy send, sendfile into a
//! kernel-TLS socket, and sendfile/splice into the virtio-net socket. What goes through the NIC
//! is verified byte for byte by zcmatrix's host end (see [`zcmatrix_protocol::net`]); a native
//! run has no such NIC, and those checks skip saying so.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};
use nix::errno::Errno;

use super::{broken, common, skip, Check, Ctx, Expect, Observation, Pred, Rule, Stop, Tolerance};
use crate::kver::KernelVersion;
use crate::sys::{self, AlignedBuf};

use libc::{SO_ZEROCOPY, TLS_RX, TLS_TX};
use sys::abi::{
    TcpZerocopyReceive as ZeroCopyReceive, IORING_CQE_F_NOTIF, IORING_NOTIF_USAGE_ZC_COPIED,
    IORING_SEND_ZC_REPORT_USAGE, SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY,
};

const EVIDENCE_MSG_ZEROCOPY_LO: &str =
    "Documentation/networking/msg_zerocopy.rst, Implementation, \
    Loopback: all packets generated with MSG_ZEROCOPY that are looped to a local socket incur a \
    deferred copy (skb_orphan_frags_rx), and Deferred copies: the kernel signals it with \
    SO_EE_CODE_ZEROCOPY_COPIED; since f214f915e7db \"tcp: enable MSG_ZEROCOPY\" (4.14). The value \
    is what the completions say: copied, zerocopy, or mixed";

const EVIDENCE_MSG_ZEROCOPY_NIC: &str = "Documentation/networking/msg_zerocopy.rst: the kernel \
    queues a completion for every send call with MSG_ZEROCOPY (f214f915e7db \"tcp: enable \
    MSG_ZEROCOPY\", 4.14), and (Deferred copies) MSG_ZEROCOPY is a hint, not a guarantee: \
    devices without scatter-gather cannot send zerocopy user data, and a packet may be \
    converted to a private copy deep in the stack. The rule: every byte arrives (the host end \
    verifies them) and every send is notified. Whether the device does scatter-gather (`sg`) is \
    a measurement: virtio-net on QEMU's user network has no vnet header, so no \
    VIRTIO_NET_F_CSUM and no SG. TCP claims scatter-gather on every route since 0a6b2a1dc2a2 \
    \"tcp: switch to GSO being always on\" (4.17; sk_setup_caps adds NETIF_F_SG for GSO), so \
    tcp_sendmsg pins the pages even then; software GSO (skb_segment) later copies a multi-segment \
    packet without flagging SO_EE_CODE_ZEROCOPY_COPIED, while a path that copies the pinned \
    pages themselves (skb_copy_ubufs, as pskb_expand_head does for a cloned packet) flags it, \
    so on such a device the flag depends on how the stream was cut into packets, which varies \
    from run to run: the completions' words are in the detail, never the value";

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

const EVIDENCE_SEND_ZC: &str =
    "io_uring_enter(2) IORING_OP_SEND_ZC (06a5464be84e \"io_uring: wire \
    send zc request type\", 6.0): a send CQE with IORING_CQE_F_MORE, then a notification CQE \
    (IORING_CQE_F_NOTIF) when the pages are released; IORING_SEND_ZC_REPORT_USAGE \
    (e307e6698165 \"io_uring/net: introduce IORING_SEND_ZC_REPORT_USAGE flag\", 6.2, and on the \
    6.1 stable line from 6.1.2, 3a6ee45e3ceb; Debian's releases read X.Y.0, so the 6.1 line is \
    taken as a whole) sets IORING_NOTIF_USAGE_ZC_COPIED in the notification's res when the \
    kernel copied, which loopback always does (msg_zerocopy.rst, Loopback). Without it the flag \
    is EINVAL and the notification says nothing of copies (`notified`); before 6.0 the opcode \
    is missing: a skip";

const EVIDENCE_KTLS: &str = "Documentation/networking/tls.rst: setsockopt(TCP_ULP, \"tls\") \
    then TLS_TX with a tls12_crypto_info (3c4d7559159b \"tls: kernel TLS support\", 4.13) and \
    sendfile(2) into the socket, which the kernel encrypts into TLS records of at most 2^14 \
    plaintext bytes (RFC 5246 6.2.1); the receiver decrypts with TLS_RX (c46234ebb4d1 \"tls: RX \
    path for ktls\", 4.17) and verifies every byte. records and max_record (the largest \
    plaintext per record) are measurements. Debian builds CONFIG_TLS=m from 6.1 (bookworm) on, \
    so from 6.1 a kernel without the \"tls\" ULP or its gcm(aes) cipher is data=absent, a \
    failure naming the missing module; before 6.1 (bullseye's cloud flavour leaves CONFIG_TLS \
    out), or on a kernel Debian did not build, a skip";

const EVIDENCE_NIC_SENDFILE: &str = "sendfile(2): a file to a socket, the classic zero-copy \
    path, here into the virtio-net socket whose other end, zcmatrix's host end, checks every \
    byte";

const EVIDENCE_NIC_SPLICE: &str = "splice(2): file to pipe, pipe to socket, here into the \
    virtio-net socket whose other end, zcmatrix's host end, checks every byte";

static CHECKS: &[Check] = &[
    Check::kernel(
        "net.msg_zerocopy_lo",
        "SO_ZEROCOPY and four 16 KiB send(MSG_ZEROCOPY) over loopback TCP: what the completions \
         on the error queue say, data verified",
        Rule::new(Expect::is("copied"), EVIDENCE_MSG_ZEROCOPY_LO),
        msg_zerocopy_lo,
    ),
    Check::kernel(
        "net.msg_zerocopy_nic",
        "SO_ZEROCOPY and four 16 KiB send(MSG_ZEROCOPY) through virtio-net to the host end: data \
         verified by the host, a completion for every send, whether the device does \
         scatter-gather",
        Rule::new(
            Expect::Always(Pred::Fields(&[
                ("data", Pred::Is("ok")),
                ("notified", Pred::Is("all")),
            ])),
            EVIDENCE_MSG_ZEROCOPY_NIC,
        ),
        msg_zerocopy_nic,
    )
    .needs_net(),
    Check::kernel(
        "net.msg_zerocopy_small",
        "what a 512-byte send(MSG_ZEROCOPY) with its completion costs over loopback, as a \
         multiple of a plain send",
        Rule::measure(
            "measures the time of a send(MSG_ZEROCOPY) smaller than a page plus reading its \
             completion, as a multiple of a plain send of the same bytes (rounded): \
             msg_zerocopy.rst says MSG_ZEROCOPY is generally only effective at writes over \
             around 10 KB, because page pinning and the notification cost more than copying a \
             small buffer. Under TCG the ratio is only indicative",
        )
        // A ratio of two timings, as the cost family's are: it moves with the machine's load
        // (2, 6, 7, 12 and 76 in default-matrix runs of the same 6.12 guest under TCG on one
        // host), so `report diff` counts only a change of outcome.
        .tolerance(Tolerance::OutcomeOnly),
        msg_zerocopy_small,
    ),
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
    Check::kernel(
        "net.uring_send_zc",
        "IORING_OP_SEND_ZC of 64 KiB over loopback TCP: the send CQE, the notification CQE and \
         what it reports, data verified",
        Rule::new(
            Expect::since(6, 1, &Expect::is("notified"), &Expect::is("copied")),
            EVIDENCE_SEND_ZC,
        ),
        uring_send_zc,
    ),
    Check::fs(
        "net.ktls_sendfile",
        "sendfile of a 50000-byte file into a loopback TCP socket with kernel TLS (TLS 1.2, \
         AES-GCM-128, a fixed test key), decrypted by a TLS_RX receiver, data verified",
        Rule::new(
            Expect::Always(Pred::Fields(&[("data", Pred::Is("ok"))])),
            EVIDENCE_KTLS,
        ),
        ktls_sendfile,
    )
    .needs_net(),
    Check::kernel(
        "net.sendfile_nic",
        "sendfile of a 128 KiB file into the virtio-net socket, verified by the host end",
        Rule::new(Expect::is("ok"), EVIDENCE_NIC_SENDFILE),
        sendfile_nic,
    )
    .needs_net(),
    Check::kernel(
        "net.splice_nic",
        "splice of a 128 KiB file through a pipe into the virtio-net socket, verified by the host \
         end",
        Rule::new(Expect::is("ok"), EVIDENCE_NIC_SPLICE),
        splice_nic,
    )
    .needs_net(),
];

pub fn checks() -> &'static [Check] {
    CHECKS
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> nix::Result<()> {
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
struct Completions {
    /// Send calls the completions cover.
    covered: u32,
    /// Of those, in ranges flagged SO_EE_CODE_ZEROCOPY_COPIED.
    copied: u32,
    ranges: Vec<String>,
}

impl Completions {
    /// `copied`, `zerocopy` or `mixed`; `missing` when some send has no completion.
    fn word(&self, calls: u32) -> &'static str {
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
fn completions(fd: RawFd, calls: u32, wait: Duration) -> Result<Completions, Stop> {
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
fn send_zerocopy(s: &TcpStream, data: &[u8], chunk: usize) -> Result<u32, (Errno, &'static str)> {
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

const ZC_LEN: usize = 64 << 10;
const ZC_CHUNK: usize = 16 << 10;

/// The completions' word, or what went wrong with the data or the send.
fn zerocopy_value(
    sent: Result<u32, (Errno, &'static str)>,
    fd: RawFd,
) -> Result<(String, String), Stop> {
    let calls = match sent {
        Ok(c) => c,
        Err((e, what)) => return Ok((sys::errno_name(e), format!("{what}: {e}"))),
    };
    let c = completions(fd, calls, Duration::from_secs(10))?;
    Ok((
        c.word(calls).to_string(),
        format!(
            "{calls} send calls, completions {}",
            if c.ranges.is_empty() {
                "none".to_string()
            } else {
                c.ranges.join(", ")
            }
        ),
    ))
}

fn msg_zerocopy_lo(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(ZC_LEN, 0x2e70);
    let (tx, rx) = sys::tcp_pair()?;
    let reader = sys::drain(rx);
    let sent = send_zerocopy(&tx, &data, ZC_CHUNK);
    let (value, detail) = zerocopy_value(sent, tx.as_raw_fd())?;
    tx.shutdown(std::net::Shutdown::Write)?;
    let got = reader.join().map_err(|_| broken("reader thread"))??;
    if let Some(at) = sys::first_difference(&got, &data) {
        return Ok(Observation::saw(
            "corrupt",
            format!(
                "received {} of {} bytes, first difference at {at}",
                got.len(),
                data.len()
            ),
        ));
    }
    Ok(Observation::saw(
        value,
        format!("{detail}; {ZC_LEN} bytes verified"),
    ))
}

fn msg_zerocopy_nic(_ctx: &Ctx) -> Result<Observation, Stop> {
    let nic = common::nic_or_skip()?;
    let sg = match sys::if_scatter_gather(&nic.name) {
        Ok(true) => "on",
        Ok(false) => "off",
        Err(e) => return Err(broken(format!("ETHTOOL_GSG on {}: {e}", nic.name))),
    };
    let mut zc = None;
    let data = common::nic_sink(nic, 0x2e71, ZC_LEN, |s, data| {
        let sent = send_zerocopy(s, data, ZC_CHUNK);
        if let Err((e, what)) = sent {
            return Ok(Some(common::errno(e, what)));
        }
        zc = Some(zerocopy_value(sent, s.as_raw_fd())?);
        Ok(None)
    })?;
    if zc.is_none() {
        return Ok(data);
    }
    let (completion, detail) = zc.ok_or_else(|| broken("no send"))?;
    // Whether the COPIED flag is set here depends on the path each segment took (see the
    // evidence), which varies from run to run: it stays in the detail, not the value.
    let notified = match completion.as_str() {
        "copied" | "zerocopy" | "mixed" => "all",
        "missing" => "missing",
        errno => return Ok(Observation::saw(errno.to_string(), detail)),
    };
    Ok(Observation::saw(
        format!("data={} notified={notified} sg={sg}", data.value),
        format!("{detail} (completions: {completion}); {}", data.detail),
    ))
}

/// One 512-byte MSG_ZEROCOPY send and its completion, timed against a plain send.
fn msg_zerocopy_small(_ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 512;
    const ROUNDS: u32 = 32;
    let data = sys::pattern(LEN, 0x2e72);
    let (tx, rx) = sys::tcp_pair()?;
    let reader = sys::drain(rx);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        (&tx).write_all(&data)?;
    }
    let plain = started.elapsed();
    let started = Instant::now();
    let mut last = (String::new(), String::new());
    for _ in 0..ROUNDS {
        let sent = send_zerocopy(&tx, &data, LEN);
        last = zerocopy_value(sent, tx.as_raw_fd())?;
    }
    let zc = started.elapsed();
    tx.shutdown(std::net::Shutdown::Write)?;
    let got = reader.join().map_err(|_| broken("reader thread"))??;
    if got.len() != 2 * ROUNDS as usize * LEN {
        return Ok(Observation::saw(
            "short",
            format!("received {} bytes", got.len()),
        ));
    }
    let (zc_us, plain_us) = (
        zc.as_micros() / u128::from(ROUNDS),
        plain.as_micros() / u128::from(ROUNDS),
    );
    Ok(Observation::numbers(
        &[(
            "cost_ratio",
            (zc_us as f64 / plain_us.max(1) as f64).round(),
            "×",
        )],
        format!(
            "per 512-byte send: {zc_us} µs for send(MSG_ZEROCOPY) and its completion, {plain_us} \
             µs for a plain send ({ROUNDS} rounds each); the last completion: {} ({})",
            last.0, last.1
        ),
    ))
}

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

fn uring_send_zc(_ctx: &Ctx) -> Result<Observation, Stop> {
    let mut ring: IoUring = common::uring_ring(4)?;
    if !common::uring_probe(&ring)?.is_supported(opcode::SendZc::CODE) {
        return Err(skip(
            "IORING_OP_SEND_ZC is not in this kernel (06a5464be84e, 6.0)",
        ));
    }
    let data = sys::pattern(ZC_LEN, 0x2e76);
    let (tx, rx) = sys::tcp_pair()?;
    let reader = sys::drain(rx);
    let mut usage = true;
    let (sent, notif) = loop {
        let sqe = opcode::SendZc::new(types::Fd(tx.as_raw_fd()), data.as_ptr(), ZC_LEN as u32)
            .zc_flags(if usage {
                IORING_SEND_ZC_REPORT_USAGE
            } else {
                0
            })
            .build();
        // SAFETY: `data` and the socket outlive both completions, which are awaited here.
        unsafe { ring.submission().push(&sqe) }.map_err(|_| broken("submission queue full"))?;
        let cqes = reap(&mut ring, 2, Duration::from_secs(10))?;
        let first = cqes
            .first()
            .ok_or_else(|| broken("no completion for IORING_OP_SEND_ZC in 10 s"))?;
        if first.0 == -libc::EINVAL && usage {
            // 6.0 and 6.1 know no IORING_SEND_ZC_REPORT_USAGE.
            usage = false;
            continue;
        }
        break (first.0, cqes.get(1).copied());
    };
    tx.shutdown(std::net::Shutdown::Write)?;
    let got = reader.join().map_err(|_| broken("reader thread"))??;
    if sent < 0 {
        return Ok(common::errno(Errno::from_raw(-sent), "IORING_OP_SEND_ZC"));
    }
    let Some((nres, nflags)) = notif else {
        return Ok(Observation::saw(
            "no-notification",
            format!("sent {sent} bytes; no notification CQE within 10 s"),
        ));
    };
    if nflags & IORING_CQE_F_NOTIF == 0 {
        return Ok(Observation::saw(
            "no-notification",
            format!("second CQE res {nres} flags {nflags:#x} is no notification"),
        ));
    }
    if sent as usize != ZC_LEN || got != data {
        return Ok(Observation::saw(
            "corrupt",
            format!(
                "sent {sent}, received {} bytes, equal: {}",
                got.len(),
                got == data
            ),
        ));
    }
    let value = if !usage {
        "notified"
    } else if nres as u32 & IORING_NOTIF_USAGE_ZC_COPIED != 0 {
        "copied"
    } else {
        "zerocopy"
    };
    Ok(Observation::saw(
        value,
        format!(
            "{sent} bytes sent and verified; notification res {:#x}{}",
            nres as u32,
            if usage {
                ""
            } else {
                " (IORING_SEND_ZC_REPORT_USAGE refused with EINVAL)"
            }
        ),
    ))
}

/// Up to `want` completions (res, flags), waiting at most `wait`.
fn reap(ring: &mut IoUring, want: usize, wait: Duration) -> Result<Vec<(i32, u32)>, Stop> {
    ring.submit()?;
    let mut out = Vec::new();
    let end = Instant::now() + wait;
    while out.len() < want && Instant::now() < end {
        for cqe in ring.completion() {
            out.push((cqe.result(), cqe.flags()));
        }
        if out.len() == 1 && !cqueue::more(out[0].1) {
            break; // a failed send has no notification
        }
        if out.len() < want {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(out)
}

/// A fixed test key: never a secret, only something both ends agree on.
fn test_key() -> libc::tls12_crypto_info_aes_gcm_128 {
    libc::tls12_crypto_info_aes_gcm_128 {
        info: libc::tls_crypto_info {
            version: libc::TLS_1_2_VERSION,
            cipher_type: libc::TLS_CIPHER_AES_GCM_128,
        },
        iv: *b"zcmatrix",
        key: *b"zcmatrix-tls-key",
        salt: *b"salt",
        rec_seq: [0; 8],
    }
}

/// Turns on kernel TLS in `direction` (TLS_TX, TLS_RX) on a connected socket.
fn ktls(s: &TcpStream, direction: libc::c_int) -> Result<(), (Errno, &'static str)> {
    let fd = s.as_raw_fd();
    // SAFETY: "tls" is 3 bytes and lives through the call.
    let r =
        unsafe { libc::setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls".as_ptr().cast(), 3) };
    Errno::result(r).map_err(|e| (e, "setsockopt(TCP_ULP, \"tls\")"))?;
    setsockopt(fd, libc::SOL_TLS, direction, &test_key()).map_err(|e| (e, "setsockopt(SOL_TLS)"))
}

/// TLS records in a raw stream: (count, largest plaintext), or where the framing broke.
fn tls_records(raw: &[u8]) -> Result<(usize, usize), String> {
    let (mut at, mut count, mut largest) = (0, 0, 0);
    while at < raw.len() {
        let h = raw.get(at..at + 5).ok_or("a truncated record header")?;
        if h[0] != 23 || h[1..3] != [3, 3] {
            return Err(format!(
                "a record at {at} of type {} version {:02x}{:02x}",
                h[0], h[1], h[2]
            ));
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        // AES-GCM: an 8-byte explicit nonce before the ciphertext and a 16-byte tag after it.
        largest = largest.max(len.saturating_sub(8 + 16));
        count += 1;
        at += 5 + len;
    }
    Ok((count, largest))
}

/// The first kernel series whose Debian build the matrix runs has kernel TLS (CONFIG_TLS=m in
/// every flavour from bookworm's 6.1 on; bullseye's 5.10 cloud flavour leaves it out): from it
/// on, a kernel without kTLS is missing a piece the rule counts on, a `fail` naming it; before
/// it, a skip.
const KTLS_EXPECTED_SINCE: KernelVersion = KernelVersion::new(6, 1, 0);

/// Whether the running kernel is Debian's build (/proc/version names Debian's kernel team or
/// its package version), whose configuration [`KTLS_EXPECTED_SINCE`] speaks for.
fn debian_build() -> bool {
    std::fs::read_to_string("/proc/version")
        .is_ok_and(|v| v.contains("debian-kernel@lists.debian.org") || v.contains(" Debian "))
}

/// What an ENOENT from setting kTLS up means on `kernel` (`debian`: a Debian build): `what`
/// failed (the ULP, or SOL_TLS when the cipher is missing), `ulps` is tcp_available_ulp,
/// `host_missing` the modules the host asked this kernel for and did not find. A skip where
/// the rule does not count on kTLS (before 6.1, or a kernel Debian did not build), else
/// `data=absent` naming the missing piece, which the rule judges `fail`.
fn no_ktls(
    kernel: KernelVersion,
    debian: bool,
    what: &str,
    ulps: &str,
    host_missing: &[String],
) -> Result<Observation, Stop> {
    let piece = if what.contains("SOL_TLS") {
        "kernel TLS is here but its cipher is not: the kernel found no gcm(aes) implementation \
         to instantiate (gcm, ctr, ghash_generic)"
            .to_string()
    } else {
        format!(
            "no \"tls\" ULP (this kernel has [{}]): tls.ko not loaded or CONFIG_TLS unset",
            ulps.trim()
        )
    };
    let host = if host_missing.is_empty() {
        String::new()
    } else {
        format!(
            "; the host found no {} module for this kernel, nor built in",
            host_missing.join(", ")
        )
    };
    let why = format!("{what} failed with ENOENT: {piece}{host}");
    if kernel < KTLS_EXPECTED_SINCE {
        return Err(skip(format!("no kernel TLS here: {why}")));
    }
    if !debian {
        return Err(skip(format!(
            "no kernel TLS here, and this is not a Debian build, whose configuration the rule \
             speaks for: {why}"
        )));
    }
    Ok(Observation::saw(
        "data=absent",
        format!("kernel TLS is expected from {KTLS_EXPECTED_SINCE} on and missing: {why}"),
    ))
}

fn ktls_sendfile(ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 50_000;
    let (src, data) = common::source(ctx, "net.ktls_sendfile", LEN, 0x2e77)?;
    let (tx, raw_rx) = sys::tcp_pair()?;
    if let Err((e, what)) = ktls(&tx, TLS_TX) {
        if e == Errno::ENOENT {
            let ulps =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
            let missing = common::host_missing_modules();
            return no_ktls(ctx.kernel, debian_build(), what, &ulps, &missing);
        }
        return Ok(common::errno(e, what));
    }
    let reader = sys::drain(raw_rx);
    let mut sent = 0;
    while sent < LEN {
        match nix::sys::sendfile::sendfile(tx.as_fd(), src.as_fd(), None, LEN - sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) => return Ok(common::errno_after(sent, e)),
        }
    }
    tx.shutdown(std::net::Shutdown::Write)?;
    let raw = reader.join().map_err(|_| broken("reader thread"))??;
    let (records, largest) = match tls_records(&raw) {
        Ok(r) => r,
        Err(why) => return Ok(Observation::saw("data=unframed", why)),
    };
    // A second pair decrypts: the raw records written into a socket with TLS_RX.
    let (raw_tx, plain_rx) = sys::tcp_pair()?;
    if let Err((e, what)) = ktls(&plain_rx, TLS_RX) {
        return Err(broken(format!("TLS_RX on the receiver: {what}: {e}")));
    }
    let decrypter = sys::drain(plain_rx);
    (&raw_tx).write_all(&raw)?;
    raw_tx.shutdown(std::net::Shutdown::Write)?;
    let plain = match decrypter.join().map_err(|_| broken("decrypting thread"))? {
        Ok(p) => p,
        Err(e) => {
            return Ok(Observation::saw(
                "data=undecryptable",
                format!("the TLS_RX receiver failed: {}", sys::io_error_name(&e)),
            ))
        }
    };
    let word = match sys::first_difference(&plain, &data) {
        None if sent == LEN => "ok",
        None => "short",
        Some(_) => "corrupt",
    };
    Ok(Observation::saw(
        format!("data={word} records={records} max_record={largest}"),
        format!(
            "sendfile moved {sent} of {LEN} bytes into {} bytes of TLS records, decrypted by \
             TLS_RX into {} bytes",
            raw.len(),
            plain.len()
        ),
    ))
}

const NIC_FILE_LEN: usize = 128 << 10;

fn sendfile_nic(ctx: &Ctx) -> Result<Observation, Stop> {
    let nic = common::nic_or_skip()?;
    let seed = 0x2e78;
    let path = ctx.dir.join("net.sendfile_nic");
    std::fs::write(&path, zcmatrix_protocol::net::pattern(seed, NIC_FILE_LEN))?;
    let src = File::open(&path)?;
    common::nic_sink(nic, seed, NIC_FILE_LEN, |s, _| {
        let mut sent = 0;
        while sent < NIC_FILE_LEN {
            match nix::sys::sendfile::sendfile(s.as_fd(), src.as_fd(), None, NIC_FILE_LEN - sent) {
                Ok(0) => return Ok(Some(short(sent))),
                Ok(n) => sent += n,
                Err(e) => return Ok(Some(common::errno_after(sent, e))),
            }
        }
        Ok(None)
    })
}

/// A file transfer that ended early without an error.
fn short(sent: usize) -> Observation {
    Observation::saw(
        "short",
        format!("moved {sent} of {NIC_FILE_LEN} bytes, then 0"),
    )
}

fn splice_nic(ctx: &Ctx) -> Result<Observation, Stop> {
    let nic = common::nic_or_skip()?;
    let seed = 0x2e79;
    let path = ctx.dir.join("net.splice_nic");
    std::fs::write(&path, zcmatrix_protocol::net::pattern(seed, NIC_FILE_LEN))?;
    let src = File::open(&path)?;
    let (prx, ptx) = sys::pipe()?;
    common::nic_sink(nic, seed, NIC_FILE_LEN, |s, _| {
        let mut sent = 0;
        while sent < NIC_FILE_LEN {
            let want = (NIC_FILE_LEN - sent).min(64 << 10);
            let n = match nix::fcntl::splice(
                &src,
                None,
                &ptx,
                None,
                want,
                nix::fcntl::SpliceFFlags::empty(),
            ) {
                Ok(0) => return Ok(Some(short(sent))),
                Ok(n) => n,
                Err(e) => return Ok(Some(common::errno_after(sent, e))),
            };
            let mut left = n;
            while left > 0 {
                match nix::fcntl::splice(
                    &prx,
                    None,
                    s,
                    None,
                    left,
                    nix::fcntl::SpliceFFlags::empty(),
                ) {
                    Ok(0) => return Ok(Some(short(sent))),
                    Ok(m) => left -= m,
                    Err(e) => return Ok(Some(common::errno_after(sent, e))),
                }
            }
            sent += n;
        }
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Injected fault: a 6.1 kernel whose "tls" ULP is missing (tls.ko not found by the host)
    /// is a failure naming the module, never a skip; on 5.10, where the rule does not count on
    /// kTLS, a skip; a missing cipher names it too.
    #[test]
    fn missing_ktls_fails_where_the_rule_counts_on_it() {
        let c = checks()
            .iter()
            .find(|c| c.id == "net.ktls_sendfile")
            .unwrap();
        let on = |kernel| crate::checks::Where {
            kernel,
            fs: Some("ext4"),
            logical_block_size: Some(4096),
            page_size: 4096,
        };
        let k6_1 = KernelVersion::new(6, 1, 0);
        let seen = no_ktls(
            k6_1,
            true,
            "setsockopt(TCP_ULP, \"tls\")",
            "espintcp mptcp\n",
            &["tls".into()],
        )
        .expect("an observation, not a skip");
        assert_eq!(seen.value, "data=absent");
        for piece in [
            "tls.ko",
            "CONFIG_TLS",
            "the host found no tls module",
            "[espintcp mptcp]",
        ] {
            assert!(seen.detail.contains(piece), "{piece}: {seen:?}");
        }
        assert_eq!(
            c.rule.judge(&on(k6_1), &seen.value).outcome,
            zcmatrix_protocol::Outcome::Fail
        );
        let cipher = no_ktls(k6_1, true, "setsockopt(SOL_TLS)", "tls", &[]).unwrap();
        assert!(cipher.detail.contains("gcm(aes)"), "{cipher:?}");
        assert!(matches!(
            no_ktls(KernelVersion::new(5, 10, 0), true, "setsockopt(TCP_ULP, \"tls\")", "", &["tls".into()]),
            Err(Stop::Skip(why)) if why.contains("tls.ko")
        ));
        // A kernel Debian did not build (this host's, a bzImage of one's own): its config is
        // its own, so a skip.
        assert!(matches!(
            no_ktls(k6_1, false, "setsockopt(TCP_ULP, \"tls\")", "", &[]),
            Err(Stop::Skip(why)) if why.contains("not a Debian build")
        ));
    }

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

    #[test]
    fn tls_records_are_counted_and_sized() {
        let mut raw = vec![23, 3, 3, 0, 24 + 100];
        raw.extend(vec![0; 124]);
        raw.extend([23, 3, 3, 0, 24 + 10]);
        raw.extend(vec![0; 34]);
        assert_eq!(tls_records(&raw), Ok((2, 100)));
        assert!(tls_records(&[22, 3, 3, 0, 0]).is_err());
        assert!(tls_records(&[23, 3]).is_err());
    }
}
