//! The user's own checks (`--exec`): static KTAP programs built here with the host's `cc`, run
//! in real guests on every filesystem target, their results in every report format and in
//! `report diff` like a built-in family's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_completed, matrix};
use serde_json::Value;
use serial_test::serial;

/// A probe with one test of each verdict a user writes: it really writes and reads back a file
/// in its working directory (the target's), and `FIXED` turns its failing test into a pass.
const PROBE: &str = r##"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char buf[4096], back[4096], cwd[512];
    memset(buf, 'z', sizeof buf);
    int fd = open("zcprobe.dat", O_CREAT | O_RDWR | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, buf, sizeof buf) == sizeof buf &&
             pread(fd, back, sizeof back, 0) == sizeof back && !memcmp(buf, back, sizeof buf);
    printf("KTAP version 1\n1..4\n");
    printf("# wrote and read back 4096 bytes in %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    printf("%s 1 cwd_round_trip\n", ok ? "ok" : "not ok");
#ifdef FIXED
    printf("ok 2 deliberate\n");
#else
    printf("not ok 2 deliberate # the probe fails this on purpose\n");
#endif
    printf("ok 3 needs_feature # SKIP feature absent\n");
    printf("ok 4 known_hazard # XFAIL a documented hazard\n");
    return 0;
}
"##;

const CRASHER: &str = r#"
#include <signal.h>
#include <stdio.h>
int main(void) {
    printf("KTAP version 1\n1..2\nok 1 first\n");
    fflush(stdout);
    raise(SIGSEGV);
    return 0;
}
"#;

/// `cc -static` of `source` into `dir/name`.
fn build(dir: &Path, name: &str, source: &str, defines: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .args(defines)
        .output()
        .expect("the host's cc (gcc; cargo xtask setup installs the static C library)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

/// The run both tests of a probe make: 5.10 and 6.1, tmpfs and ext4, one cheap built-in check,
/// and the two user programs.
fn with_probes(out: &Path, probe: &Path, crasher: &Path) -> (u8, Option<Value>) {
    let (probe, crasher) = (probe.to_str().unwrap(), crasher.to_str().unwrap());
    matrix(
        out,
        &[
            "--kernel",
            "5.10",
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--fs",
            "ext4",
            "--geometry",
            "4096",
            "--check",
            "splice.pipe_capacity",
            "--exec",
            probe,
            "--exec",
            crasher,
        ],
    )
}

fn user_results(c: &Value) -> Vec<(String, String)> {
    c["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["check"].as_str().unwrap().starts_with("user."))
        .map(|r| {
            (
                common::full_id(r),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[serial]
fn a_users_ktap_probe_reads_its_four_verdicts_on_two_kernels_and_a_crash_is_an_error() {
    let bin = tempfile::tempdir().unwrap();
    let probe = build(bin.path(), "zcprobe", PROBE, &[]);
    let crasher = build(bin.path(), "crasher", CRASHER, &[]);
    let out = tempfile::tempdir().unwrap();
    let (code, report) = with_probes(out.path(), &probe, &crasher);
    let report = report.unwrap();
    // A failing user test fails the run as a failing check does.
    assert_eq!(code, 1);
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        assert_completed(c);
        let got = user_results(c);
        let want: Vec<(String, String)> = [
            ("user.zcprobe[cwd_round_trip]", "pass"),
            ("user.zcprobe[deliberate]", "fail"),
            ("user.zcprobe[needs_feature]", "skip"),
            ("user.zcprobe[known_hazard]", "xfail"),
            ("user.crasher", "error"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want, "{}", c["kernel_spec"]);
        let r = c["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == "user.crasher")
            .unwrap();
        assert_eq!(r["observed"], "crashed (signal 11)");
        assert!(r["detail"].as_str().unwrap().contains("ok 1 first"), "{r}");
        // The probe ran in the target's directory: its diagnostic line is the rule's evidence.
        let round = c["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["variant"] == "cwd_round_trip")
            .unwrap();
        assert!(
            round["evidence"]
                .as_str()
                .unwrap()
                .starts_with("wrote and read back 4096 bytes in /"),
            "{round}"
        );
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("user.zcprobe[deliberate]"), "report.md");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("user.zcprobe[deliberate]"), "report.html");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let case = junit
        .split("<testcase")
        .find(|c| c.contains("user.zcprobe[deliberate]"))
        .expect("a junit test case for the failing user test");
    assert!(case.contains("<failure"), "{case}");

    // The same probe with its failing test fixed: `report diff` shows the change.
    let fixed_dir = tempfile::tempdir().unwrap();
    let fixed = build(fixed_dir.path(), "zcprobe", PROBE, &["-DFIXED"]);
    let out2 = tempfile::tempdir().unwrap();
    let (code2, _) = with_probes(out2.path(), &fixed, &crasher);
    assert_eq!(code2, 1, "the crasher still errs");
    let code = xtask::run([
        "cargo xtask",
        "report",
        "diff",
        out.path().to_str().unwrap(),
        out2.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "a changed result is a difference");
    let load = |d: &Path| -> zcmatrix_report::Report {
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap()
    };
    let d =
        zcmatrix_report::diff::Diff::between(&load(out.path()), &load(out2.path()), None, false);
    let text = d.markdown();
    assert!(text.contains("user.zcprobe[deliberate]"), "{text}");
    assert!(
        !text.contains("user.crasher"),
        "an unchanged error is no change: {text}"
    );
}

#[test]
#[serial]
fn a_dynamic_program_is_refused_before_anything_boots() {
    let bin = tempfile::tempdir().unwrap();
    let src = bin.path().join("dyn.c");
    std::fs::write(&src, "int main(void){return 0;}\n").unwrap();
    let exe = bin.path().join("dyn");
    assert!(Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--exec",
            exe.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(report.is_none(), "nothing ran");
}
