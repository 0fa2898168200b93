//! A whole run: guests scheduled over `jobs` workers, kernels fetched (and the lock saved) as they
//! are needed, the report rewritten after every guest so nothing measured is lost, and the exit
//! policy. The command line hands the [`Plan`], its [`Slice`] and the [`Harness`] down once and
//! hears [`Event`]s back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context;
use zcmatrix_protocol::catalogue::CheckInfo;
use zcmatrix_protocol::Record;

use crate::arch::Arch;
use crate::guest::{self, AccelPolicy, GuestOutcome, GuestPlan, Status};
use crate::guest_times::{self, GuestTimes};
use crate::kernel::{Kernel, KernelSpec, KernelStore, LockFile};
use crate::plan::{self, Plan};
use crate::report::{self, Cell, CellKey, Report};
use crate::shard::Slice;

/// The harness a run's guests start as PID 1, built by the caller: its static binary per
/// architecture (one for each architecture among the kernels the run boots) and the checks it
/// has (`harness list`), which decide what each guest is given (a swap disk, the network).
#[derive(Debug, Clone)]
pub struct Harness {
    pub binaries: BTreeMap<Arch, PathBuf>,
    pub checks: Vec<CheckInfo>,
}

/// One run as its workers read it: the plan, the harness and what the harness's checks ask of
/// each guest.
struct Run<'a> {
    plan: &'a Plan,
    harness: &'a Harness,
    /// Give each guest a swap disk (some selected check swaps pages out).
    swap: bool,
    /// Give each guest its virtio-net path to a host end (some selected check needs it).
    net: bool,
}

/// What the caller hears while the run goes on. `guest` is the kernel's label, the prefix that
/// keeps the lines of parallel guests apart.
#[derive(Debug)]
pub enum Event<'a> {
    /// Said once for the run (the fallback to TCG, before the first guest or when a guest under
    /// KVM stayed silent).
    Note(&'a str),
    /// A guest moved on to another phase (fetching its kernel, booting).
    Phase {
        guest: &'a str,
        what: &'a str,
    },
    /// Something worth a line of its own about one guest (a substituted kernel).
    GuestNote {
        guest: &'a str,
        note: &'a str,
    },
    Record {
        guest: &'a str,
        record: &'a Record,
    },
    /// A guest ended; its cells are in the report on disk.
    Done {
        guest: &'a str,
        status: Status,
        detail: &'a str,
    },
}

pub fn guest_dir_name(spec: &KernelSpec) -> String {
    match spec {
        KernelSpec::Debian(k) => k.label(),
        KernelSpec::Local { image, .. } => format!(
            "local-{}",
            image
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ),
        KernelSpec::Package(k) => k.label(),
    }
}

/// Set by SIGINT or SIGTERM. Registered once per process; a second signal while it is set ends
/// the process at once (exit 130), for a user who does not want to wait for the report.
fn stop_on_signals() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration fails only for signals that cannot be caught; these two can.
            let _ = signal_hook::flag::register_conditional_shutdown(
                sig,
                exit::INTERRUPTED as i32,
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
    .clone()
}

/// Kernels and their pins, shared by the workers: fetching a kernel and saving the lock happen
/// one at a time.
struct Kernels {
    store: KernelStore,
    lock: LockFile,
}

/// Runs every guest of the slice of the plan (its kernels, [`crate::shard::slice`]) with the
/// harness the caller built for them, and returns the report (also written to `plan.out`).
pub fn run(
    plan: &Plan,
    slice: &Slice,
    harness: &Harness,
    on_event: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Report> {
    let r = Run {
        plan,
        harness,
        swap: plan::needs_swap(&plan.checks, &harness.checks, plan.profile),
        net: plan::needs_net(&plan.checks, &harness.checks, plan.profile),
    };
    let r = &r;
    fs::create_dir_all(&plan.out).with_context(|| format!("creating {}", plan.out.display()))?;
    let stop_flag = stop_on_signals();
    // A run stopped earlier in this process (a test) does not stop this one.
    stop_flag.store(false, Ordering::SeqCst);
    let stop: &AtomicBool = &stop_flag;
    let accel = AccelPolicy::new(plan.accel, &plan.cache);
    if let Some(n) = accel.note() {
        on_event(Event::Note(&n));
    }
    let kernels = Mutex::new(Kernels {
        store: KernelStore::new(&plan.cache),
        lock: LockFile::load(&plan.lock)?,
    });
    let keys: Vec<CellKey> = plan
        .targets()
        .iter()
        .map(|t| CellKey {
            fs: t.fs.clone(),
            logical_block_size: t.logical_block_size,
        })
        .collect();
    // Cells per guest in plan order, whatever order the guests finish in, so the report of a
    // parallel run reads the same as a serial one.
    let done: Mutex<Vec<Option<Vec<Cell>>>> = Mutex::new(vec![None; slice.kernels.len()]);
    let next = AtomicUsize::new(0);
    // Longest guests first (as long as they took last time), so that the last guest to start
    // is a short one and the workers finish together; the report keeps the plan's order.
    let times_path = plan.cache.join(guest_times::FILE);
    let mut times = GuestTimes::load(&times_path);
    let times_key = guest_times::key(plan);
    let order = times.longest_first(&slice.kernels, &times_key);
    let measured: Mutex<Vec<(&KernelSpec, u64)>> = Mutex::new(Vec::new());
    let write_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    let worker = || loop {
        let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
            return;
        };
        let spec = &slice.kernels[i];
        let started = Instant::now();
        let (targets, _) = plan.for_guest(spec);
        let keys: Vec<CellKey> = keys
            .iter()
            .filter(|k| targets.iter().any(|t| t.fs == k.fs))
            .cloned()
            .collect();
        let cells = one_guest(r, spec, &kernels, &accel, &keys, stop, on_event);
        if cells.iter().all(|c| c.status == Status::Completed) {
            measured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((spec, started.elapsed().as_millis() as u64));
        }
        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
        done[i] = Some(cells);
        let mut so_far = Report::new(
            accel.note(),
            done.iter().flatten().flatten().cloned().collect(),
        );
        so_far.run = Some(slice.run.clone());
        if let Err(e) = write_report(&plan.out, &so_far) {
            write_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
    };
    let jobs = plan.jobs.clamp(1, slice.kernels.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(worker);
        }
    });
    let mut this_run = GuestTimes::default();
    for (spec, ms) in measured.into_inner().unwrap_or_else(|e| e.into_inner()) {
        this_run.insert(spec, &times_key, ms);
    }
    // Beside the report, what this run measured: a sharded run never writes the cache's file
    // (below), so this is how its times reach the next run (`report merge` joins the shards'
    // files, a workflow hands the result to its next run's cache).
    if let Err(e) = this_run.save(&plan.out.join(guest_times::FILE)) {
        write_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }
    times.extend(this_run);
    // Only a hint for the next run's order: losing it costs balance, never results. A shard
    // leaves it as it found it: the split of the kernels over shards is computed from this file
    // by each shard on its own, so a shard that ran first must not change it under the next
    // shard of the same run on this machine.
    if plan.shard.is_none() {
        let _ = times.save(&times_path);
    }
    if let Some(e) = write_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let cells = done
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let mut report = Report::new(accel.note(), cells);
    report.run = Some(slice.run.clone());
    write_report(&plan.out, &report)?;
    Ok(report)
}

/// A shard with no kernel (more shards than kernels) boots nothing. It still writes a report
/// (no cells, its `run` saying which shard it is) so that `report merge` can tell it apart from
/// a missing shard, and it succeeds.
pub fn write_empty_report(plan: &Plan, slice: &Slice) -> anyhow::Result<()> {
    let mut r = Report::new(None, Vec::new());
    r.run = Some(slice.run.clone());
    write_report(&plan.out, &r)
}

/// Host programs a run needs, with the package that has each: QEMU and the cross linker of
/// each architecture the slice boots, the mkfs of each filesystem, apt where the slice has a
/// Debian kernel.
pub fn required_tools(plan: &Plan, slice: &Slice) -> Vec<(&'static str, &'static str)> {
    let mut t = vec![("mkswap", "util-linux")];
    let mut arches: Vec<Arch> = slice.kernels.iter().map(|k| k.arch()).collect();
    arches.sort();
    arches.dedup();
    for a in arches {
        t.push(crate::qemu::binary(a));
        if let Some(linker) = a.cross_linker().filter(|_| a != Arch::host()) {
            t.push(linker);
        }
    }
    for fs in &plan.filesystems {
        if let Some(tool) = crate::disk::mkfs_tool(fs) {
            t.push(tool);
        }
    }
    if crate::plan::needs_debian(&slice.kernels) {
        t.push(("apt-get", "apt"));
        t.push(("dpkg-deb", "dpkg"));
    }
    t
}

/// Whether a guest ended for a reason of the host's rather than the kernel's, so that starting it
/// again may go otherwise: no guest or a harness that gave up, no record before the boot
/// deadline, QEMU ending without a summary or a panic. A failed check, a panic, a hung check or
/// a stopped run is never retried.
pub fn retryable(status: Status) -> bool {
    matches!(
        status,
        Status::InfraError | Status::BootTimeout | Status::QemuExited
    )
}

/// One kernel: fetch it (saving the lock if it moved), boot its guest (again, up to
/// `plan.retries` times, while it ends for an infrastructure reason), turn it into cells.
fn one_guest(
    r: &Run,
    spec: &KernelSpec,
    kernels: &Mutex<Kernels>,
    accel: &AccelPolicy,
    keys: &[CellKey],
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event) + Sync),
) -> Vec<Cell> {
    let plan = r.plan;
    let label = spec.label();
    let dir_name = guest_dir_name(spec);
    let dir = plan.out.join("guests").join(&dir_name);
    let _ = fs::remove_dir_all(&dir);
    let mut retries = 0;
    let (kernel, outcome) = loop {
        if stop.load(Ordering::SeqCst) {
            break (None, GuestOutcome::interrupted());
        }
        let (kernel, outcome) = attempt(r, spec, &label, &dir, kernels, accel, stop, on_event);
        if retries < plan.retries && outcome.may_retry && retryable(outcome.status) {
            retries += 1;
            on_event(Event::GuestNote {
                guest: &label,
                note: &format!(
                    "{}: {}; starting it again ({retries} of {})",
                    outcome.status.as_str(),
                    outcome.detail,
                    plan.retries
                ),
            });
            // The failed attempt's logs stay beside the final ones.
            let kept = plan
                .out
                .join("guests")
                .join(format!("{dir_name}.attempt{retries}"));
            let _ = fs::remove_dir_all(&kept);
            let _ = fs::rename(&dir, &kept);
            continue;
        }
        break (kernel, outcome);
    };
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(dir.join("raw-lines.txt"), outcome.raw_lines.join("\n"));
    // The same results for the kernel world's runners (kselftest, KernelCI, LKFT read KTAP).
    let _ = fs::write(
        dir.join("results.ktap"),
        zcmatrix_protocol::ktap::from_records(&outcome.records),
    );
    on_event(Event::Done {
        guest: &label,
        status: outcome.status,
        detail: &outcome.detail,
    });
    let mut cells = report::cells_of(
        &label,
        kernel.as_ref(),
        keys,
        &outcome,
        &format!("guests/{dir_name}"),
    );
    for c in &mut cells {
        c.retries = retries;
    }
    cells
}

/// One start of a guest: its kernel (fetched and verified), then the guest itself.
#[allow(clippy::too_many_arguments)]
fn attempt(
    r: &Run,
    spec: &KernelSpec,
    label: &str,
    dir: &Path,
    kernels: &Mutex<Kernels>,
    accel: &AccelPolicy,
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event) + Sync),
) -> (Option<Kernel>, GuestOutcome) {
    let plan = r.plan;
    on_event(Event::Phase {
        guest: label,
        what: "fetching kernel",
    });
    let kernel = {
        let mut k = kernels.lock().unwrap_or_else(|e| e.into_inner());
        // Another run sharing the cache may be fetching the same .debs: one at a time per
        // series (the tree and images have locks of their own).
        let _series = match spec {
            KernelSpec::Debian(k) => {
                match crate::cache::lock_entry(&plan.cache.join("debs").join(k.label())) {
                    Ok(l) => Some(l),
                    Err(e) => return (None, GuestOutcome::infra(format!("kernel {label}: {e:#}"))),
                }
            }
            KernelSpec::Local { .. } | KernelSpec::Package(_) => None,
        };
        let Kernels { store, lock } = &mut *k;
        let before = lock.clone();
        let kernel = store.ensure(spec, lock);
        if *lock != before {
            if let Err(e) = lock.save(&plan.lock) {
                on_event(Event::GuestNote {
                    guest: label,
                    note: &format!("could not save {}: {e:#}", plan.lock.display()),
                });
            }
        }
        kernel
    };
    let k = match kernel {
        Err(e) => return (None, GuestOutcome::infra(format!("kernel {label}: {e:#}"))),
        Ok(k) => k,
    };
    if let Some(s) = &k.substituted {
        on_event(Event::GuestNote {
            guest: label,
            note: s,
        });
    }
    on_event(Event::Phase {
        guest: label,
        what: "booting",
    });
    let Some(harness) = r.harness.binaries.get(&k.arch) else {
        return (
            Some(k.clone()),
            GuestOutcome::infra(format!("no harness was built for {}", k.arch)),
        );
    };
    let (targets, checks) = plan.for_guest(spec);
    let gp = GuestPlan {
        kernel: &k,
        targets,
        checks,
        profile: plan.profile,
        judge_as: plan.judge_as.clone(),
        swap: r.swap,
        net: r.net,
        harness,
        user_checks: crate::user::for_arch(&plan.user_checks, k.arch),
        cache: &plan.cache,
        dir: dir.to_path_buf(),
        deadlines: plan.deadlines,
        memory_mb: plan.memory_mb,
        kernel_args: plan.kernel_args.clone(),
        stop,
    };
    let outcome = guest::run(&gp, accel, &mut |ev| match ev {
        guest::Event::Record(r) => on_event(Event::Record {
            guest: label,
            record: r,
        }),
        guest::Event::AccelNote(n) => on_event(Event::Note(n)),
    });
    (Some(k), outcome)
}

/// Every format (report.json, report.md, report.html, junit.xml), each written under a
/// temporary name and renamed, so a reader (or a run killed mid-write) never sees half a report.
pub fn write_report(out: &Path, report: &Report) -> anyhow::Result<()> {
    report
        .write_all(out)
        .with_context(|| format!("writing the report into {}", out.display()))
}

/// Exit statuses a script can branch on. When several apply, the highest in this order wins:
/// `INFRA`, `GUEST_DIED`, `CHECK_FAILED`, `OK` (see [`exit_status`]).
pub mod exit {
    /// Every guest finished cleanly and no result is `fail` or `error` (`xfail`, `xpass`,
    /// `skip` and `info` do not fail a run).
    pub const OK: u8 = 0;
    /// A result is `fail` (the kernel contradicts a rule) or `error` (a probe could not finish).
    pub const CHECK_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// zcmatrix could not give the checks the machine they were promised: a kernel could not be
    /// fetched or built, a guest could not be started or never reached the harness, or the
    /// guest's set-up failed (a mount, a module, swap, loopback, the harness itself). Rerun
    /// after fixing the host; the report holds what was measured.
    pub const INFRA: u8 = 3;
    /// A guest timed out or panicked after the harness had started: the kernel (or a probe)
    /// misbehaved mid-run. Results measured before are in the report; console.log says how.
    pub const GUEST_DIED: u8 = 4;
    /// The user stopped the run (SIGINT, SIGTERM): the report holds what was measured, the
    /// unfinished cells say `interrupted`. 128 + SIGINT, as a shell reports it.
    pub const INTERRUPTED: u8 = 130;
}

/// What one cell says about the run. Infrastructure first: a cell we could not set up is not a
/// statement about the kernel. A guest that never sent its hello (no kernel release) never got
/// to run anything, i.e. it could not boot; after it, a timeout or panic is the kernel's (or a
/// probe's) doing, which is news, yet not a verdict of a rule. QEMU ending without a summary or
/// a panic (killed from outside, an error of its own) says nothing about the kernel.
fn cell_exit(c: &Cell) -> u8 {
    use Status::*;
    match c.status {
        Interrupted => exit::INTERRUPTED,
        InfraError | CompletedWithErrors | BootTimeout | QemuExited => exit::INFRA,
        Timeout | CheckTimeout | Panic if c.kernel_release.is_none() => exit::INFRA,
        Timeout | CheckTimeout | Panic => exit::GUEST_DIED,
        Completed if c.any_failed() => exit::CHECK_FAILED,
        Completed => exit::OK,
    }
}

/// The run's exit status: the most severe of its cells' (`INTERRUPTED` > `INFRA` >
/// `GUEST_DIED` > `CHECK_FAILED` > `OK`), so that a stopped run never passes for a finished
/// one, "rerun after fixing the host" is never hidden behind a verdict, and a dead guest never
/// behind a failed check.
pub fn exit_status(report: &Report) -> u8 {
    let severity = |code: &u8| match *code {
        exit::INTERRUPTED => 4,
        exit::INFRA => 3,
        exit::GUEST_DIED => 2,
        exit::CHECK_FAILED => 1,
        _ => 0,
    };
    report
        .cells
        .iter()
        .map(cell_exit)
        .max_by_key(severity)
        .unwrap_or(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcmatrix_protocol::Outcome;
    use zcmatrix_protocol::{CheckResult, Counts, Scope, SCHEMA_VERSION};

    fn result(outcome: Outcome) -> Record {
        Record::Result(CheckResult {
            check: "dio.open".into(),
            variant: None,
            scope: Scope::Kernel,
            fs: None,
            logical_block_size: None,
            outcome,
            observed: "ok".into(),
            expected: "ok".into(),
            evidence: "open(2)".into(),
            detail: String::new(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        })
    }

    fn hello() -> Record {
        Record::Hello {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-47-cloud-amd64".into(),
            cmdline: String::new(),
            mem_total_kb: 1,
            uptime_ms: 1,
            machine: "x86_64".into(),
            page_size: 4096,
            kernel_build: String::new(),
        }
    }

    /// A guest as `vm::guest` would hand it over: its status and the records that arrived.
    /// A completed guest gets a summary matching its results, as the harness sends.
    fn guest(status: Status, mut records: Vec<Record>) -> GuestOutcome {
        if status == Status::Completed {
            let mut counts = Counts::default();
            for r in &records {
                if let Record::Result(c) = r {
                    counts.add(c.outcome);
                }
            }
            records.push(Record::Summary {
                counts,
                duration_ms: 1,
            });
        }
        GuestOutcome {
            status,
            detail: "d".into(),
            accel: None,
            boot_ms: None,
            records,
            raw_lines: Vec::new(),
            splats: Vec::new(),
            notes: Vec::new(),
            may_retry: true,
        }
    }

    fn report(guests: Vec<GuestOutcome>) -> Report {
        let keys = [CellKey {
            fs: "tmpfs".into(),
            logical_block_size: None,
        }];
        let cells = guests
            .iter()
            .flat_map(|g| report::cells_of("6.1", None, &keys, g, "g"))
            .collect();
        Report::new(None, cells)
    }

    #[test]
    fn only_what_the_host_did_is_retried() {
        use Status::*;
        for s in [InfraError, BootTimeout, QemuExited] {
            assert!(retryable(s), "{s:?}");
        }
        for s in [
            Completed,
            CompletedWithErrors,
            Timeout,
            CheckTimeout,
            Panic,
            Interrupted,
        ] {
            assert!(!retryable(s), "{s:?}");
        }
    }

    #[test]
    fn exit_status_follows_the_worst_cell() {
        use Status::*;
        let swap = Record::Error {
            message: "swap: no disk".into(),
        };
        let module = Record::Module {
            name: "xfs".into(),
            ok: false,
            detail: "ENOEXEC".into(),
        };
        let clean = || guest(Completed, vec![hello(), result(Outcome::Pass)]);
        let failed = || guest(Completed, vec![hello(), result(Outcome::Fail)]);
        let cases: Vec<(&str, Vec<GuestOutcome>, u8)> = vec![
            ("completed, all pass", vec![clean()], exit::OK),
            (
                "hazards, news, measurements and skips do not fail a run",
                vec![guest(
                    Completed,
                    [Outcome::Xfail, Outcome::Xpass, Outcome::Info, Outcome::Skip]
                        .map(result)
                        .into_iter()
                        .chain([hello()])
                        .collect(),
                )],
                exit::OK,
            ),
            ("a fail", vec![failed()], exit::CHECK_FAILED),
            (
                "an error",
                vec![guest(Completed, vec![hello(), result(Outcome::Error)])],
                exit::CHECK_FAILED,
            ),
            (
                "completed with a harness error (swap)",
                vec![guest(Completed, vec![hello(), swap, result(Outcome::Pass)])],
                exit::INFRA,
            ),
            (
                "completed with a module that did not load",
                vec![guest(
                    Completed,
                    vec![hello(), module, result(Outcome::Pass)],
                )],
                exit::INFRA,
            ),
            (
                "timeout after the harness started",
                vec![guest(Timeout, vec![hello(), result(Outcome::Pass)])],
                exit::GUEST_DIED,
            ),
            (
                "panic after the harness started",
                vec![guest(Panic, vec![hello()])],
                exit::GUEST_DIED,
            ),
            (
                "timeout before the harness started: could not boot",
                vec![guest(Timeout, vec![])],
                exit::INFRA,
            ),
            (
                "panic before the harness started: could not boot",
                vec![guest(Panic, vec![])],
                exit::INFRA,
            ),
            (
                "infrastructure",
                vec![GuestOutcome::infra("no kernel".into())],
                exit::INFRA,
            ),
            (
                "a dead guest outranks a failed check",
                vec![failed(), guest(Panic, vec![hello()])],
                exit::GUEST_DIED,
            ),
            (
                "no record within the boot deadline: could not boot",
                vec![guest(BootTimeout, vec![])],
                exit::INFRA,
            ),
            (
                "a check that never finished after the harness started",
                vec![guest(CheckTimeout, vec![hello(), result(Outcome::Pass)])],
                exit::GUEST_DIED,
            ),
            (
                "QEMU killed from outside mid-run is no news about the kernel",
                vec![guest(QemuExited, vec![hello(), result(Outcome::Pass)])],
                exit::INFRA,
            ),
            (
                "a stopped run outranks everything",
                vec![
                    failed(),
                    GuestOutcome::infra("x".into()),
                    guest(Interrupted, vec![hello()]),
                    GuestOutcome::interrupted(),
                ],
                exit::INTERRUPTED,
            ),
            (
                "infrastructure outranks a dead guest",
                vec![
                    guest(Timeout, vec![hello()]),
                    GuestOutcome::infra("x".into()),
                    clean(),
                ],
                exit::INFRA,
            ),
        ];
        for (what, guests, code) in cases {
            assert_eq!(exit_status(&report(guests)), code, "{what}");
        }
    }
}
