//! tee(2): duplicating pipe contents without consuming them.

use std::os::fd::AsFd;

use nix::fcntl::{tee, SpliceFFlags};

use super::{Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys;

pub const CHECKS: &[Check] = &[
    Check::kernel(
        "tee.duplicate",
        "tee between two pipes: both readers get the data and the source keeps it",
        Rule::new(
            Expect::is("ok"),
            "tee(2): duplicates up to len bytes from fd_in to fd_out without consuming them, so \
             they can still be read from fd_in",
        ),
        duplicate,
    ),
    Check::kernel(
        "tee.non_pipe",
        "tee with a regular file as fd_in",
        Rule::new(
            Expect::is("EINVAL"),
            "tee(2) ERRORS: EINVAL, fd_in or fd_out does not refer to a pipe",
        ),
        non_pipe,
    ),
];

fn duplicate(_ctx: &Ctx) -> Result<Observation, Stop> {
    let data = sys::pattern(16 << 10, 0x7ee);
    let a_rx = sys::filled_pipe(&data)?;
    let (b_rx, b_tx) = sys::pipe()?;
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
    let (copy, original) = (sys::read_all(b_rx)?, sys::read_all(a_rx)?);
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

fn non_pipe(ctx: &Ctx) -> Result<Observation, Stop> {
    let src = sys::write_file_synced(&ctx.dir.join("tee.non_pipe"), &sys::pattern(4096, 3))?;
    let (_rx, tx) = sys::pipe()?;
    Ok(
        match tee(src.as_fd(), tx.as_fd(), 4096, SpliceFFlags::empty()) {
            Ok(n) => Observation::saw("ok", format!("tee moved {n} bytes from a file")),
            Err(e) => Observation::saw(sys::errno_name(e), format!("tee: {e}")),
        },
    )
}
