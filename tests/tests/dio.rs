//! End-to-end: the direct I/O family in a real guest, on both disk geometries.

mod common;

use common::{cell, matrix, observed};
use serial_test::serial;

#[test]
#[serial]
fn offset_alignment_follows_the_disk_geometry_and_tmpfs_takes_anything() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel", "6.12", "--fs", "ext4", "--fs", "tmpfs", "--check", "dio.*",
        ],
    );
    let report = report.expect("a report is written");
    assert_eq!(report["cells"].as_array().unwrap().len(), 3);
    for lbs in [512u64, 4096] {
        let c = cell(&report, "ext4", Some(lbs));
        common::assert_completed(c);
        assert_eq!(observed(c, "dio.min_offset_align"), lbs.to_string());
        assert_eq!(observed(c, "dio.min_len_align"), lbs.to_string());
        assert_eq!(
            observed(c, "dio.blockdev_align"),
            format!("offset={lbs} len={lbs}")
        );
        assert_eq!(observed(c, "dio.misaligned_offset"), "EINVAL");
        assert_eq!(observed(c, "dio.sees_dirty_cache"), "new");
    }
    // 6.12 has tmpfs O_DIRECT (6.6), served from the page cache at any alignment.
    let t = cell(&report, "tmpfs", None);
    assert_eq!(observed(t, "dio.open"), "ok");
    assert_eq!(observed(t, "dio.min_offset_align"), "1");
    assert_eq!(code, 0, "every dio check passed or skipped");
}
