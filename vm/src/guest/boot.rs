//! Starting a guest and following it: the accelerator of each attempt (a KVM trial that stays
//! silent is restarted under TCG), the deadlines, the host end of its network, the records as
//! they arrive.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use zcmatrix_protocol::Record;

use super::console::{classify, splats};
use super::{AccelPolicy, Event, GuestOutcome, GuestPlan};
use crate::netsink::NetSink;
use crate::qemu::{self, Accel, Deadlines, GuestSpec};
use crate::stream::{Follower, Item};

/// What the host end of the guest's network saw, one transfer a line, next to console.log.
pub const NET_LOG: &str = "net.log";

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

pub(super) fn boot(
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
        may_retry: true,
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
}
