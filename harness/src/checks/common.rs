//! What several families need and no family owns: fixture files, the O_DIRECT open and its
//! rule, judging a transfer. Families import this module, never each other; the low-level,
//! check-agnostic helpers (mappings, pipes, pagemap) are in [`crate::sys`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{skip, Ctx, Expect, Observation, Stop};
use crate::sys;

/// Whether O_DIRECT opens: everywhere but tmpfs before 6.6 (EINVAL). `dio.open` judges it; every
/// other check that needs O_DIRECT skips where it does not open.
pub const DIRECT_OPEN: Expect = Expect::ByFs {
    cases: &[(
        "tmpfs",
        Expect::since(6, 6, &Expect::is("EINVAL"), &Expect::is("ok")),
    )],
    otherwise: &Expect::is("ok"),
};

/// open(2) with O_DIRECT (and `extra_flags`), creating the file when writing.
pub fn open_direct(path: &Path, write: bool, extra_flags: i32) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | extra_flags)
        .mode(0o644)
        .open(path)
}

/// Opens for direct I/O, or skips: where the filesystem refuses O_DIRECT the check does not
/// apply (`dio.open` carries that fact).
pub fn direct_or_skip(path: &Path, write: bool, extra_flags: i32) -> Result<File, Stop> {
    open_direct(path, write, extra_flags).map_err(|e| {
        skip(format!(
            "O_DIRECT open refused with {} (dio.open records this)",
            sys::io_error_name(&e)
        ))
    })
}

/// A fresh file `name` in the check's directory holding `len` pattern bytes (seeded by `seed`),
/// synced to stable storage; returned open for reading and writing, with its bytes.
pub fn fixture(ctx: &Ctx, name: &str, len: usize, seed: u64) -> Result<(File, Vec<u8>), Stop> {
    let data = sys::pattern(len, seed ^ name.len() as u64);
    let f = sys::write_file_synced(&ctx.dir.join(name), &data)?;
    Ok((f, data))
}

/// `ok` when every byte of `want` arrived as reported; otherwise what went wrong, or the errno.
pub fn moved(res: sys::Moved, got: &[u8], want: &[u8]) -> Observation {
    let n = match res {
        Ok(n) => n,
        Err((n, e)) => return errno_after(n, e),
    };
    match sys::first_difference(got, want) {
        None if n == want.len() => {
            Observation::saw("ok", format!("{n} bytes moved, data verified"))
        }
        None => Observation::saw("short", format!("reported {n} of {} bytes", want.len())),
        Some(at) => Observation::saw(
            "corrupt",
            format!(
                "reported {n}, received {} of {}, first difference at {at}",
                got.len(),
                want.len()
            ),
        ),
    }
}

/// The errno of a transfer that failed after `n` bytes, as the observation.
pub fn errno_after(n: usize, e: nix::errno::Errno) -> Observation {
    Observation::saw(sys::errno_name(e), format!("failed after {n} bytes: {e}"))
}

/// An errno as the observation, with what failed.
pub fn errno(e: nix::errno::Errno, what: &str) -> Observation {
    Observation::saw(sys::errno_name(e), format!("{what}: {e}"))
}
