//! overlayfs, where copy-up is the point: files of the lower layer (written there by the guest
//! before the mount, [`common::LOWER_FILES`]) opened through the merged directory, before and
//! after something opens them for writing and overlayfs copies them up to the upper layer.
//!
//! Every other family runs on the `overlay` target too; there the files probes create are
//! upper-layer files from the start. These run on the overlay target only.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use nix::fcntl::{splice, SpliceFFlags};

use super::{common, skip, Check, Ctx, Expect, Observation, Rule, Stop};
use crate::sys::{self, AlignedBuf, Mapping};

/// Only the overlay target has lower-layer files.
const OVERLAY: &[&str] = &["overlay"];

const CHECKS: &[Check] = &[
    Check::fs(
        "overlay.copy_up_ro_mmap",
        "a lower-layer file mapped MAP_SHARED through an O_RDONLY descriptor, then written \
         through a new O_RDWR open (which copies it up): does the mapping see the write",
        Rule::new(
            Expect::is("stale"),
            "overlayfs.rst, Non-standard behavior (5d3211b651a0 \"ovl: doc: add non-standard \
             corner cases\", 5.2): if a file residing on a lower layer is opened for read-only \
             and then memory mapped with MAP_SHARED, subsequent changes to the file are not \
             reflected in the memory mapping: it still maps the lower file's pages (`stale`, \
             a hazard for a reader that maps before a writer copies up)",
        )
        .hazards(&["stale"]),
        copy_up_ro_mmap,
    )
    .only_on(OVERLAY),
    Check::fs(
        "overlay.copy_up_ro_fd",
        "a lower-layer file opened O_RDONLY, then written through a new O_RDWR open (copy-up): \
         what read() on the first descriptor returns",
        Rule::new(
            Expect::is("new"),
            "a6518f73e60e \"vfs: don't open real\" with d1d04ef8572b \"ovl: stack file ops\" \
             (4.19): overlayfs opens the real file itself and, on each read, reopens it if it \
             was copied up since (ovl_real_fdget: \"Has it been copied up since we'd opened \
             it?\"), so a read-only descriptor no longer returns stale data after copy-up",
        ),
        copy_up_ro_fd,
    )
    .only_on(OVERLAY),
    Check::fs(
        "overlay.lower_direct_read",
        "an aligned 4096-byte O_DIRECT read of a lower-layer file (not copied up), data \
         verified",
        Rule::new(
            Expect::is("ok"),
            "d1d04ef8572b \"ovl: stack file ops\" (4.19): overlayfs opens the real file with \
             the caller's flags, O_DIRECT included (ovl_open_realfile), and passes reads to it \
             (ovl_read_iter), so a lower-layer ext4 file is read directly; an open for reading \
             copies nothing up",
        ),
        lower_direct_read,
    )
    .per_block_size()
    .only_on(OVERLAY),
    Check::fs(
        "overlay.copy_up_splice",
        "4096 bytes of a lower-layer file spliced into a pipe, then the file written through a \
         new O_RDWR open (copy-up): what the pipe's reader gets",
        Rule::new(
            Expect::is("old"),
            "splice(2) NOTES: a pipe filled from a file holds references to its page-cache \
             pages (splice.by_reference: a later write shows through). Through overlayfs they \
             are the lower file's pages (5.10-6.4: the overlay's read_iter reads the real file, \
             d1d04ef8572b \"ovl: stack file ops\"; 6.5: d4120d87a0ed \"overlayfs: Implement \
             splice-read\" splices the real file), and copy-up gives the file new pages in the \
             upper layer (ovl_copy_up_data copies the data into a new file), so the write lands \
             there and the pipe keeps the old bytes: zero-copy by reference ends at copy-up",
        ),
        copy_up_splice,
    )
    .only_on(OVERLAY),
];

/// The family's checks.
pub fn checks() -> &'static [Check] {
    CHECKS
}

/// A lower-layer file of the overlay, opened read-only through the merged directory, with the
/// bytes the guest wrote there; a skip where this is not the overlay target.
///
/// `Ok(Err(observation))` when the merged directory returns other bytes than the lower layer
/// holds: in a guest the harness wrote that layer itself just before mounting the overlay and
/// nothing has opened the file for writing since, so that is overlayfs returning wrong data, a
/// `wrong-data` observation no rule accepts. Natively the directory may hold an earlier run's
/// copied-up files: a skip there.
fn lower(ctx: &Ctx, name: &str) -> Result<Result<(File, Vec<u8>), Observation>, Stop> {
    let path = ctx.dir.join(name);
    let f = File::open(&path).map_err(|_| {
        skip(format!(
            "no lower-layer file {name} here: only the overlay target has one"
        ))
    })?;
    let want = common::lower_content(name);
    let got = sys::read_all(&f)?;
    if let Some(wrong) = wrong_lower_bytes(name, &got, &want, ctx.owns_machine)? {
        return Ok(Err(wrong));
    }
    Ok(Ok((File::open(&path)?, want)))
}

/// What reading a lower-layer file through the merged directory came to when it does not
/// hold `want`: a `wrong-data` observation in a guest (the harness made the layer), a skip
/// natively (the directory may have been used before). `None` when the bytes are right.
fn wrong_lower_bytes(
    name: &str,
    got: &[u8],
    want: &[u8],
    fresh: bool,
) -> Result<Option<Observation>, Stop> {
    if got == want {
        return Ok(None);
    }
    if !fresh {
        return Err(skip(format!(
            "{name} does not hold its lower-layer content: not a fresh overlay target (an \
             earlier run may have copied it up)"
        )));
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    Ok(Some(Observation::saw(
        "wrong-data",
        format!(
            "read through the merged directory before any copy-up, {name} returned {} bytes \
             where the lower layer holds {}{}",
            got.len(),
            want.len(),
            first.map_or(String::new(), |i| format!(
                ", the first wrong one at offset {i}"
            ))
        ),
    )))
}

/// Opens the lower file for writing (overlayfs copies it up at this open) and overwrites its
/// first page with the complement of what it held.
fn copy_up_and_write(ctx: &Ctx, name: &str, old: &[u8]) -> Result<Vec<u8>, Stop> {
    let w = OpenOptions::new().write(true).open(ctx.dir.join(name))?;
    let new: Vec<u8> = old[..4096].iter().map(|b| !b).collect();
    w.write_all_at(&new, 0)?;
    w.sync_all()?;
    Ok(new)
}

fn copy_up_ro_mmap(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, old) = match lower(ctx, common::LOWER_FILES[0])? {
        Ok(x) => x,
        Err(wrong) => return Ok(wrong),
    };
    let m = Mapping::shared_ro(&f, old.len())?;
    let _ = m.read(0);
    let new = copy_up_and_write(ctx, common::LOWER_FILES[0], &old)?;
    let seen: Vec<u8> = (0..new.len()).map(|i| m.read(i)).collect();
    Ok(if seen == new {
        Observation::saw("coherent", "the mapping shows the write made after copy-up")
    } else if seen[..] == old[..new.len()] {
        Observation::saw(
            "stale",
            "the mapping still shows the lower file's bytes after copy-up and a write",
        )
    } else {
        Observation::saw(
            "corrupt",
            "the mapping shows neither the old nor the new bytes",
        )
    })
}

fn copy_up_ro_fd(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, old) = match lower(ctx, common::LOWER_FILES[1])? {
        Ok(x) => x,
        Err(wrong) => return Ok(wrong),
    };
    let new = copy_up_and_write(ctx, common::LOWER_FILES[1], &old)?;
    let seen = sys::read_at(&f, 0, new.len())?;
    Ok(if seen == new {
        Observation::saw("new", "the read-only descriptor reads the copied-up file")
    } else if seen[..] == old[..new.len()] {
        Observation::saw(
            "stale",
            "the read-only descriptor still reads the lower file",
        )
    } else {
        Observation::saw(
            "corrupt",
            "read() returned neither the old nor the new bytes",
        )
    })
}

fn copy_up_splice(ctx: &Ctx) -> Result<Observation, Stop> {
    let name = common::LOWER_FILES[3];
    let (f, old) = match lower(ctx, name)? {
        Ok(x) => x,
        Err(wrong) => return Ok(wrong),
    };
    let (rx, tx) = sys::pipe()?;
    let n = match splice(
        f.as_fd(),
        None,
        tx.as_fd(),
        None,
        4096,
        SpliceFFlags::empty(),
    ) {
        Ok(n) => n,
        Err(e) => return Ok(common::errno(e, "splice from a lower-layer file")),
    };
    if n != 4096 {
        return Err(super::broken(format!("splice moved {n} of 4096 bytes")));
    }
    let new = copy_up_and_write(ctx, name, &old)?;
    drop(tx);
    let got = sys::read_all(rx)?;
    Ok(if got == new {
        Observation::saw("new", "the pipe shows the write made after copy-up")
    } else if got[..] == old[..4096] {
        Observation::saw("old", "the pipe holds the lower file's bytes after copy-up")
    } else {
        Observation::saw(
            "mixed",
            "the pipe holds neither the old nor the new bytes alone",
        )
    })
}

fn lower_direct_read(ctx: &Ctx) -> Result<Observation, Stop> {
    let name = common::LOWER_FILES[2];
    let want = match lower(ctx, name)? {
        Ok((_, want)) => want,
        Err(wrong) => return Ok(wrong),
    };
    let f = match common::open_direct(&ctx.dir.join(name), false, 0) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Observation::saw(
                sys::io_error_name(&e),
                format!("O_DIRECT open of a lower-layer file: {e}"),
            ))
        }
    };
    let mut buf = AlignedBuf::new(4096, 4096);
    Ok(match f.read_at(buf.as_mut_slice(), 4096) {
        Ok(4096) if buf.as_mut_slice()[..] == want[4096..8192] => {
            Observation::saw("ok", "4096 bytes at offset 4096, data verified")
        }
        Ok(n) => Observation::saw("wrong-data", format!("{n} bytes, not the lower file's")),
        Err(e) => Observation::saw(sys::io_error_name(&e), format!("direct read: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Profile, Where};
    use crate::kver::KernelVersion;
    use zcmatrix_protocol::Outcome;

    fn ctx(dir: &std::path::Path, fresh: bool) -> Ctx {
        Ctx {
            kernel: KernelVersion::new(6, 12, 0),
            dir: dir.to_path_buf(),
            fs: Some("overlay".into()),
            logical_block_size: Some(4096),
            device: None,
            owns_machine: fresh,
            variant: None,
            mounts: vec![("overlay".into(), dir.to_path_buf())],
            profile: Profile::Quick,
        }
    }

    /// Injected fault: the merged directory returns other bytes than the lower layer holds
    /// (here a plain directory whose "lower" files hold the wrong pattern). In a guest, where the
    /// harness made the layer, every overlay check is a `fail`, never a skip; natively it stays
    /// a skip (an earlier run may have copied the files up).
    #[test]
    fn wrong_lower_layer_bytes_fail_in_a_guest() {
        let dir = tempfile::tempdir().unwrap();
        for name in common::LOWER_FILES {
            let mut bytes = common::lower_content(name);
            bytes[5000] ^= 0xff;
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let on = Where {
            kernel: KernelVersion::new(6, 12, 0),
            fs: Some("overlay"),
            logical_block_size: Some(4096),
            page_size: 4096,
        };
        for c in checks() {
            let seen = (c.probe)(&ctx(dir.path(), true))
                .unwrap_or_else(|e| panic!("{}: {e:?}", c.full_id()));
            assert_eq!(seen.value, "wrong-data", "{}: {seen:?}", c.full_id());
            assert!(seen.detail.contains("offset 5000"), "{seen:?}");
            assert_eq!(c.rule.judge(&on, &seen.value).outcome, Outcome::Fail);
            assert!(
                matches!((c.probe)(&ctx(dir.path(), false)), Err(Stop::Skip(why)) if why.contains("not a fresh")),
                "{}",
                c.full_id()
            );
        }
        // The files are as the harness wrote them: nothing to say yet.
        for name in common::LOWER_FILES {
            let want = common::lower_content(name);
            assert!(wrong_lower_bytes(name, &want, &want, true)
                .unwrap()
                .is_none());
        }
    }
}
