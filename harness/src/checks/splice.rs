//! splice(2): which ends may be used, and what it does with them.

use std::os::fd::AsFd;

use nix::fcntl::{splice, SpliceFFlags};
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys;

pub const CHECKS: &[Check] = &[Check {
    id: "splice.no_pipe",
    variant: None,
    scope: Scope::Kernel,
    description: "splice between two regular files, neither a pipe",
    rule: Rule {
        expect: Expect::Always(&["EINVAL"]),
        evidence: "splice(2) ERRORS: EINVAL, neither of the file descriptors refers to a pipe",
    },
    probe: no_pipe,
}];

/// splice moves data to or from a pipe buffer; with no pipe on either side there is nothing for
/// it to move through, and the syscall refuses before looking at the files.
fn no_pipe(ctx: &Ctx) -> anyhow::Result<Observation> {
    let src_path = ctx.dir.join("splice.no_pipe.in");
    let src = sys::write_file_synced(&src_path, &sys::pattern(4096, 0x5911))?;
    let dst = sys::write_file_synced(&ctx.dir.join("splice.no_pipe.out"), &[])?;
    let mut off_in: i64 = 0;
    let mut off_out: i64 = 0;
    Ok(
        match splice(
            src.as_fd(),
            Some(&mut off_in),
            dst.as_fd(),
            Some(&mut off_out),
            4096,
            SpliceFFlags::empty(),
        ) {
            Ok(n) => Observation::saw("ok", format!("splice moved {n} bytes between two files")),
            Err(e) => Observation::saw(sys::errno_name(e), format!("splice: {e}")),
        },
    )
}
