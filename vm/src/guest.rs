//! One guest from start to finish: modules → initramfs → disks → QEMU → records → a status.
//! Whatever happens to the guest, every record it streamed is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use zcmatrix_protocol::{FsTarget, Manifest, Profile, Record, CONSOLE_CHECK_START, SCHEMA_VERSION};

use crate::disk;
use crate::initramfs::{self, ModuleFile};
use crate::kernel::Kernel;
use crate::modules::ModuleIndex;
use crate::netsink::NetSink;
use crate::qemu::{self, Accel, Deadlines, DiskSpec, Exit, GuestSpec};
use crate::stream::{Follower, Item};

/// How a guest (and so each of its cells) ended; defined with the report model, which the
/// harness's native mode shares without depending on this crate.
pub use zcmatrix_report::Status;

/// Something the kernel printed that says it is unwell, even if the guest went on; defined with
/// the report model.
pub use zcmatrix_report::Splat;

/// The console lines that open a splat, most specific first.
const SPLATS: &[(&str, &str)] = &[
    ("soft_lockup", "BUG: soft lockup"),
    ("lockdep", "possible circular locking dependency"),
    ("lockdep", "possible recursive locking detected"),
    ("lockdep", "inconsistent lock state"),
    ("lockdep", "suspicious RCU usage"),
    ("kasan", "KASAN:"),
    ("ubsan", "UBSAN:"),
    ("rcu_stall", "rcu: INFO:"),
    ("hung_task", "INFO: task "),
    ("bug", "BUG:"),
    ("warning", "WARNING:"),
];

/// Lines of context kept after the line that opens a splat.
const SPLAT_LINES: usize = 5;
/// Splats kept per guest: the first ones say what went wrong; a storm adds nothing.
const MAX_SPLATS: usize = 10;

/// The kind of splat a console line opens, if any.
fn splat_kind(l: &str) -> Option<&'static str> {
    // The harness's own lines quote check names and errors, never the kernel's words.
    if l.starts_with("zcmatrix:") {
        return None;
    }
    SPLATS
        .iter()
        .find(|(kind, pat)| {
            l.contains(pat)
                && match *kind {
                    "rcu_stall" => l.contains("stall"),
                    "hung_task" => l.contains("blocked for more than"),
                    _ => true,
                }
        })
        .map(|(kind, _)| *kind)
}

/// Every splat on a guest's console, in order, each with the lines after it up to the next one.
pub fn splats(console: &str) -> Vec<Splat> {
    let lines: Vec<&str> = console.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() && out.len() < MAX_SPLATS {
        let Some(kind) = splat_kind(lines[i]) else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        while end < lines.len() && end <= i + SPLAT_LINES && splat_kind(lines[end]).is_none() {
            end += 1;
        }
        out.push(Splat {
            kind: kind.to_string(),
            excerpt: lines[i..end]
                .iter()
                .map(|l| l.trim_end())
                .collect::<Vec<_>>()
                .join("\n"),
        });
        i = end;
    }
    out
}

/// The acceleration policy lives in [`crate::accel`]; its names stay reachable from here.
pub use crate::accel::{AccelChoice, AccelPolicy};

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

/// What the host end of the guest's network saw, one transfer a line, next to console.log.
pub const NET_LOG: &str = "net.log";

/// Kernel modules a guest with disks needs for them.
const DISK_MODULES: &[&str] = &["virtio_pci", "virtio_blk"];

/// The network device of a guest's path to the host end.
const NET_MODULES: &[&str] = &["virtio_pci", "virtio_net"];

/// Kernel TLS (`tls`, CONFIG_TLS, which Debian's 5.10 cloud kernel leaves out), loaded where the
/// kernel has it (its check skips, saying so, where it does not), with the AES-GCM its TLS_TX
/// instantiates (`gcm(aes)`: gcm with ctr and ghash, those of them that are modules; the
/// generic aes is built in, and the AES-NI one is left out, since it refuses to load on a CPU
/// without AES-NI). The guest has no modprobe to load them on demand: the kernel's
/// request_module would fail and TLS_TX answer ENOENT.
const TLS_MODULES: &[&str] = &["tls", "gcm", "ctr", "ghash_generic"];

/// Resolves modules for the targets (the swap disk, with `swap`; the network, with `net`) and
/// returns them uncompressed, in load order, with the optional ones asked for and not found
/// (kernel TLS where the kernel has none), which the manifest names. A guest with no disk loads no disk driver, one with
/// no network check no network modules: under TCG each module costs boot time. A target the
/// kernel's modules cannot hold (an overlay or a DAX target on a kernel built without them) is
/// marked unavailable, with the reason, and the rest of the guest goes on; a plain disk
/// filesystem whose module is missing fails the guest.
fn modules_for(
    kernel: &Kernel,
    targets: &mut [FsTarget],
    swap: bool,
    net: bool,
) -> anyhow::Result<(Vec<ModuleFile>, Vec<String>)> {
    let Some(tree) = &kernel.modules else {
        return Ok((Vec::new(), Vec::new()));
    };
    let ix = ModuleIndex::load(tree).with_context(|| format!("indexing {}", tree.display()))?;
    let config = kernel.config_text();
    let mut wanted = wanted_modules(&ix, targets, swap, kernel.arch, config.as_deref());
    let mut missing = Vec::new();
    if net {
        wanted.extend(NET_MODULES);
        let (tls, absent) = optional_modules(&ix, TLS_MODULES);
        wanted.extend(tls);
        missing.extend(absent);
    }
    if wanted.is_empty() {
        return Ok((Vec::new(), missing));
    }
    let order = ix.load_order(&wanted)?;
    let files = order
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
        .collect::<anyhow::Result<_>>()?;
    Ok((files, missing))
}

/// A group of optional modules whose first is the feature (`tls`) and the rest what it uses:
/// those of them the kernel has (as a module or built in) when it has the first, and those it
/// was asked for and lacks.
fn optional_modules(
    ix: &ModuleIndex,
    group: &'static [&'static str],
) -> (Vec<&'static str>, Vec<String>) {
    let has = |m: &str| ix.modules.contains_key(m) || ix.builtin.contains(m);
    if !has(group[0]) {
        return (Vec::new(), vec![group[0].to_string()]);
    }
    let (present, absent): (Vec<&str>, Vec<&str>) = group.iter().partition(|m| has(m));
    (present, absent.into_iter().map(str::to_string).collect())
}

/// The modules to load for `targets` on a kernel of `arch` built with `config`, with the disk
/// drivers when there is a disk (the swap disk with `swap`); an overlay or DAX target this
/// kernel cannot hold (its config or its modules lack what it needs) is marked unavailable
/// instead.
fn wanted_modules<'t>(
    ix: &ModuleIndex,
    targets: &'t mut [FsTarget],
    swap: bool,
    arch: crate::arch::Arch,
    config: Option<&str>,
) -> Vec<&'t str> {
    let mut wanted: Vec<&str> = Vec::new();
    let mut disks = swap;
    for t in targets.iter_mut() {
        if let Some(why) = crate::pmem::unavailable(&t.fs, arch, config) {
            t.unavailable = Some(why);
            continue;
        }
        let optional = matches!(
            disk::backing(&t.fs),
            disk::Backing::Overlay | disk::Backing::Pmem
        );
        // `None` only for a DAX target on an architecture without a region, ruled out above.
        let modules = disk::target_modules(&t.fs, arch).unwrap_or_default();
        if optional {
            if let Err(e) = ix.load_order(&modules) {
                t.unavailable = Some(format!("{e}: this kernel cannot hold a {} target", t.fs));
                continue;
            }
        }
        disks |= disk::needs_disk(&t.fs);
        wanted.extend(modules);
    }
    if disks {
        wanted.splice(0..0, DISK_MODULES.iter().copied());
    }
    wanted
}

/// Prepares and boots one guest. Errors before QEMU starts come back as `InfraError`.
/// What a caller hears while a guest runs.
pub enum Event<'a> {
    Record(&'a Record),
    /// Said once for the run: KVM was given up (see [`crate::accel`]).
    AccelNote(&'a str),
}

/// Appends the host end's own log to each guest error saying it could not be reached, so the
/// report tells the NIC path's failure (no connection ever arrived, or the last ones did) from
/// the kernel's.
fn quote_host_end(records: &mut [Record], log: &str) {
    let quoted = if log.is_empty() {
        "no transfer reached it".to_string()
    } else {
        let lines: Vec<&str> = log.lines().collect();
        let last = &lines[lines.len().saturating_sub(5)..];
        format!(
            "{} transfer(s), the last: {}",
            lines.len(),
            last.join(" | ")
        )
    };
    for r in records {
        if let Record::Error { message } = r {
            if message.starts_with(zcmatrix_protocol::net::HOST_END_UNREACHABLE) {
                message.push_str(&format!("; the host end's log ({NET_LOG}): {quoted}"));
            }
        }
    }
}

pub fn run(plan: &GuestPlan, accel: &AccelPolicy, on_event: &mut dyn FnMut(Event)) -> GuestOutcome {
    match prepare(plan) {
        Ok((spec, missing)) => {
            let mut outcome = boot(plan, spec, accel, on_event);
            outcome.notes = missing_notes(&missing);
            outcome
        }
        Err(e) => GuestOutcome::infra(format!("{e:#}")),
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
    let (modules, missing_modules) = modules_for(plan.kernel, &mut targets, plan.swap, plan.net)?;
    let pmem = pmem_for(plan, &mut targets)?;
    let missing = missing_modules.clone();
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        modules: modules
            .iter()
            .map(|m| initramfs::guest_module_path(&m.name))
            .collect(),
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
        missing_modules,
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
    let initrd = initramfs::build(plan.cache, plan.harness, &modules, &user_files, &manifest)?;
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

/// What the DAX targets of a guest add to it: a RAM file holding their images, the
/// command-line words and device-tree regions that make those ranges persistent memory (see
/// [`crate::pmem::place`]), and the RAM size with them.
struct PmemPlan {
    ram_file: PathBuf,
    cmdline: Vec<String>,
    dt_regions: Vec<crate::pmem::Region>,
    total_mb: u32,
}

/// Places the available DAX targets' images in persistent memory (see [`crate::pmem`]) and
/// tells each target where its region starts.
fn pmem_for(plan: &GuestPlan, targets: &mut [FsTarget]) -> anyhow::Result<Option<PmemPlan>> {
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

fn boot(
    plan: &GuestPlan,
    mut spec: GuestSpec,
    policy: &AccelPolicy,
    on_event: &mut dyn FnMut(Event),
) -> GuestOutcome {
    // KVM runs the host's architecture only; every other guest is emulated.
    let emulated = crate::accel::Start {
        accel: Accel::Tcg,
        on_trial: false,
        paused: false,
    };
    let host = spec.arch == crate::arch::Arch::host();
    // At most two starts: a guest on trial that stays silent either makes the policy TCG or,
    // when another guest proved KVM meanwhile, ends the trial; either way the second start is
    // not on trial.
    for _ in 0..2 {
        let start = if host { policy.start() } else { emulated };
        spec.accel = start.accel;
        spec.paused = start.paused;
        // The guest learns how its CPU runs from its command line, set per attempt: a guest
        // restarted under TCG after a silent KVM attempt must not judge timings as KVM's.
        spec.cmdline = with_accel_word(&spec.cmdline, start.accel);
        // The device tree is the machine's as this accelerator makes it (see crate::dtb).
        spec.dtb = match crate::dtb::for_guest(plan.cache, &spec) {
            Ok(d) => d,
            Err(e) => return GuestOutcome::infra(format!("{e:#}")),
        };
        let trial = start.on_trial.then_some(policy);
        match attempt(plan, &spec, trial, &mut |r| on_event(Event::Record(r))) {
            Ok(Some(outcome)) => return outcome,
            Ok(None) => {
                keep_silent_attempt(&plan.dir);
                if let Some(note) = policy.silent(trial_silence(plan.deadlines), start.paused) {
                    on_event(Event::AccelNote(&note));
                }
            }
            Err(e) => return GuestOutcome::infra(format!("{e:#}")),
        }
    }
    GuestOutcome::infra("KVM was given up, yet the guest was put on trial again".into())
}

/// `cmdline` with its `zcmatrix.accel=` word (see [`zcmatrix_protocol::ACCEL_PARAM`]) saying
/// `accel`, replacing an earlier attempt's.
fn with_accel_word(cmdline: &str, accel: Accel) -> String {
    let word = match accel {
        Accel::Kvm => zcmatrix_protocol::CpuAccel::Kvm,
        Accel::Tcg => zcmatrix_protocol::CpuAccel::Tcg,
    }
    .param();
    cmdline
        .split_whitespace()
        .filter(|w| !w.starts_with(zcmatrix_protocol::ACCEL_PARAM))
        .chain([word.as_str()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long a guest on trial may stay silent: [`crate::accel::KVM_SILENCE`], or less when the
/// boot deadline is shorter (the trial must end before the deadline makes it a `boot_timeout`).
fn trial_silence(d: Deadlines) -> std::time::Duration {
    crate::accel::KVM_SILENCE.min(d.boot.saturating_sub(std::time::Duration::from_millis(200)))
}

/// Files of a silent KVM attempt kept beside the TCG attempt's, under these names.
const SILENT_KVM_LOGS: [(&str, &str); 2] = [
    ("console.log", "kvm-console.log"),
    ("qemu.stderr", "kvm-qemu.stderr"),
];

fn keep_silent_attempt(dir: &Path) {
    for (from, to) in SILENT_KVM_LOGS {
        let _ = fs::rename(dir.join(from), dir.join(to));
    }
}

/// Whether a guest's console shows its kernel running: the banner every kernel prints first
/// (absent only under `quiet`, when the harness's first record is the sign instead). The boot
/// stub's real-mode lines ("Probing EDD") are no sign: a nested KVM that runs no 64-bit kernel
/// prints them.
fn kernel_spoke(console: &Path) -> bool {
    fs::read(console).is_ok_and(|c| c.windows(14).any(|w| w == b"Linux version "))
}

/// Runs one QEMU. `trial`: the guest is on trial under KVM (see [`crate::accel`]); `None` comes
/// back when it showed no sign of life within the trial's silence, or KVM was given up by
/// another guest meanwhile, and was stopped.
fn attempt(
    plan: &GuestPlan,
    spec: &GuestSpec,
    trial: Option<&AccelPolicy>,
    on_record: &mut dyn FnMut(&Record),
) -> anyhow::Result<Option<GuestOutcome>> {
    for f in [&spec.console, &spec.results] {
        fs::write(f, "")?;
    }
    // The host end lives exactly as long as this QEMU: started before it (QEMU connects at
    // start-up), stopped and its socket removed when this function returns, however it returns.
    let sink = plan.net.then(NetSink::start).transpose()?;
    let mut spec = spec.clone();
    spec.net = sink.as_ref().map(|sink| qemu::NetSpec {
        socket: sink.socket(),
        mac: qemu::GUEST_MAC.into(),
        peer: qemu::NET_PEER.into(),
    });
    let spec = &spec;
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
    let deadlines = deadlines_for(spec.arch, plan.deadlines);
    // QEMU is stopped through `halt`: by the run's stop, or by the end of a trial.
    let halt = AtomicBool::new(false);
    let silence = trial_silence(plan.deadlines);
    let mut on_trial = trial;
    let mut silent = false;
    let run = qemu::run(spec, &plan.dir, deadlines, &halt, &mut || {
        take(follower.poll(), &mut records, &mut raw_lines);
        if plan.stop.load(Ordering::SeqCst) {
            halt.store(true, Ordering::SeqCst);
        } else if let Some(policy) = on_trial {
            if !records.is_empty() || kernel_spoke(&spec.console) {
                // A paused guest never gets here; one that speaks under TCG is no proof.
                if spec.accel == Accel::Kvm {
                    policy.spoke();
                }
                on_trial = None;
            } else if policy.proven() && !spec.paused {
                // Another guest has spoken under KVM: this one is slow, not KVM broken.
                on_trial = None;
            } else if started.elapsed() >= silence || policy.gave_up() {
                silent = true;
                halt.store(true, Ordering::SeqCst);
            }
        }
        !records.is_empty()
    })?;
    take(follower.finish(), &mut records, &mut raw_lines);
    if silent && !plan.stop.load(Ordering::SeqCst) {
        return Ok(None);
    }
    if let Some(sink) = sink {
        let _ = sink.write_log(&plan.dir.join(NET_LOG));
        quote_host_end(&mut records, &sink.log_text());
    }
    let console = fs::read_to_string(&spec.console).unwrap_or_default();
    let (status, detail) = classify(&run.exit, &records, &console, &run.stderr, deadlines);
    Ok(Some(GuestOutcome {
        status,
        detail,
        accel: Some(spec.accel),
        boot_ms,
        records,
        raw_lines,
        splats: splats(&console),
        // Set by `run`, which knows what the host could not find.
        notes: Vec::new(),
    }))
}

/// The deadlines of a guest of `arch`: a guest of another architecture than the host's is
/// emulated instruction by instruction (its boot takes two to four times an x86_64 one under
/// TCG, more on a loaded host), so its boot deadline is doubled, within the run deadline.
pub fn deadlines_for(arch: crate::arch::Arch, d: Deadlines) -> Deadlines {
    if arch == crate::arch::Arch::host() {
        return d;
    }
    Deadlines {
        boot: (d.boot * 2).min(d.run),
        run: d.run,
    }
}

/// Whether a console line shows the kernel going down: a panic, or an Oops (which `oops=panic`
/// turns into one). `BUG:` alone is not one: many BUG reports (sleeping in atomic context, soft
/// lockups) let the kernel go on, and are splats.
fn is_panic_line(l: &str) -> bool {
    l.contains("Kernel panic") || l.contains("Oops:") || l.contains("kernel BUG at")
}

/// The check the guest was in when it stopped answering: the harness announces each check on
/// the console before it starts and sends its record when it ends, so an announcement beyond
/// the records that arrived names a check that never finished.
pub fn hung_check(console: &str, records: &[Record]) -> Option<String> {
    let started: Vec<&str> = console
        .lines()
        .filter_map(|l| {
            l.find(CONSOLE_CHECK_START)
                .map(|at| l[at + CONSOLE_CHECK_START.len()..].trim())
        })
        .collect();
    let finished = records
        .iter()
        .filter(|r| matches!(r, Record::Result(_)))
        .count();
    (started.len() > finished)
        .then(|| started.last().map(|s| s.to_string()))
        .flatten()
}

/// Decides what happened to a guest from its exit, its records and its console.
pub fn classify(
    exit: &Exit,
    records: &[Record],
    console: &str,
    qemu_stderr: &str,
    deadlines: Deadlines,
) -> (Status, String) {
    let summary = records.iter().any(|r| matches!(r, Record::Summary { .. }));
    let harness_error = records.iter().find_map(|r| match r {
        Record::Error { message } => Some(message.clone()),
        _ => None,
    });
    let panic_line = console
        .lines()
        .find(|l| is_panic_line(l))
        .map(|l| l.trim().to_string());
    let results = records
        .iter()
        .filter(|r| matches!(r, Record::Result(_)))
        .count();
    let tail = last_lines(console, 3);
    match exit {
        _ if summary => (Status::Completed, "harness finished".into()),
        _ if panic_line.is_some() => (
            Status::Panic,
            format!("{}; last console lines: {tail}", panic_line.unwrap()),
        ),
        Exit::Interrupted => (
            Status::Interrupted,
            format!("stopped by the user after {results} results; last console lines: {tail}"),
        ),
        Exit::BootTimedOut => (
            Status::BootTimeout,
            format!(
                "no record from the harness within the boot deadline of {}s; last console \
                 lines: {tail}",
                deadlines.boot.as_secs()
            ),
        ),
        Exit::TimedOut => match hung_check(console, records) {
            Some(check) => (
                Status::CheckTimeout,
                format!(
                    "{check} did not finish: killed at the run deadline of {}s after {results} \
                     results; last console lines: {tail}",
                    deadlines.run.as_secs()
                ),
            ),
            None => (
                Status::Timeout,
                format!(
                    "killed after {}s; last console lines: {tail}",
                    deadlines.run.as_secs()
                ),
            ),
        },
        // The harness gave up on its own (no manifest, a panic outside any probe, which run in
        // forked children): that is zcmatrix failing, not the kernel, so it is infrastructure.
        Exit::Exited(_) | Exit::Signalled(_) if harness_error.is_some() => (
            Status::InfraError,
            format!("the harness gave up: {}", harness_error.unwrap()),
        ),
        Exit::Exited(code) if records.is_empty() && console.is_empty() => (
            Status::InfraError,
            format!(
                "QEMU exited (status {code}) before the guest started: {}",
                qemu_stderr.lines().next().unwrap_or("").trim()
            ),
        ),
        Exit::Exited(code) => (
            Status::QemuExited,
            format!(
                "QEMU exited with status {code} without a summary, after {results} results; \
                 last console lines: {tail}"
            ),
        ),
        Exit::Signalled(sig) => (
            Status::QemuExited,
            format!(
                "QEMU was killed by signal {sig} ({}) without a summary, after {results} \
                 results; last console lines: {tail}",
                signal_name(*sig)
            ),
        ),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGHUP => "SIGHUP",
        _ => "another signal",
    }
}

/// The last `n` non-empty console lines, joined with " | " ("(none)" for a silent console).
fn last_lines(s: &str, n: usize) -> String {
    let mut v: Vec<&str> = s
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(n)
        .collect();
    if v.is_empty() {
        return "(none)".into();
    }
    v.reverse();
    v.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_host_end_is_quoted_with_its_log() {
        let unreachable = format!(
            "{}: timed out (in net.x)",
            zcmatrix_protocol::net::HOST_END_UNREACHABLE
        );
        let mut records = vec![
            Record::Error {
                message: unreachable.clone(),
            },
            Record::Error {
                message: "mount failed".into(),
            },
        ];
        quote_host_end(&mut records, "sink seed=0x1 len=5 moved=5 verified=true \n");
        let Record::Error { message } = &records[0] else {
            unreachable!()
        };
        assert!(message.starts_with(&unreachable), "{message}");
        assert!(
            message.contains("net.log): 1 transfer(s), the last: sink seed=0x1"),
            "{message}"
        );
        let Record::Error { message } = &records[1] else {
            unreachable!()
        };
        assert_eq!(message, "mount failed");
        quote_host_end(&mut records[..1], "");
        let Record::Error { message } = &records[0] else {
            unreachable!()
        };
        assert!(message.ends_with("no transfer reached it"), "{message}");
    }

    use std::time::Duration;

    #[test]
    fn an_emulated_architecture_gets_twice_the_boot_deadline_within_the_run() {
        use crate::arch::Arch;
        let d = Deadlines {
            boot: Duration::from_secs(30),
            run: Duration::from_secs(300),
        };
        assert_eq!(deadlines_for(Arch::host(), d), d);
        let other = if Arch::host() == Arch::Arm64 {
            Arch::Ppc64le
        } else {
            Arch::Arm64
        };
        assert_eq!(deadlines_for(other, d).boot, Duration::from_secs(60));
        let short = Deadlines {
            boot: Duration::from_secs(30),
            run: Duration::from_secs(40),
        };
        assert_eq!(deadlines_for(other, short).boot, Duration::from_secs(40));
    }

    /// A kernel with ext4 built in, virtio and xfs as modules, and no overlay or pmem modules.
    fn index_without_overlay_or_pmem() -> ModuleIndex {
        let mut ix = ModuleIndex::default();
        for m in ["virtio_pci", "virtio_blk", "xfs"] {
            ix.modules.insert(m.into(), Default::default());
        }
        ix.builtin.insert("ext4".into());
        ix
    }

    /// The host says which modules it asked for and did not find: kernel TLS on a kernel
    /// without it is named (the manifest carries it to the check), and a kernel with it loads
    /// what it has of the cipher.
    #[test]
    fn missing_modules_become_notes_naming_them() {
        let n = missing_notes(&["tls".to_string()]);
        assert_eq!(n.len(), 1);
        assert!(
            n[0].starts_with("module tls: asked for and not found"),
            "{n:?}"
        );
    }

    #[test]
    fn missing_optional_modules_are_named() {
        let mut ix = index_without_overlay_or_pmem();
        assert_eq!(
            optional_modules(&ix, TLS_MODULES),
            (vec![], vec!["tls".to_string()])
        );
        ix.modules.insert("tls".into(), Default::default());
        ix.modules.insert("gcm".into(), Default::default());
        ix.builtin.insert("ctr".into());
        assert_eq!(
            optional_modules(&ix, TLS_MODULES),
            (vec!["tls", "gcm", "ctr"], vec!["ghash_generic".to_string()])
        );
    }

    #[test]
    fn a_target_the_kernel_cannot_hold_is_unavailable_and_the_rest_goes_on() {
        let ix = index_without_overlay_or_pmem();
        let mut targets: Vec<FsTarget> = ["ext4", "overlay", "xfs-dax"]
            .iter()
            .map(|f| FsTarget {
                fs: f.to_string(),
                ..FsTarget::default()
            })
            .collect();
        let wanted: Vec<String> =
            wanted_modules(&ix, &mut targets, false, crate::arch::Arch::X86_64, None)
                .into_iter()
                .map(String::from)
                .collect();
        assert_eq!(wanted, ["virtio_pci", "virtio_blk", "ext4"]);
        assert!(targets[0].unavailable.is_none());
        let why = targets[1].unavailable.as_deref().unwrap();
        assert!(
            why.contains("\"overlay\"") && why.contains("overlay target"),
            "{why}"
        );
        assert!(targets[2]
            .unavailable
            .as_deref()
            .unwrap()
            .contains("nd_e820"));
    }

    /// A DAX target on a kernel whose config has no pmem driver says so, in the config's words,
    /// before any module is looked up; on arm64 it loads the device-tree region's module.
    #[test]
    fn a_dax_target_is_held_or_refused_by_what_the_kernel_is_built_with() {
        use crate::arch::Arch;
        let mut ix = index_without_overlay_or_pmem();
        for m in ["of_pmem", "nd_pmem"] {
            ix.modules.insert(m.into(), Default::default());
        }
        let target = || {
            vec![FsTarget {
                fs: "ext4-dax".into(),
                ..FsTarget::default()
            }]
        };
        let mut t = target();
        let config = "# CONFIG_LIBNVDIMM is not set\nCONFIG_FS_DAX=y\n";
        assert!(wanted_modules(&ix, &mut t, false, Arch::Ppc64le, Some(config)).is_empty());
        assert!(
            t[0].unavailable
                .as_deref()
                .unwrap()
                .starts_with("this kernel is built without CONFIG_LIBNVDIMM"),
            "{t:?}"
        );
        let mut t = target();
        let config = "CONFIG_LIBNVDIMM=m\nCONFIG_OF_PMEM=m\nCONFIG_FS_DAX=y\n";
        let wanted: Vec<String> = wanted_modules(&ix, &mut t, false, Arch::Arm64, Some(config))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(wanted, ["ext4", "of_pmem", "nd_pmem"]);
        assert!(t[0].unavailable.is_none());
    }

    const D: Deadlines = Deadlines {
        boot: Duration::from_secs(10),
        run: Duration::from_secs(60),
    };

    fn summary() -> Record {
        Record::Summary {
            counts: zcmatrix_protocol::Counts::default(),
            duration_ms: 1,
        }
    }

    fn result(check: &str) -> Record {
        Record::Result(zcmatrix_protocol::CheckResult {
            check: check.into(),
            variant: None,
            scope: zcmatrix_protocol::Scope::Kernel,
            fs: None,
            logical_block_size: None,
            outcome: zcmatrix_protocol::Outcome::Pass,
            observed: "ok".into(),
            expected: "ok".into(),
            evidence: "e".into(),
            detail: String::new(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        })
    }

    fn hello() -> Record {
        Record::Hello {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-1-amd64".into(),
            cmdline: String::new(),
            mem_total_kb: 1,
            uptime_ms: 1,
            machine: "x86_64".into(),
            page_size: 4096,
            kernel_build: String::new(),
        }
    }

    #[test]
    fn a_summary_means_completed_whatever_the_exit() {
        for exit in [
            Exit::Exited(0),
            Exit::Signalled(9),
            Exit::TimedOut,
            Exit::Interrupted,
        ] {
            assert_eq!(
                classify(&exit, &[summary()], "Kernel panic", "", D).0,
                Status::Completed
            );
        }
    }

    #[test]
    fn a_kernel_panic_is_found_on_the_console() {
        let (s, d) = classify(
            &Exit::Exited(0),
            &[],
            "boot\n[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n",
            "",
            D,
        );
        assert_eq!(s, Status::Panic);
        assert!(d.contains("Attempted to kill init"));
        // An Oops is a panic under oops=panic; a BUG that lets the kernel go on is not.
        assert_eq!(
            classify(&Exit::Exited(0), &[hello()], "Oops: 0002 [#1]\n", "", D).0,
            Status::Panic
        );
        assert_eq!(
            classify(
                &Exit::Exited(0),
                &[hello()],
                "BUG: sleeping function called from invalid context\n",
                "",
                D
            )
            .0,
            Status::QemuExited
        );
    }

    #[test]
    fn qemu_dying_at_once_is_an_infrastructure_error() {
        let (s, d) = classify(&Exit::Exited(1), &[], "", "failed to set MSR 0x48", D);
        assert_eq!(s, Status::InfraError);
        assert!(d.contains("failed to set MSR"));
    }

    #[test]
    fn qemu_ending_without_a_summary_or_a_panic_says_how_it_ended() {
        let console = "a\nzcmatrix: check dio.open on kernel\n";
        let (s, d) = classify(
            &Exit::Signalled(libc::SIGKILL),
            &[hello(), result("dio.x")],
            console,
            "",
            D,
        );
        assert_eq!(s, Status::QemuExited);
        assert!(
            d.contains("signal 9 (SIGKILL)") && d.contains("after 1 results"),
            "{d}"
        );
        assert!(
            d.contains("zcmatrix: check dio.open"),
            "last console lines: {d}"
        );
        let (s, d) = classify(&Exit::Exited(0), &[hello()], "reboot: Power down\n", "", D);
        assert_eq!(s, Status::QemuExited);
        assert!(d.contains("status 0") && d.contains("Power down"), "{d}");
    }

    #[test]
    fn a_harness_that_gives_up_is_infrastructure_but_a_console_panic_wins() {
        let rec = Record::Error {
            message: "reading /manifest.json".into(),
        };
        let (s, d) = classify(
            &Exit::Exited(0),
            std::slice::from_ref(&rec),
            "boot\n",
            "",
            D,
        );
        assert_eq!(s, Status::InfraError);
        assert!(d.contains("manifest"), "{d}");
        let (s, _) = classify(&Exit::Exited(0), &[rec], "Oops: 0002\n", "", D);
        assert_eq!(s, Status::Panic);
    }

    #[test]
    fn the_run_deadline_names_the_check_that_never_finished() {
        let console = "zcmatrix: check dio.open on kernel\nzcmatrix: check cow.x[thp] on \
                       kernel\n";
        let (s, d) = classify(
            &Exit::TimedOut,
            &[hello(), result("dio.open")],
            console,
            "",
            D,
        );
        assert_eq!(s, Status::CheckTimeout);
        assert!(d.starts_with("cow.x[thp] on kernel did not finish"), "{d}");
        // Every announced check has its record: the harness was between checks.
        let (s, d) = classify(
            &Exit::TimedOut,
            &[hello(), result("dio.open")],
            "zcmatrix: check dio.open on kernel\nzcmatrix: ext4 (lbs Some(512)): mounting\n",
            "",
            D,
        );
        assert_eq!(s, Status::Timeout);
        assert!(d.contains("mounting"), "{d}");
    }

    #[test]
    fn no_record_within_the_boot_deadline_is_a_boot_timeout() {
        let (s, d) = classify(
            &Exit::BootTimedOut,
            &[],
            "Waiting for root device /dev/vdz...\n",
            "",
            D,
        );
        assert_eq!(s, Status::BootTimeout);
        assert!(
            d.contains("10s") && d.contains("Waiting for root device"),
            "{d}"
        );
    }

    #[test]
    fn a_stopped_run_is_interrupted_not_a_panic() {
        let (s, d) = classify(&Exit::Interrupted, &[hello(), result("a")], "x\n", "", D);
        assert_eq!(s, Status::Interrupted);
        assert!(d.contains("after 1 results"), "{d}");
    }

    #[test]
    fn splats_are_found_with_their_context_and_the_harness_lines_are_not() {
        let console = "\
[ 1.0] ok
[ 2.0] WARNING: CPU: 0 PID: 1 at mm/gup.c:123 foo+0x1/0x2
[ 2.1] Modules linked in:
[ 3.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [init:1]
[ 4.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[ 5.0] INFO: task init:1 blocked for more than 120 seconds.
[ 6.0] ==================================================================
[ 6.1] BUG: KASAN: use-after-free in foo
[ 7.0] UBSAN: shift-out-of-bounds in bar.c:1:2
[ 8.0] WARNING: possible circular locking dependency detected
zcmatrix: check splice.warning_path on kernel
[ 9.0] rcu: INFO: something else
";
        let found = splats(console);
        let kinds: Vec<&str> = found.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "warning",
                "soft_lockup",
                "rcu_stall",
                "hung_task",
                "kasan",
                "ubsan",
                "lockdep"
            ],
            "{found:#?}"
        );
        // Context runs up to the next splat: the warning keeps its module list, the hung task
        // the separator line, and the last one stops at its limit.
        assert_eq!(
            found[0].excerpt,
            "[ 2.0] WARNING: CPU: 0 PID: 1 at mm/gup.c:123 foo+0x1/0x2\n[ 2.1] Modules linked in:"
        );
        assert!(found[3].excerpt.ends_with("=========="));
        assert!(found[6]
            .excerpt
            .ends_with("[ 9.0] rcu: INFO: something else"));
        assert!(splats("zcmatrix: WARNING: in a check name\n[ 1.0] clean\n").is_empty());
    }
}
