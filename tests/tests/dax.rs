//! End-to-end: the DAX targets (ext4 and xfs on a synchronous pmem region, mounted with
//! `dax=always`) and the overlay target in one 6.1 guest. DAX must really be on, read from
//! statx(2) in the guest rather than assumed from the mount, and MAP_SYNC must be granted
//! there; overlay's lower-layer files must behave as overlayfs documents across a copy-up.
//! Then the other architectures: arm64 with 16 KiB pages declares its regions in the device
//! tree and must be DAX the same way, and ppc64le's kernel, built without libnvdimm, must say
//! so in its skips.

mod common;

use common::{cell, matrix, observed, result};
use serial_test::serial;

#[test]
#[serial]
fn dax_targets_are_really_dax_and_overlay_copies_up_as_documented() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--kernel",
        "6.1",
        "--fs",
        "ext4-dax",
        "--fs",
        "xfs-dax",
        "--fs",
        "overlay",
        "--geometry",
        "4096",
        "--check",
        "dax.*",
        "--check",
        "overlay.*",
        "--check",
        "mmap.map_sync",
        "--check",
        "dio.misaligned_offset",
        "--check",
        "splice.by_reference",
    ];
    let (code, report) = matrix(out.path(), &args);
    let report = report.expect("a report is written");
    assert_eq!(report["cells"].as_array().unwrap().len(), 3);
    for fs in ["ext4-dax", "xfs-dax"] {
        // The pmem block device's 512, whatever the geometry of the run.
        let c = cell(&report, fs, Some(512));
        common::assert_completed(c);
        assert_eq!(
            observed(c, "dax.mounted"),
            "on",
            "{fs}: statx says DAX is off"
        );
        let detail = result(c, "dax.mounted")["detail"].as_str().unwrap();
        assert!(detail.contains("dax"), "{fs}: mount options {detail}");
        assert_eq!(observed(c, "dax.map_sync"), "ok", "{fs}");
        assert_eq!(observed(c, "mmap.map_sync"), "ok", "{fs}");
        // No page cache and no alignment: a byte-granular direct read works, and a pipe
        // filled from the file holds a copy.
        assert_eq!(observed(c, "dax.dio"), "ok", "{fs}");
        assert_eq!(observed(c, "dio.misaligned_offset"), "ok", "{fs}");
        assert_eq!(observed(c, "splice.by_reference"), "old", "{fs}");
        // The overlay checks run on the overlay target only: no result here, not a skip.
        assert!(
            !c["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["check"] == "overlay.copy_up_ro_fd"),
            "{fs}"
        );
    }
    let o = cell(&report, "overlay", Some(4096));
    common::assert_completed(o);
    assert_eq!(observed(o, "dax.mounted"), "off");
    assert_eq!(observed(o, "mmap.map_sync"), "EOPNOTSUPP");
    // The documented hazard: a MAP_SHARED mapping of a lower file keeps showing it after
    // copy-up, while a read-only descriptor follows the copy.
    let m = result(o, "overlay.copy_up_ro_mmap");
    assert_eq!(
        (m["observed"].as_str(), m["outcome"].as_str()),
        (Some("stale"), Some("xfail"))
    );
    assert_eq!(observed(o, "overlay.copy_up_ro_fd"), "new");
    assert_eq!(observed(o, "overlay.lower_direct_read"), "ok");
    // Direct I/O goes to ext4 below, with ext4's alignment rule.
    assert_eq!(observed(o, "dio.misaligned_offset"), "EINVAL");
    assert_eq!(observed(o, "splice.by_reference"), "new");
    assert_eq!(code, 0, "nothing failed or erred");
}

#[test]
#[serial]
fn arm64_16k_is_dax_through_the_device_tree_and_ppc64le_says_it_has_no_pmem_driver() {
    let out = tempfile::tempdir().unwrap();
    // One emulated guest of each: 16 KiB pages on arm64, the ppc64le kernel without libnvdimm.
    let args: Vec<&str> = "--kernel 7.2-arm64-16k --kernel 7.2-powerpc64le-64k \
         --fs ext4-dax --fs xfs-dax --check dax.* --check mmap.map_sync \
         --accel tcg --jobs 1 --boot-timeout 120"
        .split_whitespace()
        .collect();
    let (code, report) = matrix(out.path(), &args);
    let report = report.expect("a report is written");
    let cells: Vec<&serde_json::Value> = report["cells"].as_array().unwrap().iter().collect();
    assert_eq!(cells.len(), 4);
    for c in cells {
        common::assert_completed(c);
        let fs = c["fs"].as_str().unwrap();
        if c["arch"] == "arm64" {
            assert_eq!(c["page_size"], 16384);
            assert_eq!(
                observed(c, "dax.mounted"),
                "on",
                "{fs}: statx says DAX is off"
            );
            // The region of_pmem registers is synchronous: MAP_SYNC is granted.
            assert_eq!(observed(c, "dax.map_sync"), "ok", "{fs}");
            assert_eq!(observed(c, "mmap.map_sync"), "ok", "{fs}");
            assert_eq!(observed(c, "dax.dio"), "ok", "{fs}");
        } else {
            assert_eq!(c["arch"], "ppc64le");
            let results = c["results"].as_array().unwrap();
            assert_eq!(results.len(), 5, "{fs}: every selected check has its skip");
            for r in results {
                assert_eq!(r["outcome"], "skip", "{fs} {r}");
                let why = r["detail"].as_str().unwrap();
                assert!(
                    why.starts_with("this kernel is built without CONFIG_LIBNVDIMM"),
                    "{fs}: {why}"
                );
            }
        }
    }
    assert_eq!(code, 0, "nothing failed or erred");
}
