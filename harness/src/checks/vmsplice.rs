//! vmsplice(2): user memory into a pipe without a copy, and what that means when the memory
//! changes afterwards.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys::{self, AlignedBuf};

pub const CHECKS: &[Check] = &[
    Check {
        id: "vmsplice.by_reference",
        variant: None,
        scope: Scope::Kernel,
        description: "vmsplice a page into a pipe without flags, change the page, read the pipe",
        rule: Rule {
            expect: Expect::Always(&["reference"]),
            evidence: "vmsplice(2): the pipe refers to the user pages (get_user_pages), it does \
                       not copy them; the caller must not modify the memory until it is consumed",
        },
        probe: by_reference,
    },
    Check {
        id: "vmsplice.gift",
        variant: None,
        scope: Scope::Kernel,
        description: "the same with SPLICE_F_GIFT",
        rule: Rule {
            expect: Expect::Always(&["ok reference"]),
            evidence: "vmsplice(2) SPLICE_F_GIFT: the pages are a gift the kernel may steal when \
                       splicing on; page stealing was removed (2.6.21), so they stay referenced",
        },
        probe: gift,
    },
    Check {
        id: "vmsplice.to_user",
        variant: None,
        scope: Scope::Kernel,
        description: "vmsplice from a pipe's read end into user memory, data verified",
        rule: Rule {
            expect: Expect::Always(&["ok"]),
            evidence: "vmsplice(2): if fd is opened for reading, the pipe contents are copied \
                       into the user memory (since 2.6.23)",
        },
        probe: to_user,
    },
    Check {
        id: "vmsplice.non_pipe",
        variant: None,
        scope: Scope::Kernel,
        description: "vmsplice on a regular file",
        rule: Rule {
            expect: Expect::Always(&["EBADF"]),
            evidence: "vmsplice(2) ERRORS: EBADF, fd either not valid, or does not refer to a pipe",
        },
        probe: non_pipe,
    },
    Check {
        id: "vmsplice.iov_limit",
        variant: None,
        scope: Scope::Kernel,
        description: "vmsplice with IOV_MAX + 1 segments",
        rule: Rule {
            expect: Expect::Always(&["EINVAL"]),
            evidence: "vmsplice(2) ERRORS: EINVAL, nr_segs is greater than IOV_MAX",
        },
        probe: iov_limit,
    },
];

/// Raw vmsplice: nix's wrapper only takes immutable slices, and `to_user` writes into memory.
pub fn vmsplice_raw(fd: RawFd, iov: &[libc::iovec], flags: u32) -> Result<usize, Errno> {
    // SAFETY: iov points to `iov.len()` valid iovecs describing memory we own.
    let r = unsafe { libc::vmsplice(fd, iov.as_ptr(), iov.len(), flags) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

fn pipe() -> nix::Result<(File, File)> {
    let (rx, tx) = nix::unistd::pipe()?;
    Ok((File::from(rx), File::from(tx)))
}

fn spliced_then_changed(flags: u32) -> anyhow::Result<Result<&'static str, Errno>> {
    const LEN: usize = 4096;
    let mut buf = AlignedBuf::new(LEN, LEN);
    let mem = buf.as_mut_slice();
    mem.copy_from_slice(&sys::pattern(LEN, 0x75));
    let old = mem.to_vec();
    let (mut rx, tx) = pipe()?;
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
    let mut got = Vec::new();
    rx.read_to_end(&mut got)?;
    Ok(Ok(if got == mem[..] {
        "reference"
    } else if got == old {
        "copy"
    } else {
        "mixed"
    }))
}

/// Without flags the pipe holds references to the user pages: a later store shows through.
fn by_reference(_ctx: &Ctx) -> anyhow::Result<Observation> {
    Ok(match spliced_then_changed(0)? {
        Ok(v) => Observation::saw(v, "read the pipe after overwriting the spliced page"),
        Err(e) => Observation::saw(sys::errno_name(e), "vmsplice failed"),
    })
}

fn gift(_ctx: &Ctx) -> anyhow::Result<Observation> {
    Ok(match spliced_then_changed(libc::SPLICE_F_GIFT)? {
        Ok(v) => Observation::saw(format!("ok {v}"), "SPLICE_F_GIFT accepted"),
        Err(e) => Observation::saw(sys::errno_name(e), "vmsplice with SPLICE_F_GIFT failed"),
    })
}

fn to_user(_ctx: &Ctx) -> anyhow::Result<Observation> {
    let data = sys::pattern(16 << 10, 0x76);
    let (rx, mut tx) = pipe()?;
    tx.write_all(&data)?;
    drop(tx);
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
    Ok(sys::moved(Ok(got), &out[..got], &data))
}

fn non_pipe(ctx: &Ctx) -> anyhow::Result<Observation> {
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

fn iov_limit(_ctx: &Ctx) -> anyhow::Result<Observation> {
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_IOV_MAX) }.max(1) as usize;
    let mut mem = vec![0u8; max + 1];
    let iov: Vec<libc::iovec> = (0..=max)
        .map(|i| libc::iovec {
            iov_base: mem[i..].as_mut_ptr().cast(),
            iov_len: 1,
        })
        .collect();
    let (_rx, tx) = pipe()?;
    Ok(match vmsplice_raw(tx.as_raw_fd(), &iov, 0) {
        Ok(n) => Observation::saw("ok", format!("{} segments accepted, moved {n}", max + 1)),
        Err(e) => Observation::saw(sys::errno_name(e), format!("{} segments: {e}", max + 1)),
    })
}
