//! End-to-end tests of `--accel auto`: the verdict on this host, and the run-time fallback from a
//! KVM guest that never speaks, injected so that it happens on any machine, with or without a
//! working KVM. Real guests, one test at a time.
//!
//! Each run is a child process of this test binary with its own environment (the fault and
//! the verdict file's place): setting variables here would race with every test thread that
//! reads the environment.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use serial_test::serial;

/// Set in a child: the `test-matrix` arguments, as JSON, for [`serve_child`] to run.
const CHILD_ARGS: &str = "ZCMATRIX_TEST_ACCEL_ARGS";

/// In a child started by [`matrix_in_child`]: runs the matrix and ends the process with its exit
/// status. In the test itself: returns.
fn serve_child() {
    if let Ok(args) = std::env::var(CHILD_ARGS) {
        let args: Vec<String> = serde_json::from_str(&args).unwrap();
        let argv = ["cargo xtask", "test-matrix"]
            .into_iter()
            .map(String::from)
            .chain(args);
        std::process::exit(i32::from(xtask::run(argv)));
    }
}

/// Runs `test-matrix --out OUT ARGS…` in a child running `test` (which starts with
/// [`serve_child`]), with `env` added, and returns its exit status and report.json.
fn matrix_in_child(
    test: &str,
    out: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, Option<Value>) {
    let mut all = vec!["--out", out.to_str().unwrap()];
    all.extend(args);
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD_ARGS, serde_json::to_string(&all).unwrap())
        .env_remove("ZCMATRIX_ACCEL")
        .envs(env.iter().copied())
        .status()
        .unwrap();
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("report.json is JSON"));
    (status.code().unwrap_or(-1), report)
}

/// One x86_64 kernel, tmpfs, one cheap check.
const SMALL: &[&str] = &[
    "--kernel",
    "6.1",
    "--fs",
    "tmpfs",
    "--check",
    "sendfile.file_to_pipe",
];

/// A run of `test` in a child with the silent first KVM attempt injected and the verdict kept in
/// the temporary folder: its exit status, report.json, the folder, and the run's out dir and
/// verdict file in it.
fn injected_run(test: &str, args: &[&str]) -> (i32, Value, tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (out, file) = (dir.path().join("out"), dir.path().join("kvm-verdict.json"));
    let (code, report) = matrix_in_child(
        test,
        &out,
        args,
        &[
            (vm::accel::FAULT_KVM_SILENT, "1"),
            (vm::kvm_verdict::FILE_VAR, file.to_str().unwrap()),
        ],
    );
    (code, report.expect("a report"), dir, out, file)
}

fn verdict(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("the verdict is kept")).unwrap()
}

#[test]
#[serial]
fn a_silent_first_kvm_guest_falls_back_to_tcg_with_no_cell_lost() {
    serve_child();
    let (code, report, _dir, out, file) = injected_run(
        "a_silent_first_kvm_guest_falls_back_to_tcg_with_no_cell_lost",
        SMALL,
    );
    for c in report["cells"].as_array().unwrap() {
        common::assert_completed(c);
        assert_eq!(c["accel"], "tcg", "started again under TCG");
        assert_eq!(c["retries"], 0, "the fallback is no retry");
    }
    assert_eq!(code, 0, "{report}");
    let note = report["accel_note"]
        .as_str()
        .expect("the fallback is noted");
    assert!(
        note.contains("declared unusable") && note.contains(vm::accel::FAULT_KVM_SILENT),
        "{note}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("declared unusable"), "report.md says it too");
    // The silent attempt's logs are kept: QEMU started paused, so its console is empty; the
    // guest that ran is the TCG one.
    let guest = out.join("guests/6.1");
    assert_eq!(
        std::fs::read_to_string(guest.join("kvm-console.log")).unwrap(),
        ""
    );
    let console = std::fs::read_to_string(guest.join("console.log")).unwrap();
    assert!(console.contains("Linux version"), "{console}");
    let v = verdict(&file);
    assert_eq!(v["usable"], false, "{v}");
    assert_eq!(v["key"]["injected"], true, "no real run trusts it: {v}");
    assert!(v["key"]["qemu"].as_str().unwrap().contains("QEMU"), "{v}");
}

#[test]
#[serial]
fn auto_completes_on_this_host_keeps_its_verdict_and_the_next_run_follows_it() {
    serve_child();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kvm-verdict.json");
    let env = [(vm::kvm_verdict::FILE_VAR, file.to_str().unwrap())];
    let test = "auto_completes_on_this_host_keeps_its_verdict_and_the_next_run_follows_it";
    let first = dir.path().join("first");
    let (code, report) = matrix_in_child(test, &first, SMALL, &env);
    let report = report.expect("a report");
    let c = common::cell(&report, "tmpfs", None);
    common::assert_completed(c);
    assert_eq!(code, 0);
    // Whatever this host's KVM does, a verdict is kept: the probe's refusal, a guest that stayed
    // silent under KVM (a nested KVM that runs real mode but not Linux), or one that ran.
    let v = verdict(&file);
    assert_eq!(v["key"]["injected"], false);
    let stderr = std::fs::read_to_string(first.join("guests/6.1/qemu.stderr")).unwrap_or_default();
    assert!(!stderr.contains("failed to set MSR"), "{stderr}");
    if c["accel"] == "tcg" {
        assert_eq!(v["usable"], false, "{v}");
        let note = report["accel_note"].as_str().unwrap_or_default();
        assert!(
            note.starts_with("KVM cannot run a guest here (") && note.contains("TCG"),
            "auto fell back and says why: {report}"
        );
        // The next run knows: no probe, no guest on trial under KVM.
        let second = dir.path().join("second");
        let (code, report) = matrix_in_child(test, &second, SMALL, &env);
        let report = report.expect("a report");
        common::assert_completed(common::cell(&report, "tmpfs", None));
        assert_eq!(code, 0);
        let note = report["accel_note"].as_str().unwrap_or_default();
        assert!(note.contains("found by an earlier run"), "{note}");
        assert!(!second.join("guests/6.1/kvm-console.log").exists());
    } else {
        assert_eq!(c["accel"], "kvm");
        assert_eq!(report["accel_note"], Value::Null);
        assert_eq!(v["usable"], true, "{v}");
    }
}

#[test]
#[serial]
fn guests_on_trial_at_once_all_complete_when_one_stays_silent() {
    serve_child();
    // Two workers: the first guest started is the injected silent one, the other a real KVM
    // attempt on trial at the same time. Where KVM runs Linux, that one speaks and finishes
    // under KVM; where it does not (this project's PVM host), it is stopped when the first is
    // declared silent, or is silent itself, and starts again under TCG.
    let (code, report, _dir, _out, file) = injected_run(
        "guests_on_trial_at_once_all_complete_when_one_stays_silent",
        &[&["--kernel", "5.10", "--jobs", "2"], SMALL].concat(),
    );
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        common::assert_completed(c);
        assert_eq!(c["retries"], 0, "the fallback is no retry");
    }
    assert!(
        cells.iter().any(|c| c["accel"] == "tcg"),
        "the silent one ran again under TCG"
    );
    assert_eq!(code, 0, "{report}");
    let note = report["accel_note"]
        .as_str()
        .expect("the fallback is noted");
    assert!(note.contains("declared unusable"), "{note}");
    assert_eq!(verdict(&file)["usable"], false);
}
