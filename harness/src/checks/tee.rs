//! tee(2): duplicating pipe contents without consuming them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use nix::fcntl::{tee, SpliceFFlags};
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys;

pub const CHECKS: &[Check] = &[
    Check {
        id: "tee.duplicate",
        variant: None,
        scope: Scope::Kernel,
        description: "tee between two pipes: both readers get the data and the source keeps it",
        rule: Rule {
            expect: Expect::Always(&["ok"]),
            evidence: "tee(2): duplicates up to len bytes from fd_in to fd_out without consuming \
                       them, so they can still be read from fd_in",
        },
        probe: duplicate,
    },
    Check {
        id: "tee.non_pipe",
        variant: None,
        scope: Scope::Kernel,
        description: "tee with a regular file as fd_in",
        rule: Rule {
            expect: Expect::Always(&["EINVAL"]),
            evidence: "tee(2) ERRORS: EINVAL, fd_in or fd_out does not refer to a pipe",
        },
        probe: non_pipe,
    },
];

fn pipe() -> nix::Result<(File, File)> {
    let (rx, tx) = nix::unistd::pipe()?;
    Ok((File::from(rx), File::from(tx)))
}

fn duplicate(_ctx: &Ctx) -> anyhow::Result<Observation> {
    let data = sys::pattern(16 << 10, 0x7ee);
    let (a_rx, mut a_tx) = pipe()?;
    a_tx.write_all(&data)?;
    drop(a_tx);
    let (b_rx, b_tx) = pipe()?;
    let n = match tee(
        a_rx.as_fd(),
        b_tx.as_fd(),
        data.len(),
        SpliceFFlags::empty(),
    ) {
        Ok(n) => n,
        Err(e) => return Ok(Observation::saw(sys::errno_name(e), format!("tee: {e}"))),
    };
    drop(b_tx);
    let (mut copy, mut original) = (Vec::new(), Vec::new());
    { b_rx }.read_to_end(&mut copy)?;
    { a_rx }.read_to_end(&mut original)?;
    Ok(if n == data.len() && copy == data && original == data {
        Observation::saw(
            "ok",
            format!("{n} bytes duplicated; the source still had all of them"),
        )
    } else {
        Observation::saw(
            "deviates",
            format!(
                "tee returned {n}; copy {} bytes ({}), source {} bytes ({})",
                copy.len(),
                if copy == data[..copy.len().min(data.len())] {
                    "right"
                } else {
                    "wrong"
                },
                original.len(),
                if original == data {
                    "intact"
                } else {
                    "consumed or changed"
                }
            ),
        )
    })
}

fn non_pipe(ctx: &Ctx) -> anyhow::Result<Observation> {
    let src = sys::write_file_synced(&ctx.dir.join("tee.non_pipe"), &sys::pattern(4096, 3))?;
    let (_rx, tx) = pipe()?;
    Ok(
        match tee(src.as_fd(), tx.as_fd(), 4096, SpliceFFlags::empty()) {
            Ok(n) => Observation::saw("ok", format!("tee moved {n} bytes from a file")),
            Err(e) => Observation::saw(sys::errno_name(e), format!("tee: {e}")),
        },
    )
}
