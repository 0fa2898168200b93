//! End-to-end: the outcome model on a kernel from before the THP and swap COW fixes (5.10) and
//! one after them (6.1). A documented hazard is `xfail` where the rule predicts it and `pass`
//! nowhere; a measurement is `info`; the harness's own sizing never shows as a kernel fact.

mod common;

use common::{cell, matrix};
use serde_json::Value;
use serial_test::serial;

/// The kernel's tmpfs and ext4 (512-byte disk) cells.
fn cells(kernel: &str) -> (Value, Value) {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            kernel,
            "--fs",
            "tmpfs",
            "--fs",
            "ext4",
            "--geometry",
            "512",
            "--check",
            "cow.vmsplice_unmap_child[*]",
            "--check",
            "cow.fork_basic[*]",
            "--check",
            "sendfile.max_count",
            "--check",
            "mmap.fault_sequential",
            // sendfile.max_count reads 2 GiB before 6.5: only the full profile measures it.
            "--profile",
            "full",
        ],
    );
    let report = report.expect("a report is written");
    let tmpfs = cell(&report, "tmpfs", None).clone();
    let ext4 = cell(&report, "ext4", Some(512)).clone();
    common::assert_completed(&tmpfs);
    common::assert_completed(&ext4);
    assert_eq!(
        code, 0,
        "xfail, info and skip do not fail a run on {kernel}"
    );
    (tmpfs, ext4)
}

/// (outcome, observed) of `id[variant]`; a skip must carry its reason.
fn seen(c: &Value, id: &str, variant: Option<&str>) -> (String, String) {
    let r = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == id && r["variant"].as_str() == variant)
        .unwrap_or_else(|| panic!("no {id}[{variant:?}]"));
    if r["outcome"] == "skip" {
        assert!(!r["detail"].as_str().unwrap().is_empty(), "{r}");
    }
    (
        r["outcome"].as_str().unwrap().to_string(),
        r["observed"].as_str().unwrap().to_string(),
    )
}

fn pair(outcome: &str, observed: &str) -> (String, String) {
    (outcome.to_string(), observed.to_string())
}

#[test]
#[serial]
fn hazards_are_xfail_measurements_info_and_limits_not_kernel_facts_on_5_10_and_6_1() {
    let (old, old_ext4) = cells("5.10");
    let (new, new_ext4) = cells("6.1");
    for (c, ext4) in [(&old, &old_ext4), (&new, &new_ext4)] {
        assert_eq!(
            seen(c, "cow.vmsplice_unmap_child", Some("base")),
            pair("pass", "isolated")
        );
        assert_eq!(
            seen(c, "cow.fork_basic", Some("thp")),
            pair("pass", "isolated")
        );
        // The guest has swap: the swapped backings really ran.
        assert_eq!(
            seen(c, "cow.fork_basic", Some("swapped_base")),
            pair("pass", "isolated")
        );
        // The per-call cap of sendfile, not how much room the guest's tmpfs has: before 6.5
        // tmpfs allocates the holes splice reads, so the cap is read from a sparse ext4 file
        // and the tmpfs cell says why it did not measure.
        assert_eq!(
            seen(ext4, "sendfile.max_count", None),
            pair("pass", "2147479552")
        );
        assert_eq!(seen(c, "sendfile.max_count", None).0, "skip");
        for cell in [c, ext4] {
            assert_eq!(seen(cell, "mmap.fault_sequential", None).0, "info");
        }
        // No result anywhere is a pass with a hazard value.
        for r in c["results"].as_array().unwrap() {
            let v = r["observed"].as_str().unwrap();
            if ["leak", "unreliable"].contains(&v) {
                assert_ne!(r["outcome"], "pass", "{r}");
            }
        }
    }
    // The THP and swap halves of CVE-2020-29374 were closed in 5.18: a known hazard on 5.10,
    // measured, not assumed.
    for v in ["thp", "swapped_base"] {
        assert_eq!(
            seen(&old, "cow.vmsplice_unmap_child", Some(v)),
            pair("xfail", "leak"),
            "{v}"
        );
        assert_eq!(
            seen(&new, "cow.vmsplice_unmap_child", Some(v)),
            pair("pass", "isolated"),
            "{v}"
        );
    }
}

/// A real guest's observations judged by another series' rules (`--judge-as 7.2` on 5.10):
/// O_DIRECT on tmpfs is EINVAL before 6.6 and a clone across two mounts EXDEV before 5.18, so
/// both fail 7.2's rules, while checks whose rules agree still pass. The run says so
/// everywhere: `fail` in report.json, ❌ first under What changes in report.md, a failure
/// element per failed check in junit.xml, and exit status 1.
#[test]
#[serial]
fn judged_as_another_series_a_real_guest_fails_and_the_run_says_so() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "5.10",
            "--fs",
            "tmpfs",
            "--accel",
            "tcg",
            "--boot-timeout",
            "120",
            "--judge-as",
            "7.2",
            "--check",
            "dio.open",
            "--check",
            "reflink.cross_mount",
            "--check",
            "splice.no_pipe",
            "--check",
            "mmap.beyond_eof",
        ],
    );
    let report = report.expect("a report is written");
    let tmpfs = cell(&report, "tmpfs", None);
    common::assert_completed(tmpfs);
    assert!(
        tmpfs["kernel_release"]
            .as_str()
            .unwrap()
            .starts_with("5.10."),
        "{tmpfs}"
    );
    let r = |id: &str| common::result(tmpfs, id);
    for (id, observed) in [("dio.open", "EINVAL"), ("reflink.cross_mount", "EXDEV")] {
        assert_eq!(r(id)["outcome"], "fail", "{}", r(id));
        assert_eq!(r(id)["observed"], observed, "{}", r(id));
        assert!(
            r(id)["expected"]
                .as_str()
                .unwrap()
                .contains("the rule of 7.2.0, --judge-as"),
            "{}",
            r(id)
        );
    }
    for id in ["splice.no_pipe", "mmap.beyond_eof"] {
        assert_eq!(r(id)["outcome"], "pass", "{}", r(id));
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let changes = &md[md.find("## What changes").unwrap()..];
    assert!(
        changes.starts_with("## What changes\n\n❌ 2 check(s) contradict their rule"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 2, "{junit}");
    assert_eq!(code, 1, "a failed check fails the run");
}
