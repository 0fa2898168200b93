//! A user's own checks: a program that prints KTAP (Documentation/dev-tools/ktap.rst), run in a
//! filesystem target's directory after the built-in checks, its results folded into the same
//! stream as the family `user`, with the program's name as the check and each KTAP test as a
//! variant (`user.myprobe[splice_into_pipe]`). The program judges itself: `ok` is a pass,
//! `not ok` a fail, `# SKIP` a skip, `# XFAIL`/`# TODO` a known hazard, `# ERROR`/`# TIMEOUT`
//! an error. What KTAP cannot say is said here: a program that crashes or overruns its deadline
//! is an `error` with what it printed, and a malformed KTAP line is an `error` naming its line.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zcmatrix_protocol::ktap::{self, Test};
use zcmatrix_protocol::{CheckResult, Outcome, Scope, Tolerance, UserCheck};

/// The family of every user check.
pub const FAMILY: &str = "user";

/// What a result says its rule is: the program's own verdict, which zcmatrix only relays.
const EXPECTED: &str = "ok (the program's own verdict)";

/// Runs `check` with `dir` as its working directory and turns its KTAP into results for the
/// target `fs`/`lbs`.
pub fn run(check: &UserCheck, dir: &Path, fs: Option<&str>, lbs: Option<u32>) -> Vec<CheckResult> {
    let started = Instant::now();
    let base = CheckResult {
        check: format!("{FAMILY}.{}", check.name),
        variant: None,
        scope: Scope::Fs,
        fs: fs.map(str::to_string),
        logical_block_size: lbs,
        outcome: Outcome::Error,
        observed: String::new(),
        expected: EXPECTED.into(),
        evidence: format!("{} (user check, KTAP)", check.name),
        detail: String::new(),
        duration_ms: 0,
        // The program's verdicts are facts of the kernel it ran on: any change is a change.
        tolerance: Some(Tolerance::Exact),
        measures: Vec::new(),
    };
    let ran = execute(
        &check.path,
        dir,
        Duration::from_secs(check.timeout_s.into()),
    );
    let ms = started.elapsed().as_millis() as u64;
    let crashed = |observed: String, detail: String| {
        vec![CheckResult {
            observed,
            detail,
            duration_ms: ms,
            ..base.clone()
        }]
    };
    let out = match ran {
        Err(e) => return crashed("did not start".into(), format!("{}: {e}", check.path)),
        Ok(o) => o,
    };
    let tail = console_tail(&out.stdout, &out.stderr);
    if out.timed_out {
        return crashed(
            "timeout".into(),
            format!("killed after {} s; it printed: {tail}", check.timeout_s),
        );
    }
    if let Some(sig) = out.signal {
        return crashed(
            format!("crashed (signal {sig})"),
            format!("it printed: {tail}"),
        );
    }
    let mut results = results_of(&out.stdout, &base);
    for r in &mut results {
        r.duration_ms = ms;
    }
    if results.is_empty() {
        return crashed(
            format!("no results (exit {})", out.code.unwrap_or(-1)),
            format!("it printed no KTAP test: {tail}"),
        );
    }
    results
}

/// Results of a KTAP document: a leaf test is a result whose variant is its path of
/// descriptions (`parent/child`); each grammar problem is an `error` naming its line.
pub fn results_of(stdout: &str, base: &CheckResult) -> Vec<CheckResult> {
    let parsed = ktap::parse(stdout);
    let mut out = Vec::new();
    if let Some(suite) = &parsed.suite {
        for t in &suite.tests {
            leaves(t, "", base, &mut out);
        }
    }
    for p in &parsed.problems {
        out.push(CheckResult {
            variant: Some(format!("line {}", p.line)),
            outcome: Outcome::Error,
            observed: "malformed KTAP".into(),
            detail: p.to_string(),
            ..base.clone()
        });
    }
    out
}

fn leaves(t: &Test, prefix: &str, base: &CheckResult, out: &mut Vec<CheckResult>) {
    let name = if t.description.is_empty() {
        format!("test {}", t.number)
    } else {
        t.description.clone()
    };
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    if let Some(sub) = t.subtests.as_ref().filter(|s| !s.tests.is_empty()) {
        for c in &sub.tests {
            leaves(c, &path, base, out);
        }
        return;
    }
    let outcome = t.outcome();
    let observed = match (&t.directive, t.ok) {
        (Some(d), ok) => format!("{} # {d:?}", if ok { "ok" } else { "not ok" }).to_lowercase(),
        (None, true) => "ok".into(),
        (None, false) => "not ok".into(),
    };
    let mut evidence = t.diagnostics.join("; ");
    if evidence.is_empty() {
        evidence = base.evidence.clone();
    }
    out.push(CheckResult {
        variant: Some(path),
        outcome,
        observed,
        evidence,
        detail: t.diagnostic.clone(),
        ..base.clone()
    });
}

struct Ran {
    stdout: String,
    stderr: String,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
}

/// Runs `program` in `dir`, killing it at `deadline`; output is read on threads so a program
/// that fills a pipe cannot hang the harness. It runs in a process group of its own, killed
/// whole when it ends or overruns, so that nothing it started keeps the pipes (or the target)
/// busy.
fn execute(program: &str, dir: &Path, deadline: Duration) -> std::io::Result<Ran> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = Command::new(program)
        .process_group(0)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait()? {
            break (st, false);
        }
        if started.elapsed() >= deadline {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            break (child.wait()?, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the program left running goes with it.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    Ok(Ran {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        code: status.code(),
        signal: if timed_out { None } else { status.signal() },
        timed_out,
    })
}

/// The last lines a program printed, for a result's detail (its console, in short).
fn console_tail(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    if tail.is_empty() {
        "nothing".into()
    } else {
        tail.join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> CheckResult {
        CheckResult {
            check: "user.probe".into(),
            variant: None,
            scope: Scope::Fs,
            fs: Some("ext4".into()),
            logical_block_size: Some(4096),
            outcome: Outcome::Error,
            observed: String::new(),
            expected: EXPECTED.into(),
            evidence: "probe".into(),
            detail: String::new(),
            duration_ms: 0,
            tolerance: None,
            measures: Vec::new(),
        }
    }

    #[test]
    fn the_four_verdicts_and_nested_tests_become_results() {
        let text = "KTAP version 1\n1..5\n# splice works here\nok 1 splice\nnot ok 2 vmsplice # \
                    leaked\nok 3 dax # SKIP no pmem\nok 4 gup # XFAIL known pin bug\n  KTAP \
                    version 1\n  1..1\n  ok 1 inner\nok 5 outer\n";
        let r = results_of(text, &base());
        let got: Vec<(Option<&str>, Outcome)> = r
            .iter()
            .map(|r| (r.variant.as_deref(), r.outcome))
            .collect();
        assert_eq!(
            got,
            [
                (Some("splice"), Outcome::Pass),
                (Some("vmsplice"), Outcome::Fail),
                (Some("dax"), Outcome::Skip),
                (Some("gup"), Outcome::Xfail),
                (Some("outer/inner"), Outcome::Pass),
            ]
        );
        assert_eq!(r[0].evidence, "splice works here");
        assert_eq!(r[1].detail, "leaked");
        assert_eq!(r[2].detail, "no pmem");
        assert_eq!(r[3].observed, "ok # xfail");
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_line() {
        let r = results_of("KTAP version 1\n1..2\nok 1 a\nnot ok b\n", &base());
        let bad: Vec<&CheckResult> = r.iter().filter(|r| r.outcome == Outcome::Error).collect();
        assert!(
            bad.iter().any(|r| r.variant.as_deref() == Some("line 4")),
            "{r:?}"
        );
    }

    #[test]
    fn a_crash_and_a_hang_are_errors_with_what_was_printed() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            UserCheck {
                name: name.into(),
                path: p.to_string_lossy().into_owned(),
                timeout_s: 1,
            }
        };
        let crash = script(
            "crash",
            "echo 'KTAP version 1'; echo boom >&2; kill -SEGV $$",
        );
        let r = run(&crash, dir.path(), Some("tmpfs"), None);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].outcome, r[0].observed.as_str()),
            (Outcome::Error, "crashed (signal 11)")
        );
        assert!(r[0].detail.contains("boom"), "{}", r[0].detail);
        let hang = script("hang", "echo started; sleep 30");
        let r = run(&hang, dir.path(), Some("tmpfs"), None);
        assert_eq!(
            (r[0].outcome, r[0].observed.as_str()),
            (Outcome::Error, "timeout")
        );
        assert!(r[0].detail.contains("started"), "{}", r[0].detail);
        // The working directory is the target's.
        let pwd = script(
            "pwd",
            "echo 'KTAP version 1'; echo '1..1'; echo \"ok 1 $(pwd)\"",
        );
        let r = run(&pwd, dir.path(), Some("tmpfs"), None);
        assert_eq!(r[0].outcome, Outcome::Pass);
        let name = dir.path().file_name().unwrap().to_str().unwrap();
        assert!(r[0].variant.as_deref().unwrap().ends_with(name), "{r:?}");
    }
}
