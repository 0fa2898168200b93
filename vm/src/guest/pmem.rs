//! Where a guest's DAX targets live: their images in a RAM file the guest sees as persistent
//! memory (the placement itself is [`crate::pmem`]'s).

use std::path::PathBuf;

use anyhow::Context;
use zcmatrix_protocol::FsTarget;

use super::GuestPlan;
use crate::disk;

/// What the DAX targets of a guest add to it: a RAM file holding their images, the
/// command-line words and device-tree regions that make those ranges persistent memory (see
/// [`crate::pmem::place`]), and the RAM size with them.
pub(super) struct PmemPlan {
    pub(super) ram_file: PathBuf,
    pub(super) cmdline: Vec<String>,
    pub(super) dt_regions: Vec<crate::pmem::Region>,
    pub(super) total_mb: u32,
}

/// Places the available DAX targets' images in persistent memory (see [`crate::pmem`]) and
/// tells each target where its region starts.
pub(super) fn pmem_for(
    plan: &GuestPlan,
    targets: &mut [FsTarget],
) -> anyhow::Result<Option<PmemPlan>> {
    let dax: Vec<&mut FsTarget> = targets
        .iter_mut()
        .filter(|t| disk::backing(&t.fs) == disk::Backing::Pmem && t.unavailable.is_none())
        .collect();
    if dax.is_empty() {
        return Ok(None);
    }
    let mut images = Vec::new();
    for t in &dax {
        images.push(disk::blank_dax_image(
            plan.cache,
            &t.fs,
            plan.kernel.page_size,
        )?);
    }
    let sizes: Vec<u64> = dax.iter().map(|t| disk::image_bytes(&t.fs)).collect();
    let placed =
        crate::pmem::place(plan.kernel.arch, plan.memory_mb, &sizes).with_context(|| {
            format!(
                "--memory {} leaves no room below the DAX targets' persistent memory",
                plan.memory_mb
            )
        })?;
    for (t, r) in dax.into_iter().zip(&placed.regions) {
        t.pmem_start = Some(r.start);
    }
    Ok(Some(PmemPlan {
        ram_file: crate::pmem::ram_file(plan.cache, &images, &placed.regions, placed.total)?,
        cmdline: placed.cmdline,
        dt_regions: if placed.in_device_tree {
            placed.regions
        } else {
            Vec::new()
        },
        total_mb: (placed.total >> 20) as u32,
    }))
}
