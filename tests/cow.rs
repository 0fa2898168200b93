//! End-to-end: copy-on-write isolation under vmsplice and io_uring pins, on a kernel from before
//! the THP and swap fixes (5.10) and one after them (6.1).

mod common;

use common::{cell, matrix, result};
use serial_test::serial;

fn cow_cell(kernel: &str) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            kernel,
            "--fs",
            "tmpfs",
            "--check",
            "cow.vmsplice_unmap_child[*]",
            "--check",
            "cow.fork_basic[*]",
        ],
    );
    let report = report.expect("a report is written");
    let c = cell(&report, "tmpfs", None).clone();
    common::assert_completed(&c);
    assert_eq!(code, 0, "every cow check passed or skipped on {kernel}");
    c
}

fn seen(c: &serde_json::Value, id: &str, variant: &str) -> String {
    let r = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == id && r["variant"] == variant)
        .unwrap_or_else(|| panic!("no {id}[{variant}]"));
    if r["outcome"] == "skip" {
        assert!(
            !r["detail"].as_str().unwrap().is_empty(),
            "a skip carries its reason"
        );
    }
    r["observed"].as_str().unwrap().to_string()
}

#[test]
#[serial]
fn vmsplice_cow_grid_of_5_10_and_6_1() {
    let old = cow_cell("5.10");
    let new = cow_cell("6.1");
    for c in [&old, &new] {
        assert_eq!(seen(c, "cow.vmsplice_unmap_child", "base"), "isolated");
        assert_eq!(seen(c, "cow.fork_basic", "thp"), "isolated");
        // The guest has swap: the swapped backings really ran.
        assert_ne!(seen(c, "cow.fork_basic", "swapped_base"), "skipped");
    }
    // The THP and swap halves of CVE-2020-29374 were closed in 5.18: measured, not assumed.
    assert_eq!(seen(&old, "cow.vmsplice_unmap_child", "thp"), "leak");
    assert_eq!(seen(&new, "cow.vmsplice_unmap_child", "thp"), "isolated");
    assert_eq!(
        seen(&old, "cow.vmsplice_unmap_child", "swapped_base"),
        "leak"
    );
    assert_eq!(
        seen(&new, "cow.vmsplice_unmap_child", "swapped_base"),
        "isolated"
    );
    let _ = result;
}
