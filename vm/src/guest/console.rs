//! How a guest's end is read: its console (panics, splats, the check it hung in) and its
//! exit, into a [`Status`] and the words that explain it.

use zcmatrix_protocol::{Record, CONSOLE_CHECK_START};

use super::{Splat, Status};
use crate::qemu::{Deadlines, Exit};

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
    use std::time::Duration;
    use zcmatrix_protocol::SCHEMA_VERSION;

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
