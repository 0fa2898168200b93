//! One guest from start to finish: modules → initramfs → disks → QEMU → records → a status.
//! Whatever happens to the guest, every record it streamed is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use zcmatrix_protocol::{FsTarget, Manifest, Record, SCHEMA_VERSION};

use crate::disk;
use crate::initramfs::{self, ModuleFile};
use crate::kernel::Kernel;
use crate::modules::ModuleIndex;
use crate::qemu::{self, Accel, DiskSpec, Exit, GuestSpec};
use crate::stream::{Follower, Item};

/// How a guest (and so each of its cells) ended; defined with the report model, which the
/// harness's native mode shares without depending on this crate.
pub use zcmatrix_report::Status;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// The acceleration decision, made once per run and remembered.
#[derive(Debug)]
pub struct AccelPolicy {
    decided: Option<Accel>,
    /// Said once, when `auto` falls back to TCG.
    pub note: Option<String>,
}

/// How long a KVM guest may stay silent before `auto` decides KVM does not really work here.
pub const KVM_LIVENESS: Duration = Duration::from_secs(8);

impl AccelPolicy {
    pub fn new(choice: AccelChoice) -> Self {
        let (decided, note) = match choice {
            AccelChoice::Kvm => (Some(Accel::Kvm), None),
            AccelChoice::Tcg => (Some(Accel::Tcg), None),
            AccelChoice::Auto if !qemu::kvm_openable() => (
                Some(Accel::Tcg),
                Some("/dev/kvm cannot be opened here; running under TCG (slower)".to_string()),
            ),
            AccelChoice::Auto => (None, None),
        };
        AccelPolicy { decided, note }
    }
}

pub struct GuestPlan<'a> {
    pub kernel: &'a Kernel,
    pub targets: Vec<FsTarget>,
    pub checks: Vec<String>,
    pub harness: &'a Path,
    pub cache: &'a Path,
    /// Where console.log, results.jsonl and qemu.stderr go.
    pub dir: PathBuf,
    pub deadline: Duration,
    pub memory_mb: u32,
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
        }
    }
}

/// Kernel modules every guest needs for its disks.
const DISK_MODULES: &[&str] = &["virtio_pci", "virtio_blk"];

/// Resolves modules for the targets and returns them uncompressed, in load order.
fn modules_for(kernel: &Kernel, targets: &[FsTarget]) -> anyhow::Result<Vec<ModuleFile>> {
    let Some(tree) = &kernel.modules else {
        return Ok(Vec::new());
    };
    let ix = ModuleIndex::load(tree).with_context(|| format!("indexing {}", tree.display()))?;
    // Every guest has at least the swap disk.
    let mut wanted: Vec<&str> = DISK_MODULES.to_vec();
    for t in targets {
        if disk::needs_disk(&t.fs) {
            wanted.push(&t.fs);
        }
    }
    let order = ix.load_order(&wanted)?;
    order
        .into_iter()
        .map(|name| {
            let p = ix
                .path_of(tree, &name)
                .expect("load_order names indexed modules");
            Ok(ModuleFile {
                bytes: crate::modules::read_module(&p)?,
                name,
            })
        })
        .collect()
}

/// Prepares and boots one guest. Errors before QEMU starts come back as `InfraError`.
/// What a caller hears while a guest runs.
pub enum Event<'a> {
    Record(&'a Record),
    /// A decision worth telling the user at once (the fallback to TCG).
    Note(&'a str),
}

pub fn run(
    plan: &GuestPlan,
    accel: &mut AccelPolicy,
    on_event: &mut dyn FnMut(Event),
) -> GuestOutcome {
    match prepare(plan) {
        Ok(spec) => boot(plan, spec, accel, on_event),
        Err(e) => GuestOutcome::infra(format!("{e:#}")),
    }
}

fn prepare(plan: &GuestPlan) -> anyhow::Result<GuestSpec> {
    fs::create_dir_all(&plan.dir)?;
    let modules = modules_for(plan.kernel, &plan.targets)?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        modules: modules
            .iter()
            .map(|m| initramfs::guest_module_path(&m.name))
            .collect(),
        targets: plan.targets.clone(),
        checks: plan.checks.clone(),
        swap_serial: Some(disk::SWAP_SERIAL.to_string()),
    };
    let initrd = initramfs::build(plan.cache, plan.harness, &modules, &manifest)?;
    let mut disks = Vec::new();
    for t in &plan.targets {
        if let (Some(serial), Some(lbs)) = (&t.disk_serial, t.logical_block_size) {
            disks.push(DiskSpec {
                image: disk::blank_image(plan.cache, &t.fs, lbs)?,
                serial: serial.clone(),
                logical_block_size: lbs,
            });
        }
    }
    disks.push(DiskSpec {
        image: disk::swap_image(plan.cache)?,
        serial: disk::SWAP_SERIAL.to_string(),
        logical_block_size: 512,
    });
    Ok(GuestSpec {
        kernel: plan.kernel.image.clone(),
        initrd,
        cmdline: qemu::kernel_cmdline(plan.memory_mb),
        memory_mb: plan.memory_mb,
        cpus: 1,
        accel: Accel::Tcg,
        disks,
        console: plan.dir.join("console.log"),
        results: plan.dir.join("results.jsonl"),
    })
}

fn boot(
    plan: &GuestPlan,
    mut spec: GuestSpec,
    policy: &mut AccelPolicy,
    on_event: &mut dyn FnMut(Event),
) -> GuestOutcome {
    let mut on_record = |r: &Record| on_event(Event::Record(r));
    if policy.decided.is_none() {
        // auto, KVM openable, not yet proven: try it with a liveness window.
        spec.accel = Accel::Kvm;
        match attempt(plan, &spec, Some(KVM_LIVENESS), &mut on_record) {
            // A record arrived, so the guest ran under KVM; whatever happened next (even the
            // harness giving up, an infra_error) would happen under TCG too.
            Ok(out) if out.boot_ms.is_some() => {
                policy.decided = Some(Accel::Kvm);
                return out;
            }
            Ok(out) => {
                policy.note = Some(format!(
                    "KVM is present but a guest does not run under it ({}); continuing under TCG",
                    out.detail
                ));
            }
            Err(e) => {
                policy.note = Some(format!("KVM failed ({e:#}); continuing under TCG"));
            }
        }
        policy.decided = Some(Accel::Tcg);
        if let Some(n) = &policy.note {
            on_event(Event::Note(n));
        }
    }
    spec.accel = policy.decided.expect("decided above");
    attempt(plan, &spec, None, &mut |r| on_event(Event::Record(r)))
        .unwrap_or_else(|e| GuestOutcome::infra(format!("{e:#}")))
}

fn attempt(
    plan: &GuestPlan,
    spec: &GuestSpec,
    liveness: Option<Duration>,
    on_record: &mut dyn FnMut(&Record),
) -> anyhow::Result<GuestOutcome> {
    for f in [&spec.console, &spec.results] {
        fs::write(f, "")?;
    }
    let started = Instant::now();
    let mut follower = Follower::new(&spec.results);
    let mut records = Vec::new();
    let mut raw_lines = Vec::new();
    let mut boot_ms = None;
    let mut take = |items: Vec<Item>, records: &mut Vec<Record>, raw: &mut Vec<String>| {
        for it in items {
            match it {
                Item::Record(r) => {
                    if boot_ms.is_none() {
                        boot_ms = Some(started.elapsed().as_millis() as u64);
                    }
                    on_record(&r);
                    records.push(r);
                }
                Item::Raw(l) => raw.push(l),
            }
        }
    };
    let run = qemu::run(spec, &plan.dir, plan.deadline, liveness, &mut || {
        take(follower.poll(), &mut records, &mut raw_lines)
    })?;
    take(follower.finish(), &mut records, &mut raw_lines);
    let console = fs::read_to_string(&spec.console).unwrap_or_default();
    let (status, detail) = classify(&run.exit, &records, &console, &run.stderr, plan.deadline);
    Ok(GuestOutcome {
        status,
        detail,
        accel: Some(spec.accel),
        boot_ms,
        records,
        raw_lines,
    })
}

/// Decides what happened to a guest from its exit, its records and its console.
pub fn classify(
    exit: &Exit,
    records: &[Record],
    console: &str,
    qemu_stderr: &str,
    deadline: Duration,
) -> (Status, String) {
    let summary = records.iter().any(|r| matches!(r, Record::Summary { .. }));
    let harness_error = records.iter().find_map(|r| match r {
        Record::Error { message } => Some(message.clone()),
        _ => None,
    });
    let panic_line = console
        .lines()
        .find(|l| l.contains("Kernel panic") || l.contains("BUG:") || l.contains("Oops:"))
        .map(|l| l.trim().to_string());
    match exit {
        _ if summary => (Status::Completed, "harness finished".into()),
        Exit::TimedOut => (
            Status::Timeout,
            format!(
                "killed after {}s; last console line: {}",
                deadline.as_secs(),
                last_line(console)
            ),
        ),
        Exit::NoSignOfLife => (
            Status::InfraError,
            "the guest printed nothing on its console".into(),
        ),
        Exit::Exited(_) if panic_line.is_some() => (Status::Panic, panic_line.unwrap()),
        // The harness gave up on its own (no manifest, a panic outside any probe, which run in
        // forked children): that is zcmatrix failing, not the kernel, so it is infrastructure.
        Exit::Exited(_) if harness_error.is_some() => (
            Status::InfraError,
            format!("the harness gave up: {}", harness_error.unwrap()),
        ),
        Exit::Exited(code) if records.is_empty() && console.is_empty() => (
            Status::InfraError,
            format!(
                "QEMU exited ({}) before the guest started: {}",
                code.map_or("killed by a signal".to_string(), |c| format!("status {c}")),
                qemu_stderr.lines().next().unwrap_or("").trim()
            ),
        ),
        Exit::Exited(_) => (
            Status::Panic,
            format!(
                "the guest stopped without a summary; last console line: {}",
                last_line(console)
            ),
        ),
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(none)")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(60);

    fn summary() -> Record {
        Record::Summary {
            counts: zcmatrix_protocol::Counts::default(),
            duration_ms: 1,
        }
    }

    #[test]
    fn a_summary_means_completed_whatever_the_exit() {
        assert_eq!(
            classify(&Exit::Exited(Some(0)), &[summary()], "", "", D).0,
            Status::Completed
        );
    }

    #[test]
    fn a_kernel_panic_is_found_on_the_console() {
        let (s, d) = classify(
            &Exit::Exited(Some(0)),
            &[],
            "boot\n[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n",
            "",
            D,
        );
        assert_eq!(s, Status::Panic);
        assert!(d.contains("Attempted to kill init"));
    }

    #[test]
    fn qemu_dying_at_once_is_an_infrastructure_error() {
        let (s, d) = classify(&Exit::Exited(Some(1)), &[], "", "failed to set MSR 0x48", D);
        assert_eq!(s, Status::InfraError);
        assert!(d.contains("failed to set MSR"));
        assert_eq!(
            classify(&Exit::NoSignOfLife, &[], "", "", D).0,
            Status::InfraError
        );
    }

    #[test]
    fn a_harness_that_gives_up_is_infrastructure_but_a_console_panic_wins() {
        let rec = Record::Error {
            message: "reading /manifest.json".into(),
        };
        let (s, d) = classify(
            &Exit::Exited(Some(0)),
            std::slice::from_ref(&rec),
            "boot\n",
            "",
            D,
        );
        assert_eq!(s, Status::InfraError);
        assert!(d.contains("manifest"), "{d}");
        let (s, _) = classify(&Exit::Exited(Some(0)), &[rec], "Oops: 0002\n", "", D);
        assert_eq!(s, Status::Panic);
    }

    #[test]
    fn deadline_is_a_timeout_even_with_partial_results() {
        let rec = Record::Error {
            message: "x".into(),
        };
        let (s, d) = classify(&Exit::TimedOut, &[rec], "a\nrunning dio\n", "", D);
        assert_eq!(s, Status::Timeout);
        assert!(d.contains("running dio"));
    }
}
