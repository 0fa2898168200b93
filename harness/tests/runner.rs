//! The runner end to end on this machine: probes that answer, skip, break, panic, crash or hang,
//! each judged through a rule, and machine-wide settings applied and restored around a probe.
//!
//! One test function on purpose: the runner forks, and forking is only sound while the process
//! is single-threaded, which a test binary with one test is.

use std::path::PathBuf;
use std::time::Duration;

use harness::checks::{broken, skip, Check, Ctx, Expect, Observation, Probe, Rule, Setting, Stop};
use harness::kver::KernelVersion;
use harness::runner::run_check;
use zcmatrix_protocol::Outcome;

const OK: Rule = Rule::new(Expect::is("ok"), "test rule");

fn saw_ok(_: &Ctx) -> Result<Observation, Stop> {
    Ok(Observation::saw("ok", "as the rule says"))
}
fn saw_other(_: &Ctx) -> Result<Observation, Stop> {
    Ok(Observation::saw("EINVAL", "not what the rule says"))
}
fn skips(_: &Ctx) -> Result<Observation, Stop> {
    Err(skip("no such precondition here"))
}
fn breaks(_: &Ctx) -> Result<Observation, Stop> {
    Err(broken("set-up step failed"))
}
fn errno_breaks(_: &Ctx) -> Result<Observation, Stop> {
    std::fs::read("/nonexistent/zcmatrix-runner-test")?;
    Ok(Observation::saw("ok", "unreachable"))
}
fn panics(_: &Ctx) -> Result<Observation, Stop> {
    panic!("probe bug")
}
/// Touches memory it may not, as a buggy probe would.
fn crashes(_: &Ctx) -> Result<Observation, Stop> {
    let m = harness::sys::Mapping::anon(4096, libc::PROT_NONE, 0)?;
    m.write(0, 1);
    Ok(Observation::saw("ok", "unreachable"))
}
fn hangs(_: &Ctx) -> Result<Observation, Stop> {
    std::thread::sleep(Duration::from_secs(30));
    Ok(Observation::saw("ok", "too late"))
}
/// Reports what the first setting's file holds while the probe runs.
fn reads_setting(ctx: &Ctx) -> Result<Observation, Stop> {
    let path = ctx.dir.join("knob");
    Ok(Observation::saw(
        std::fs::read_to_string(path)?.trim(),
        "the knob as the probe saw it",
    ))
}

fn ctx(dir: PathBuf, owns_machine: bool) -> Ctx {
    Ctx {
        kernel: KernelVersion::new(6, 1, 0),
        dir,
        fs: Some("ext4".into()),
        logical_block_size: Some(512),
        device: None,
        owns_machine,
        mounts: Vec::new(),
        profile: zcmatrix_protocol::Profile::Full,
        variant: None,
    }
}

#[test]
fn the_runner_judges_every_kind_of_probe_end() {
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path().to_path_buf(), false);
    let deadline = Duration::from_secs(2);
    let cases: [(&str, Probe, Outcome, &str); 8] = [
        ("t.ok", saw_ok, Outcome::Pass, "as the rule says"),
        (
            "t.other",
            saw_other,
            Outcome::Fail,
            "not what the rule says",
        ),
        ("t.skip", skips, Outcome::Skip, "no such precondition"),
        ("t.broken", breaks, Outcome::Error, "set-up step failed"),
        ("t.errno", errno_breaks, Outcome::Error, "No such file"),
        (
            "t.panic",
            panics,
            Outcome::Error,
            "probe panicked: probe bug",
        ),
        ("t.crash", crashes, Outcome::Error, "SIGSEGV"),
        ("t.hang", hangs, Outcome::Error, "did not finish within 2s"),
    ];
    for (id, probe, want, detail) in cases {
        let check = Check::fs(id, "runner test", OK, probe);
        let r = run_check(&check, &c, deadline);
        assert_eq!(r.outcome, want, "{id}: {r:?}");
        assert!(r.detail.contains(detail), "{id}: {:?}", r.detail);
        assert_eq!(
            r.expected, "ok",
            "{id}: the rule is named even when not judged"
        );
    }

    // Settings: written by the parent before the probe, restored after, guests only.
    let knob = tmp.path().join("knob");
    std::fs::write(&knob, "always [madvise] never\n").unwrap();
    let path: &'static str = Box::leak(knob.to_string_lossy().into_owned().into_boxed_str());
    let settings: &'static [Setting] = Box::leak(Box::new([Setting {
        path,
        value: "never",
        why: "the test knob",
        if_present: false,
    }]));
    let check = Check::fs(
        "t.settings",
        "runner test",
        Rule::new(Expect::is("never"), "t"),
        reads_setting,
    )
    .settings(settings);
    let r = run_check(&check, &c, deadline);
    assert_eq!(
        r.outcome,
        Outcome::Skip,
        "a host run never changes machine-wide settings"
    );
    assert!(r.detail.contains("guest only"), "{}", r.detail);

    let guest = ctx(tmp.path().to_path_buf(), true);
    let r = run_check(&check, &guest, deadline);
    assert_eq!(
        (r.outcome, r.observed.as_str()),
        (Outcome::Pass, "never"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&knob).unwrap(),
        "madvise",
        "restored to the selected word"
    );

    // A probe killed at its deadline still gets its settings restored.
    std::fs::write(&knob, "5").unwrap();
    let hanging = Check::fs("t.settings_hang", "runner test", OK, hangs).settings(settings);
    let r = run_check(&hanging, &guest, deadline);
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(std::fs::read_to_string(&knob).unwrap(), "5");

    // A setting the machine does not have is a skip that says which and why.
    let missing: &'static [Setting] = Box::leak(Box::new([Setting {
        path: "/nonexistent/zcmatrix-knob",
        value: "1",
        why: "no such knob on this kernel",
        if_present: false,
    }]));
    let r = run_check(
        &Check::fs("t.missing", "runner test", OK, saw_ok).settings(missing),
        &guest,
        deadline,
    );
    assert_eq!(r.outcome, Outcome::Skip);
    assert!(
        r.detail.contains("no such knob on this kernel"),
        "{}",
        r.detail
    );

    // ... unless it is written only where present (another page size's PMD control): then the
    // probe runs with the settings that exist.
    let optional: &'static [Setting] = Box::leak(Box::new([
        Setting {
            path: "/nonexistent/zcmatrix-knob",
            value: "1",
            why: "another page size's knob",
            if_present: true,
        },
        settings[0],
    ]));
    std::fs::write(&knob, "always [madvise] never\n").unwrap();
    let r = run_check(
        &Check::fs(
            "t.optional",
            "runner test",
            Rule::new(Expect::is("never"), "t"),
            reads_setting,
        )
        .settings(optional),
        &guest,
        deadline,
    );
    assert_eq!(
        (r.outcome, r.observed.as_str()),
        (Outcome::Pass, "never"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&knob).unwrap(), "madvise");
}
