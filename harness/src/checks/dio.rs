//! Direct I/O (O_DIRECT): whether it opens, what alignment it demands, and what it does when the
//! demand is not met.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::kver::KernelVersion;
use crate::sys::{self, AlignedBuf};

pub const CHECKS: &[Check] = &[
    Check {
        id: "dio.open",
        variant: None,
        scope: Scope::Fs,
        description: "open(O_CREAT|O_RDWR|O_DIRECT) of a new file",
        rule: Rule {
            expect: Expect::ByFs {
                cases: &[(
                    "tmpfs",
                    Expect::Since {
                        version: KernelVersion::new(6, 6, 0),
                        before: &["EINVAL"],
                        since: &["ok"],
                    },
                )],
                otherwise: &Expect::Always(&["ok"]),
            },
            evidence:
                "open(2) EINVAL: filesystem does not support O_DIRECT; tmpfs gained it in 6.6 \
                       with commit e88e0d366f9c \"tmpfs: trivial support for direct IO\"",
        },
        probe: open,
    },
    Check {
        id: "dio.misaligned_buffer",
        variant: None,
        scope: Scope::Fs,
        description: "O_DIRECT read of 4096 bytes into a buffer 1 byte past a page boundary",
        rule: Rule {
            expect: Expect::Always(&["EINVAL", "ok"]),
            evidence: "open(2) NOTES, O_DIRECT: user buffers must be aligned to the logical block \
                       size, else EINVAL; filesystems without that restriction (tmpfs, btrfs' \
                       buffered fallback) may instead return correct data, never wrong data",
        },
        probe: misaligned_buffer,
    },
];

fn open_direct(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .mode(0o644)
        .open(path)
}

/// Filesystems without a direct_IO path (tmpfs before 6.6) refuse the flag at open time with
/// EINVAL: open(2) lists this case.
fn open(ctx: &Ctx) -> anyhow::Result<Observation> {
    let path = ctx.dir.join("dio.open");
    let _ = std::fs::remove_file(&path);
    Ok(match open_direct(&path, true) {
        Ok(_) => Observation::saw("ok", "O_DIRECT open succeeded"),
        Err(e) => Observation::saw(sys::io_error_name(&e), format!("open: {e}")),
    })
}

/// The block layer rejects a user address that is not aligned to the device's DMA alignment
/// (the logical block size for most filesystems, via iomap or the legacy dio path); tmpfs copies
/// through the page cache and accepts anything. Either way a read must never return wrong data.
fn misaligned_buffer(ctx: &Ctx) -> anyhow::Result<Observation> {
    const LEN: usize = 4096;
    let path = ctx.dir.join("dio.misaligned_buffer");
    let data = sys::pattern(2 * LEN, 0xd10);
    sys::write_file_synced(&path, &data)?;
    let f = match open_direct(&path, false) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Observation::skip(format!(
                "O_DIRECT open failed with {}",
                sys::io_error_name(&e)
            )))
        }
    };
    let mut buf = AlignedBuf::new(3 * LEN, LEN);
    let target = &mut buf.as_mut_slice()[1..1 + LEN];
    Ok(match f.read_at(target, 0) {
        Err(e) => Observation::saw(sys::io_error_name(&e), format!("pread at +1: {e}")),
        Ok(n) if n == LEN && target[..] == data[..LEN] => {
            Observation::saw("ok", "read 4096 bytes at +1, data correct")
        }
        Ok(n) => Observation::saw(
            "wrong-data",
            format!(
                "read returned {n}, first difference at {:?}",
                sys::first_difference(&target[..n], &data[..n.min(LEN)])
            ),
        ),
    })
}
