//! One guest from start to finish: modules → initramfs → disks → QEMU → records → a status.
//! Whatever happens to the guest, every record it streamed is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zcmatrix_protocol::{FsTarget, Manifest, Record, SCHEMA_VERSION};

use crate::disk;
use crate::initramfs::{self, ModuleFile};
use crate::kernel::Kernel;
use crate::modules::ModuleIndex;
use crate::qemu::{self, Accel, DiskSpec, Exit, GuestSpec};
use crate::stream::{Follower, Item};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The harness sent its summary and the guest reported no error outside the checks.
    Completed,
    /// The harness sent its summary, but the guest also reported errors outside any check (a
    /// module that did not load, no swap, no loopback, a garbled stream): results are real, yet
    /// some checks may have skipped for want of what the set-up should have provided. Only
    /// [`crate::report::cells_of`] decides this; [`classify`] never returns it.
    CompletedWithErrors,
    Timeout,
    Panic,
    InfraError,
}

impl Status {
    /// The word used in report.json and report.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::CompletedWithErrors => "completed_with_errors",
            Status::Timeout => "timeout",
            Status::Panic => "panic",
            Status::InfraError => "infra_error",
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// The acceleration decision, made once per run (before any guest) and remembered.
#[derive(Debug, Clone)]
pub struct AccelPolicy {
    pub accel: Accel,
    /// Said once, when `auto` falls back to TCG.
    pub note: Option<String>,
}

impl AccelPolicy {
    /// `auto` asks [`crate::kvm::probe`] (a few milliseconds) whether a vCPU really runs here.
    pub fn new(choice: AccelChoice) -> Self {
        Self::decide(choice, crate::kvm::probe)
    }

    /// The decision with the probe passed in, so every branch can be tested on any host. The
    /// probe runs only for `auto`: `kvm` and `tcg` are the user's word.
    pub fn decide(
        choice: AccelChoice,
        probe: impl FnOnce() -> Result<(), crate::kvm::Unusable>,
    ) -> Self {
        let (accel, note) = match choice {
            AccelChoice::Kvm => (Accel::Kvm, None),
            AccelChoice::Tcg => (Accel::Tcg, None),
            AccelChoice::Auto => match probe() {
                Ok(()) => (Accel::Kvm, None),
                Err(why) => (
                    Accel::Tcg,
                    Some(format!(
                        "KVM cannot run a guest here ({why}); running under TCG (slower)"
                    )),
                ),
            },
        };
        AccelPolicy { accel, note }
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
}

pub fn run(plan: &GuestPlan, accel: &AccelPolicy, on_event: &mut dyn FnMut(Event)) -> GuestOutcome {
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
    policy: &AccelPolicy,
    on_event: &mut dyn FnMut(Event),
) -> GuestOutcome {
    spec.accel = policy.accel;
    attempt(plan, &spec, &mut |r| on_event(Event::Record(r)))
        .unwrap_or_else(|e| GuestOutcome::infra(format!("{e:#}")))
}

fn attempt(
    plan: &GuestPlan,
    spec: &GuestSpec,
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
    let run = qemu::run(spec, &plan.dir, plan.deadline, None, &mut || {
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
    fn auto_uses_kvm_only_when_the_probe_ran_a_vcpu() {
        let ok = AccelPolicy::decide(AccelChoice::Auto, || Ok(()));
        assert_eq!((ok.accel, ok.note), (Accel::Kvm, None));
        let broken = AccelPolicy::decide(AccelChoice::Auto, || {
            Err(crate::kvm::Unusable(
                "KVM_SET_MSRS: MSR 0x10a refused".into(),
            ))
        });
        assert_eq!(broken.accel, Accel::Tcg);
        let note = broken.note.expect("the fallback is said");
        assert!(note.contains("MSR 0x10a") && note.contains("TCG"), "{note}");
    }

    #[test]
    fn an_explicit_choice_is_never_second_guessed_nor_probed() {
        for (choice, accel) in [
            (AccelChoice::Kvm, Accel::Kvm),
            (AccelChoice::Tcg, Accel::Tcg),
        ] {
            let p = AccelPolicy::decide(choice, || panic!("probed for {choice:?}"));
            assert_eq!((p.accel, p.note), (accel, None));
        }
    }

    #[test]
    fn the_real_probe_decides_within_a_second() {
        // Whatever this host can do, the verdict must come fast (it used to take ~8 s of a
        // guest staying silent); with /dev/kvm absent it is an error at once.
        let t = Instant::now();
        let _ = crate::kvm::probe();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
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
