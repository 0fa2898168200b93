//! io_uring's zero-copy send, IORING_OP_SEND_ZC, over loopback.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};
use nix::errno::Errno;

use super::super::{broken, common, skip, Check, Ctx, Expect, Observation, Rule, Stop};
use super::ZC_LEN;
use crate::sys;
use sys::abi::{IORING_CQE_F_NOTIF, IORING_NOTIF_USAGE_ZC_COPIED, IORING_SEND_ZC_REPORT_USAGE};

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

pub(super) static CHECKS: &[Check] = &[Check::kernel(
    "net.uring_send_zc",
    "IORING_OP_SEND_ZC of 64 KiB over loopback TCP: the send CQE, the notification CQE and \
         what it reports, data verified",
    Rule::new(
        Expect::since(6, 1, &Expect::is("notified"), &Expect::is("copied")),
        EVIDENCE_SEND_ZC,
    ),
    uring_send_zc,
)];

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
