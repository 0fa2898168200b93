//! A file into the virtio-net socket by sendfile(2) and by splice(2) through a pipe, every byte
//! checked by zcmatrix's host end.

use std::fs::File;
use std::os::fd::AsFd;

use super::super::{common, Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys;

const EVIDENCE_NIC_SENDFILE: &str = "sendfile(2): a file to a socket, the classic zero-copy \
    path, here into the virtio-net socket whose other end, zcmatrix's host end, checks every \
    byte";

const EVIDENCE_NIC_SPLICE: &str = "splice(2): file to pipe, pipe to socket, here into the \
    virtio-net socket whose other end, zcmatrix's host end, checks every byte";

pub(super) static CHECKS: &[Check] = &[
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
