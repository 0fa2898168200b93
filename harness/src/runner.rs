//! Selects checks, runs each probe in a forked child with a deadline, judges the observation
//! against the rule and emits the record. Probes may fault, hang or panic; the runner (PID 1 in a
//! guest) must survive all three.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};
use zcmatrix_protocol::catalogue::{self, Placement};
use zcmatrix_protocol::{CheckResult, Counts, CpuAccel, Outcome, Profile, Record, Scope};

use crate::checks::{self, Check, Ctx, Observation, Stop, Where};
use crate::kver::KernelVersion;
use crate::sys;

/// How long one probe may take before it is killed and reported as an error.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// The checks of `profile` matching any of `filters` (all of them when there are none), as
/// [`catalogue::select`] decides for every layer.
pub fn select(filters: &[String], profile: Profile) -> anyhow::Result<Vec<&'static Check>> {
    let all: Vec<&'static Check> = checks::all();
    let chosen = catalogue::select(&checks::catalogue(), filters, profile)?;
    Ok(chosen.into_iter().map(|i| all[i]).collect())
}

/// Those of `checks` that run at `placement` ([`CheckInfo::runs_at`](catalogue::CheckInfo::runs_at)).
pub fn placed(checks: &[&'static Check], placement: &Placement) -> Vec<&'static Check> {
    checks
        .iter()
        .copied()
        .filter(|c| c.info().runs_at(placement))
        .collect()
}

/// A filesystem (or, for kernel scope, a scratch directory) that checks run on.
#[derive(Debug, Clone)]
pub struct Target {
    pub fs: Option<String>,
    pub logical_block_size: Option<u32>,
    pub dir: PathBuf,
    pub device: Option<PathBuf>,
    /// True in a guest: probes may change machine-wide settings (THP sizes); never on a host.
    pub owns_machine: bool,
    /// Every filesystem target mounted alongside, as (filesystem, directory): see [`Ctx::mounts`].
    pub mounts: Vec<(String, PathBuf)>,
    pub profile: Profile,
}

/// Outcome counts of a run so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally(pub Counts);

impl Tally {
    pub fn summary(&self, duration: Duration) -> Record {
        Record::Summary {
            counts: self.0,
            duration_ms: duration.as_millis() as u64,
        }
    }
}

/// Runs every check of `scope` among `checks` on `target`, handing each record to `emit`.
pub fn run_scope(
    checks: &[&'static Check],
    scope: Scope,
    kernel: KernelVersion,
    target: &Target,
    tally: &mut Tally,
    emit: &mut dyn FnMut(&Record),
) {
    let here = Placement {
        scope,
        fs: target.fs.as_deref(),
        profile: target.profile,
        page_size: Some(sys::page_size() as u32),
        only_block_size: false,
    };
    for check in placed(checks, &here) {
        let ctx = ctx_of(check, kernel, target);
        let result = run_check(check, &ctx, PROBE_DEADLINE);
        tally.0.add(result.outcome);
        if let Some(e) = infra_error(&result) {
            emit(&e);
        }
        emit(&Record::Result(result));
    }
}

/// What a check's probe sees of `target`.
pub fn ctx_of(check: &Check, kernel: KernelVersion, target: &Target) -> Ctx {
    Ctx {
        kernel,
        dir: target.dir.clone(),
        fs: target.fs.clone(),
        logical_block_size: target.logical_block_size,
        device: target.device.clone(),
        owns_machine: target.owns_machine,
        variant: check.variant,
        mounts: target.mounts.clone(),
        profile: target.profile,
    }
}

/// One check, start to end: its settings applied, its probe forked with `deadline`, its answer
/// judged, its settings restored.
pub fn run_check(check: &Check, ctx: &Ctx, deadline: Duration) -> CheckResult {
    let started = Instant::now();
    let answer = with_settings(check, ctx, || isolated(check, ctx, deadline));
    judge(check, ctx, answer, started.elapsed())
}

/// A probe's answer as it crosses the fork: an observation, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Saw(Observation),
    Skip(String),
    Broken(String),
    Infra(String),
}

impl From<Result<Observation, Stop>> for Answer {
    fn from(r: Result<Observation, Stop>) -> Self {
        match r {
            Ok(o) => Answer::Saw(o),
            Err(Stop::Skip(why)) => Answer::Skip(why),
            Err(Stop::Broken(e)) => Answer::Broken(format!("{e:#}")),
            Err(Stop::Infra(why)) => Answer::Infra(why),
        }
    }
}

/// The series whose rules judge this run's observations instead of the running kernel's
/// (`--judge-as`), set once before any check runs; probes still see the real kernel.
static JUDGE_AS: std::sync::OnceLock<KernelVersion> = std::sync::OnceLock::new();

/// Judges every later result by the rules of `series` (`7.2`, `5.10.160`): for studying a
/// kernel against another's expectations. An error when it is not a version or is set twice.
pub fn judge_as(series: &str) -> anyhow::Result<KernelVersion> {
    let v = parse_series(series)?;
    JUDGE_AS
        .set(v)
        .map_err(|_| anyhow::anyhow!("--judge-as is set once per run"))?;
    Ok(v)
}

/// `X.Y` or `X.Y.Z`, nothing else.
pub fn parse_series(series: &str) -> anyhow::Result<KernelVersion> {
    zcmatrix_protocol::is_kernel_series(series)
        .then(|| KernelVersion::parse(series))
        .flatten()
        .ok_or_else(|| anyhow::anyhow!(zcmatrix_protocol::not_a_series(series)))
}

/// How this machine's CPU runs, as the guest's manifest says (unset natively: real hardware).
static ACCEL: OnceLock<Option<CpuAccel>> = OnceLock::new();

/// Records the guest's acceleration, once, before any check runs.
pub fn set_accel(accel: Option<CpuAccel>) {
    let _ = ACCEL.set(accel);
}

/// A verdict on a timing under TCG becomes `info`: every instruction is emulated there, so even
/// a ratio of two timings says more about the emulator than the kernel. The cost family's
/// premise is judged under KVM and natively.
fn unjudged_timing(check: &Check, outcome: Outcome, accel: Option<CpuAccel>) -> Option<String> {
    let judged = !matches!(outcome, Outcome::Info | Outcome::Skip | Outcome::Error);
    (judged && check.family() == "cost" && accel == Some(CpuAccel::Tcg)).then(|| {
        "not judged: this guest runs under TCG (full emulation), where timings say more about \
         the emulator than the kernel; under KVM or natively the rule is"
            .to_string()
    })
}

/// How the detail of a check cut short by zcmatrix's own failure begins ([`Stop::Infra`]).
const INFRA: &str =
    "not run to the end: zcmatrix's machinery failed (a guest error of this cell): ";

/// The guest error a result carries, when zcmatrix's own machinery cut its check short.
pub fn infra_error(r: &CheckResult) -> Option<Record> {
    let why = r.detail.strip_prefix(INFRA)?;
    let id = match &r.variant {
        Some(v) => format!("{}[{v}]", r.check),
        None => r.check.clone(),
    };
    Some(Record::Error {
        message: format!("{why} (in {id})"),
    })
}

/// Compares an answer with the check's rule. The only place an outcome is decided.
pub fn judge(check: &Check, ctx: &Ctx, answer: Answer, took: Duration) -> CheckResult {
    let judged_as = JUDGE_AS.get().copied();
    let on = Where {
        kernel: judged_as.unwrap_or(ctx.kernel),
        fs: ctx.fs.as_deref(),
        logical_block_size: ctx.logical_block_size,
        page_size: crate::sys::page_size() as u32,
    };
    let (outcome, observed, expected, detail, measures) = match answer {
        Answer::Saw(Observation {
            value,
            detail,
            unjudged: None,
            measures,
        }) => {
            let v = check.rule.judge(&on, &value);
            let accel = ACCEL.get().copied().flatten();
            match unjudged_timing(check, v.outcome, accel) {
                Some(why) => (
                    Outcome::Info,
                    value,
                    format!("{why} {}", v.expected),
                    detail,
                    measures,
                ),
                None => (v.outcome, value, v.expected, detail, measures),
            }
        }
        // Environment limits are not kernel facts: shown, with why no verdict was given.
        Answer::Saw(Observation {
            value,
            detail,
            unjudged: Some(why),
            measures,
        }) => {
            let expected = format!("{} (not judged: {why})", check.rule.expectation(&on));
            (Outcome::Info, value, expected, detail, measures)
        }
        Answer::Skip(reason) => (
            Outcome::Skip,
            "skipped".into(),
            String::new(),
            reason,
            Vec::new(),
        ),
        Answer::Broken(e) => (Outcome::Error, "error".into(), String::new(), e, Vec::new()),
        Answer::Infra(why) => (
            Outcome::Skip,
            "skipped".into(),
            String::new(),
            format!("{INFRA}{why}"),
            Vec::new(),
        ),
    };
    let expected = if expected.is_empty() {
        // Not judged, but the reader still learns what the rule would have expected here,
        // hazard included.
        check.rule.expectation(&on)
    } else {
        expected
    };
    let expected = match judged_as {
        Some(v) => format!("{expected} (the rule of {v}, --judge-as)"),
        None => expected,
    };
    CheckResult {
        check: check.id.to_string(),
        variant: check.variant.map(str::to_string),
        scope: check.scope,
        fs: ctx.fs.clone(),
        logical_block_size: ctx.logical_block_size,
        outcome,
        observed,
        expected,
        evidence: check.rule.evidence.to_string(),
        detail,
        duration_ms: took.as_millis() as u64,
        tolerance: Some(check.rule.tolerance),
        measures,
    }
}

/// Applies the check's machine-wide settings, runs `f`, and restores them: in the parent, so a
/// probe killed at its deadline cannot leave the machine changed. A setting that cannot be
/// applied is a skip naming it; settings are never touched outside a guest.
fn with_settings(check: &Check, ctx: &Ctx, f: impl FnOnce() -> Answer) -> Answer {
    if check.settings.is_empty() {
        return f();
    }
    if !ctx.owns_machine {
        return Answer::Skip(format!(
            "needs machine-wide settings ({}): guest only",
            check
                .settings
                .iter()
                .map(|s| s.path)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut saved = Vec::new();
    let mut refused = None;
    for s in check.settings {
        let old = match std::fs::read_to_string(s.path) {
            Ok(v) => v,
            Err(e) if s.if_present && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                refused = Some(format!(
                    "{} ({}): {}",
                    s.why,
                    s.path,
                    sys::io_error_name(&e)
                ));
                break;
            }
        };
        if let Err(e) = std::fs::write(s.path, s.value) {
            refused = Some(format!(
                "{}: writing {:?} to {}: {}",
                s.why,
                s.value,
                s.path,
                sys::io_error_name(&e)
            ));
            break;
        }
        saved.push((s.path, selected_value(&old)));
    }
    let answer = match refused {
        Some(why) => Answer::Skip(why),
        None => f(),
    };
    for (path, old) in saved.into_iter().rev() {
        if let Err(e) = std::fs::write(path, &old) {
            return Answer::Broken(format!(
                "could not restore {path} to {old:?} ({}); the result that follows is not \
                 trustworthy: {answer:?}",
                sys::io_error_name(&e)
            ));
        }
    }
    answer
}

/// The value to write back: sysfs choice files read as `always [madvise] never`, and take the
/// bracketed word; plain files read as their value.
fn selected_value(read: &str) -> String {
    match (read.find('['), read.find(']')) {
        (Some(a), Some(b)) if a < b => read[a + 1..b].to_string(),
        _ => read.trim().to_string(),
    }
}

/// Runs the probe in a forked child so that a fault, a hang or a panic costs one result, not the
/// run. The child sends its observation back as JSON over a pipe.
fn isolated(check: &Check, ctx: &Ctx, deadline: Duration) -> Answer {
    match fork_probe(check, ctx, deadline) {
        Ok(a) => a,
        Err(e) => Answer::Broken(e),
    }
}

fn fork_probe(check: &Check, ctx: &Ctx, deadline: Duration) -> Result<Answer, String> {
    let (rx, tx) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the harness forks with no other thread running code (PID 1 in a guest, the native
    // CLI, or a test binary whose one test waits in the runner), so no lock another thread held
    // is left taken in the child, which may allocate and run ordinary Rust code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(rx);
            let out = std::panic::catch_unwind(|| Answer::from((check.probe)(ctx)))
                .unwrap_or_else(|p| Answer::Broken(panic_text(&p)));
            let bytes = serde_json::to_vec(&out).unwrap_or_default();
            let mut f = std::fs::File::from(tx);
            let _ = std::io::Write::write_all(&mut f, &bytes);
            drop(f);
            // SAFETY: _exit skips atexit handlers and destructors that belong to the parent.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let got = read_with_deadline(rx, deadline);
            if got.is_none() {
                let _ = kill(child, Signal::SIGKILL);
            }
            let status = waitpid(child, None);
            match (got, status) {
                (None, _) => Err(format!(
                    "probe did not finish within {}s",
                    deadline.as_secs()
                )),
                (Some(bytes), _) if !bytes.is_empty() => serde_json::from_slice::<Answer>(&bytes)
                    .map_err(|e| format!("unreadable probe answer: {e}")),
                (Some(_), Ok(WaitStatus::Signaled(_, sig, _))) => {
                    Err(format!("probe died from {sig:?}"))
                }
                (Some(_), st) => Err(format!("probe exited without an answer: {st:?}")),
            }
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into());
    format!("probe panicked: {msg}")
}

/// Reads `fd` to EOF, or gives up at the deadline (`None`).
fn read_with_deadline(fd: OwnedFd, deadline: Duration) -> Option<Vec<u8>> {
    let end = Instant::now() + deadline;
    let mut file = std::fs::File::from(fd);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Some(out);
        }
        if r == 0 {
            continue;
        }
        match file.read(&mut chunk) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_selects_everything_of_the_profile() {
        assert_eq!(
            select(&[], Profile::Full).unwrap().len(),
            checks::all().len()
        );
        let quick = select(&[], Profile::Quick).unwrap();
        assert!(quick.len() < checks::all().len());
        assert!(quick.iter().all(|c| c.profile == Profile::Quick));
    }

    #[test]
    fn the_quick_profile_keeps_one_mthp_size() {
        let cow = |p| select(&["cow.fork_basic[*]".to_string()], p).unwrap();
        let mthp = |cs: Vec<&Check>| -> Vec<String> {
            cs.iter()
                .filter_map(|c| c.variant)
                .filter(|v| v.ends_with("k") && !v.starts_with("hugetlb"))
                .map(|v| v.rsplit('_').next().unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        assert_eq!(mthp(cow(Profile::Quick)), ["64k"]);
        assert_eq!(mthp(cow(Profile::Full)).len(), 7);
        // The PMD-size THP, base pages and hugetlb stay in quick.
        let quick: Vec<_> = cow(Profile::Quick)
            .iter()
            .filter_map(|c| c.variant)
            .collect();
        for v in ["base", "thp", "swapped_thp", "hugetlb_2m"] {
            assert!(quick.contains(&v), "{v} missing from quick: {quick:?}");
        }
    }

    #[test]
    fn a_check_cut_short_by_the_nic_path_is_a_skip_and_a_guest_error() {
        let check = checks::all()
            .into_iter()
            .find(|c| c.family() == "net")
            .unwrap();
        let ctx = ctx_of(
            check,
            crate::kver::KernelVersion::new(7, 2, 0),
            &Target {
                fs: None,
                logical_block_size: None,
                dir: PathBuf::from("/tmp"),
                device: None,
                owns_machine: false,
                mounts: vec![],
                profile: Profile::Quick,
            },
        );
        let why = "the host end could not be reached at 10.0.2.100:7000: timed out";
        let r = judge(check, &ctx, Answer::Infra(why.into()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Skip);
        let Some(Record::Error { message }) = infra_error(&r) else {
            panic!("no guest error for {r:?}")
        };
        assert!(message.starts_with(why), "{message}");
        assert!(message.contains(check.id), "{message}");
        let broken = judge(check, &ctx, Answer::Broken("EIO".into()), Duration::ZERO);
        assert_eq!(broken.outcome, Outcome::Error);
        assert!(infra_error(&broken).is_none());
    }

    #[test]
    fn cost_verdicts_are_info_under_tcg_only() {
        let all = checks::all();
        let cost = all.iter().find(|c| c.family() == "cost").unwrap();
        let dio = all.iter().find(|c| c.family() == "dio").unwrap();
        let tcg = Some(CpuAccel::Tcg);
        assert!(unjudged_timing(cost, Outcome::Fail, tcg).is_some());
        assert!(unjudged_timing(cost, Outcome::Pass, tcg).is_some());
        assert!(unjudged_timing(cost, Outcome::Fail, Some(CpuAccel::Kvm)).is_none());
        assert!(unjudged_timing(cost, Outcome::Fail, None).is_none());
        assert!(unjudged_timing(cost, Outcome::Error, tcg).is_none());
        assert!(unjudged_timing(dio, Outcome::Fail, tcg).is_none());
    }

    #[test]
    fn a_filter_of_full_profile_checks_only_says_so() {
        let Err(e) = select(&["cow.fork_basic[pte_thp_16k]".to_string()], Profile::Quick) else {
            panic!("a full-profile check ran in quick")
        };
        let e = e.to_string();
        assert!(e.contains("--profile full"), "{e}");
        assert_eq!(
            select(&["cow.fork_basic[pte_thp_16k]".to_string()], Profile::Full)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn family_glob_selects_only_that_family() {
        let got = select(&["dio.*".to_string()], Profile::Quick).unwrap();
        assert!(!got.is_empty());
        assert!(got.iter().all(|c| c.id.starts_with("dio.")));
    }

    #[test]
    fn filter_matching_nothing_is_an_error_naming_the_choices() {
        let Err(err) = select(&["nope.*".to_string()], Profile::Full) else {
            panic!("a filter matching nothing was accepted")
        };
        let err = err.to_string();
        assert!(err.contains("nope.*") && err.contains("dio, mmap"), "{err}");
    }
}
