//! sendfile(2): which descriptors may stand on each side, and whether the data arrives intact.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use nix::sys::sendfile::sendfile;
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys;

pub const CHECKS: &[Check] = &[Check {
    id: "sendfile.file_to_pipe",
    variant: None,
    scope: Scope::Fs,
    description: "sendfile of a whole 16 KiB file into a pipe, data verified",
    rule: Rule {
        expect: Expect::Always(&["ok"]),
        evidence: "sendfile(2) NOTES: before Linux 2.6.33 out_fd had to be a socket; since then \
                   it can be any file (pipes go through splice)",
    },
    probe: file_to_pipe,
}];

/// Since 2.6.33 sendfile is splice under the hood and accepts a pipe as out_fd. 16 KiB fits in a
/// default 64 KiB pipe, so no reader is needed while sending.
fn file_to_pipe(ctx: &Ctx) -> anyhow::Result<Observation> {
    const LEN: usize = 16 * 1024;
    let path = ctx.dir.join("sendfile.file_to_pipe");
    let data = sys::pattern(LEN, 0x5e4d);
    sys::write_file_synced(&path, &data)?;
    let src = File::open(&path)?;
    let (rx, tx) = nix::unistd::pipe()?;
    let mut sent = 0;
    while sent < LEN {
        match sendfile(tx.as_fd(), src.as_fd(), None, LEN - sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) => {
                return Ok(Observation::saw(
                    sys::errno_name(e),
                    format!("sendfile after {sent} bytes: {e}"),
                ))
            }
        }
    }
    drop(tx);
    let mut got = Vec::with_capacity(LEN);
    File::from(rx).read_to_end(&mut got)?;
    Ok(match sys::first_difference(&got, &data) {
        None => Observation::saw("ok", format!("{sent} bytes moved, data verified")),
        Some(at) => Observation::saw(
            "corrupt",
            format!(
                "{sent} bytes reported, {} read back, first difference at {at}",
                got.len()
            ),
        ),
    })
}
