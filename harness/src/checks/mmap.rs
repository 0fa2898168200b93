//! File mappings: what MAP_PRIVATE and MAP_SHARED promise about who sees a write.

use std::num::NonZeroUsize;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use zcmatrix_protocol::Scope;

use super::{Check, Ctx, Expect, Observation, Rule};
use crate::sys;

pub const CHECKS: &[Check] = &[Check {
    id: "mmap.private_write",
    variant: None,
    scope: Scope::Fs,
    description: "a write through a MAP_PRIVATE file mapping never reaches the file",
    rule: Rule {
        expect: Expect::Always(&["isolated"]),
        evidence: "mmap(2) MAP_PRIVATE: updates to the mapping are not carried through to the \
                   underlying file",
    },
    probe: private_write,
}];

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A MAP_PRIVATE write breaks copy-on-write into an anonymous page; the page-cache page, and so
/// the file, keep the old bytes even after munmap and fsync.
fn private_write(ctx: &Ctx) -> anyhow::Result<Observation> {
    let len = page_size();
    let path = ctx.dir.join("mmap.private_write");
    let original = sys::pattern(len, 0x3a9);
    let f = sys::write_file_synced(&path, &original)?;
    let nz = NonZeroUsize::new(len).expect("page size is not zero");
    // SAFETY: a fresh mapping of our own file; nothing else aliases it.
    let ptr = unsafe {
        mmap(
            None,
            nz,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
            &f,
            0,
        )?
    };
    // SAFETY: the mapping is `len` bytes long, readable and writable.
    let view = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
    view.fill(0xee);
    let mapped_changed = view.iter().all(|&b| b == 0xee);
    // SAFETY: ptr/len come from the mmap above and `view` is not used past this point.
    unsafe { munmap(ptr, len)? };
    f.sync_all()?;
    if !mapped_changed {
        return Ok(Observation::saw(
            "write-lost",
            "the private mapping did not keep its own write",
        ));
    }
    let now = sys::read_at(&f, 0, len)?;
    Ok(if now == original {
        Observation::saw(
            "isolated",
            "file unchanged after a private write and munmap",
        )
    } else {
        Observation::saw(
            "leaked",
            format!(
                "file differs from the original at byte {:?}",
                sys::first_difference(&now, &original)
            ),
        )
    })
}
