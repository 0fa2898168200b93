//! End-to-end: the copy_file_range and reflink families in one 6.1 guest holding ext4, xfs and
//! btrfs disks (4096-byte sectors) and tmpfs, every target mounted at once.

mod common;

use common::{cell, matrix, observed};
use serde_json::Value;
use serial_test::serial;

/// The four filesystems cfr.cross_fs pairs (overlay and the DAX targets are not in its pairs),
/// all present so that every pair is measured.
const FILESYSTEMS: [&str; 4] = ["ext4", "xfs", "btrfs", "tmpfs"];

#[test]
#[serial]
fn reflinks_follow_the_filesystem_and_cross_fs_copies_are_measured_on_every_pair() {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["--kernel", "6.1", "--geometry", "4096"];
    for fs in FILESYSTEMS {
        args.extend(["--fs", fs]);
    }
    args.extend(["--check", "cfr.*", "--check", "reflink.*"]);
    let (code, report) = matrix(out.path(), &args);
    let report = report.expect("a report is written");
    assert_eq!(report["cells"].as_array().unwrap().len(), 4);
    for fs in FILESYSTEMS {
        let lbs = (fs != "tmpfs").then_some(4096);
        let c = cell(&report, fs, lbs);
        common::assert_completed(c);
        for r in c["results"].as_array().unwrap() {
            assert!(
                !matches!(r["outcome"].as_str(), Some("fail" | "error")),
                "{fs}: {r}"
            );
        }
        assert_eq!(observed(c, "cfr.same_fs"), "whole=ok range=ok");
    }
    // xfs (reflink=1) and btrfs share blocks; ext4 refuses, and FIEMAP says the same.
    for fs in ["xfs", "btrfs"] {
        let c = cell(&report, fs, Some(4096));
        assert_eq!(observed(c, "reflink.clone"), "ok");
        assert_eq!(observed(c, "cfr.shares_extents"), "shared");
        assert_eq!(
            observed(c, "reflink.cow_isolation"),
            "write=isolated mmap=isolated"
        );
    }
    let ext4 = cell(&report, "ext4", Some(4096));
    assert_eq!(observed(ext4, "reflink.clone"), "EOPNOTSUPP");
    assert_eq!(observed(ext4, "cfr.shares_extents"), "copied");
    // Every ordered pair of the four filesystems was present, so each was measured: none
    // skipped, and 6.1 refuses every one (868f9f2f8e00, 5.19). One geometry means one disk of
    // each filesystem, so the same-type pairs (ext4_to_ext4, ...) skip saying so.
    let cross: Vec<&Value> = ext4["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["check"] == "cfr.cross_fs")
        .collect();
    assert_eq!(cross.len(), 15, "{cross:?}");
    for r in cross {
        let (from, to) = r["variant"].as_str().unwrap().split_once("_to_").unwrap();
        if from == to {
            assert_eq!(r["outcome"], "skip", "{r}");
            assert!(r["detail"].as_str().unwrap().contains("second superblock"));
        } else {
            assert_eq!(r["observed"], "EXDEV", "{r}");
        }
    }
    assert_eq!(code, 0, "nothing failed or erred");
}
