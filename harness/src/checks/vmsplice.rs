//! vmsplice(2): user memory into a pipe without a copy, and what that means when the memory
//! changes afterwards.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::{common, Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys::{self, vmsplice_raw, AlignedBuf};

pub const CHECKS: &[Check] = &[
    Check::kernel(
        "vmsplice.by_reference",
        "vmsplice a page into a pipe without flags, change the page, read the pipe",
        Rule::new(
            Expect::is("reference"),
            "vmsplice(2): the pipe refers to the user pages (get_user_pages), it does not copy \
             them; the caller must not modify the memory until it is consumed, since the reader \
             gets whatever the pages hold by then. The documented contract of zero-copy, not a \
             kernel hazard: a pass",
        ),
        by_reference,
    ),
    Check::kernel(
        "vmsplice.gift",
        "the same with SPLICE_F_GIFT",
        Rule::new(
            Expect::is("ok reference"),
            "vmsplice(2) SPLICE_F_GIFT: the pages are a gift the kernel may steal when splicing \
             on; page stealing was removed (2.6.21), so they stay referenced, under the same \
             contract as without the flag",
        ),
        gift,
    ),
    Check::kernel(
        "vmsplice.to_user",
        "vmsplice from a pipe's read end into user memory, data verified",
        Rule::new(
            Expect::is("ok"),
            "vmsplice(2): if fd is opened for reading, the pipe contents are copied into the \
             user memory (since 2.6.23)",
        ),
        to_user,
    ),
    Check::kernel(
        "vmsplice.non_pipe",
        "vmsplice on a regular file",
        Rule::new(
            Expect::is("EBADF"),
            "vmsplice(2) ERRORS: EBADF, fd either not valid, or does not refer to a pipe",
        ),
        non_pipe,
    ),
    Check::kernel(
        "vmsplice.iov_limit",
        "vmsplice with IOV_MAX + 1 segments",
        Rule::new(
            Expect::is("EINVAL"),
            "vmsplice(2) ERRORS: EINVAL, nr_segs is greater than IOV_MAX",
        ),
        iov_limit,
    ),
];

fn spliced_then_changed(flags: u32) -> anyhow::Result<Result<&'static str, Errno>> {
    const LEN: usize = 4096;
    let mut buf = AlignedBuf::new(LEN, LEN);
    let mem = buf.as_mut_slice();
    mem.copy_from_slice(&sys::pattern(LEN, 0x75));
    let old = mem.to_vec();
    let (rx, tx) = sys::pipe()?;
    let iov = [libc::iovec {
        iov_base: mem.as_mut_ptr().cast(),
        iov_len: LEN,
    }];
    match vmsplice_raw(tx.as_raw_fd(), &iov, flags) {
        Ok(n) if n == LEN => {}
        Ok(n) => anyhow::bail!("vmsplice moved {n} of {LEN}"),
        Err(e) => return Ok(Err(e)),
    }
    mem.fill(0xee);
    drop(tx);
    let got = sys::read_all(rx)?;
    Ok(Ok(if got == mem[..] {
        "reference"
    } else if got == old {
        "copy"
    } else {
        "mixed"
    }))
}

/// Without flags the pipe holds references to the user pages: a later store shows through.
fn by_reference(_ctx: &Ctx) -> Result<Observation, Stop> {
    Ok(match spliced_then_changed(0)? {
        Ok(v) => Observation::saw(v, "read the pipe after overwriting the spliced page"),
        Err(e) => Observation::saw(sys::errno_name(e), "vmsplice failed"),
    })
}

fn gift(_ctx: &Ctx) -> Result<Observation, Stop> {
    Ok(match spliced_then_changed(libc::SPLICE_F_GIFT)? {
        Ok(v) => Observation::saw(format!("ok {v}"), "SPLICE_F_GIFT accepted"),
        Err(e) => Observation::saw(sys::errno_name(e), "vmsplice with SPLICE_F_GIFT failed"),
    })
}

fn to_user(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x76);
    let rx = sys::filled_pipe(&data)?;
    let mut out = vec![0u8; data.len()];
    let mut got = 0;
    while got < out.len() {
        let iov = [libc::iovec {
            iov_base: out[got..].as_mut_ptr().cast(),
            iov_len: out.len() - got,
        }];
        match vmsplice_raw(rx.as_raw_fd(), &iov, 0) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Ok(Observation::saw(
                    sys::errno_name(e),
                    format!("after {got} bytes"),
                ))
            }
        }
    }
    Ok(common::moved(Ok(got), &out[..got], &data))
}

fn non_pipe(ctx: &Ctx) -> Result<Observation, Stop> {
    let f = sys::write_file_synced(&ctx.dir.join("vmsplice.non_pipe"), &[0u8; 16])?;
    let mut mem = [1u8; 16];
    let iov = [libc::iovec {
        iov_base: mem.as_mut_ptr().cast(),
        iov_len: mem.len(),
    }];
    Ok(match vmsplice_raw(f.as_raw_fd(), &iov, 0) {
        Ok(n) => Observation::saw("ok", format!("moved {n} bytes into a regular file")),
        Err(e) => Observation::saw(sys::errno_name(e), format!("{e}")),
    })
}

fn iov_limit(_ctx: &Ctx) -> Result<Observation, Stop> {
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_IOV_MAX) }.max(1) as usize;
    let mut mem = vec![0u8; max + 1];
    let iov: Vec<libc::iovec> = (0..=max)
        .map(|i| libc::iovec {
            iov_base: mem[i..].as_mut_ptr().cast(),
            iov_len: 1,
        })
        .collect();
    let (_rx, tx) = sys::pipe()?;
    Ok(match vmsplice_raw(tx.as_raw_fd(), &iov, 0) {
        Ok(n) => Observation::saw("ok", format!("{} segments accepted, moved {n}", max + 1)),
        Err(e) => Observation::saw(sys::errno_name(e), format!("{} segments: {e}", max + 1)),
    })
}
