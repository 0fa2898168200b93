//! One guest from start to finish: modules → initramfs → disks → QEMU → records → a status.
//! Whatever happens to the guest, every record it streamed is kept.
//!
//! One module per concern: `modules` chooses the kernel modules a guest loads, `pmem`
//! places its DAX targets' memory, `boot` starts QEMU (under which accelerator, with which
//! deadlines) and follows it, and `console` reads how the guest ended from its console and
//! its exit. This file holds the plan, the outcome and the preparation that ties them together.

mod boot;
mod console;
mod modules;
mod pmem;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use zcmatrix_protocol::{FsTarget, Manifest, Profile, Record, SCHEMA_VERSION};

use crate::disk;
use crate::initramfs;
use crate::kernel::Kernel;
use crate::qemu::{self, Accel, Deadlines, DiskSpec, GuestSpec};

/// How a guest (and so each of its cells) ended; defined with the report model, which the
/// harness's native mode shares without depending on this crate.
pub use zcmatrix_report::Status;

/// Something the kernel printed that says it is unwell, even if the guest went on; defined with
/// the report model.
pub use zcmatrix_report::Splat;

/// The acceleration policy lives in [`crate::accel`]; its names stay reachable from here.
pub use crate::accel::{AccelChoice, AccelPolicy};

pub use boot::{deadlines_for, NET_LOG};
pub use console::{classify, hung_check, splats};

pub struct GuestPlan<'a> {
    pub kernel: &'a Kernel,
    pub targets: Vec<FsTarget>,
    pub checks: Vec<String>,
    pub profile: Profile,
    /// `--judge-as`: the series whose rules judge this guest's observations.
    pub judge_as: Option<String>,
    /// Attach the swap disk (and load the disk driver for it).
    pub swap: bool,
    /// Give the guest its virtio-net path to a host end (and load the network modules).
    pub net: bool,
    pub harness: &'a Path,
    /// The user's KTAP programs for this guest's architecture (`--exec`).
    pub user_checks: Vec<&'a crate::user::UserProgram>,
    pub cache: &'a Path,
    /// Where console.log, results.jsonl and qemu.stderr go.
    pub dir: PathBuf,
    pub deadlines: Deadlines,
    pub memory_mb: u32,
    /// Appended to the kernel command line (later words win over ours).
    pub kernel_args: Vec<String>,
    /// Set when the run is stopped: the guest is killed and reported as interrupted.
    pub stop: &'a AtomicBool,
}

#[derive(Debug, Clone)]
pub struct GuestOutcome {
    pub status: Status,
    pub detail: String,
    pub accel: Option<Accel>,
    /// From QEMU start to the harness's first record, as seen by the host.
    pub boot_ms: Option<u64>,
    pub records: Vec<Record>,
    pub raw_lines: Vec<String>,
    /// What the kernel printed that says it is unwell (see [`splats`]).
    pub splats: Vec<Splat>,
    /// What the host says about the guest besides: the optional modules it asked the kernel
    /// for and did not find.
    pub notes: Vec<String>,
    /// Whether starting the guest again could end otherwise. False when the host could not
    /// prepare it (a kernel without a driver for the result port, a disk filesystem its
    /// modules cannot mount): that is the same every time, so it is not retried.
    pub may_retry: bool,
}

impl GuestOutcome {
    pub fn infra(detail: String) -> Self {
        GuestOutcome {
            status: Status::InfraError,
            detail,
            accel: None,
            boot_ms: None,
            records: Vec::new(),
            raw_lines: Vec::new(),
            splats: Vec::new(),
            notes: Vec::new(),
            may_retry: true,
        }
    }

    /// A guest that never started because the run was stopped first.
    pub fn interrupted() -> Self {
        GuestOutcome {
            status: Status::Interrupted,
            detail: "the run was stopped before this guest started".into(),
            ..Self::infra(String::new())
        }
    }
}

/// What a caller hears while a guest runs.
pub enum Event<'a> {
    Record(&'a Record),
    /// Said once for the run: KVM was given up (see [`crate::accel`]).
    AccelNote(&'a str),
}

/// Prepares and boots one guest. Errors before QEMU starts come back as `InfraError`, not to be
/// retried (see [`GuestOutcome::may_retry`]).
pub fn run(plan: &GuestPlan, accel: &AccelPolicy, on_event: &mut dyn FnMut(Event)) -> GuestOutcome {
    match prepare(plan) {
        Ok((spec, missing)) => {
            let mut outcome = boot::boot(plan, spec, accel, on_event);
            outcome.notes = missing_notes(&missing);
            outcome
        }
        Err(e) => GuestOutcome {
            may_retry: false,
            ..GuestOutcome::infra(format!("{e:#}"))
        },
    }
}

/// The host's word on the modules it asked a kernel for and did not find.
fn missing_notes(missing: &[String]) -> Vec<String> {
    missing
        .iter()
        .map(|m| {
            format!(
                "module {m}: asked for and not found in this kernel's modules, nor built in \
                 (the checks that need it say so)"
            )
        })
        .collect()
}

/// The guest's spec, and the optional modules asked for and not found.
fn prepare(plan: &GuestPlan) -> anyhow::Result<(GuestSpec, Vec<String>)> {
    fs::create_dir_all(&plan.dir)?;
    let mut targets = plan.targets.clone();
    let modules = modules::modules_for(plan.kernel, &mut targets, plan.swap, plan.net)?;
    let pmem = pmem::pmem_for(plan, &mut targets)?;
    let missing = modules.missing.clone();
    let paths = |files: &[initramfs::ModuleFile]| {
        files
            .iter()
            .map(|m| initramfs::guest_module_path(&m.name))
            .collect()
    };
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        port_modules: paths(&modules.port),
        modules: paths(&modules.rest),
        targets: targets.clone(),
        checks: plan.checks.clone(),
        swap_serial: plan.swap.then(|| disk::SWAP_SERIAL.to_string()),
        profile: plan.profile,
        net: plan.net.then(|| zcmatrix_protocol::net::NetPath {
            mac: qemu::GUEST_MAC.into(),
            address: qemu::GUEST_ADDRESS.into(),
            prefix_len: qemu::GUEST_PREFIX_LEN,
            peer: qemu::NET_PEER.into(),
        }),
        user_checks: plan
            .user_checks
            .iter()
            .map(|u| zcmatrix_protocol::UserCheck {
                name: u.name.clone(),
                path: u.guest_path(),
                timeout_s: crate::user::TIMEOUT_S,
            })
            .collect(),
        missing_modules: modules.missing,
        judge_as: plan.judge_as.clone(),
    };
    let user_files = plan
        .user_checks
        .iter()
        .map(|u| {
            let bytes =
                fs::read(&u.path).with_context(|| format!("reading {}", u.path.display()))?;
            Ok((u.guest_path(), bytes))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let files: Vec<_> = modules.port.into_iter().chain(modules.rest).collect();
    let initrd = initramfs::build(plan.cache, plan.harness, &files, &user_files, &manifest)?;
    let mut disks = Vec::new();
    for t in targets.iter().filter(|t| t.unavailable.is_none()) {
        if let (Some(serial), Some(lbs)) = (&t.disk_serial, t.logical_block_size) {
            disks.push(DiskSpec {
                // overlay's layers live on a blank ext4 disk, the ext4 target's image.
                image: disk::blank_image(plan.cache, disk::image_fs(&t.fs), lbs)?,
                serial: serial.clone(),
                logical_block_size: lbs,
            });
        }
    }
    if plan.swap {
        disks.push(DiskSpec {
            image: disk::swap_image(plan.cache, plan.kernel.page_size)?,
            serial: disk::SWAP_SERIAL.to_string(),
            logical_block_size: 512,
        });
    }
    Ok((
        GuestSpec {
            arch: plan.kernel.arch,
            kernel: plan.kernel.image.clone(),
            initrd,
            cmdline: [qemu::kernel_cmdline(plan.kernel.arch, plan.memory_mb)]
                .into_iter()
                .chain(pmem.as_ref().map(|p| p.cmdline.join(" ")))
                .chain(plan.kernel_args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            memory_mb: pmem.as_ref().map_or(plan.memory_mb, |p| p.total_mb),
            cpus: 1,
            accel: Accel::Tcg,
            paused: false,
            disks,
            console: plan.dir.join("console.log"),
            results: plan.dir.join("results.jsonl"),
            dt_pmem: pmem
                .as_ref()
                .map_or_else(Vec::new, |p| p.dt_regions.clone()),
            // Made per attempt, for its accelerator: see `boot`.
            dtb: None,
            ram_file: pmem.map(|p| p.ram_file),
            // The socket is the attempt's: see `attempt`.
            net: None,
        },
        missing,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_modules_become_notes_naming_them() {
        let n = missing_notes(&["tls".to_string()]);
        assert_eq!(n.len(), 1);
        assert!(
            n[0].starts_with("module tls: asked for and not found"),
            "{n:?}"
        );
    }
}
