//! End-to-end: the mmap family in a real guest, where SIGBUS is an observation, not a crash.

mod common;

use common::{cell, matrix, observed};
use serial_test::serial;

#[test]
#[serial]
fn touching_past_end_of_file_is_sigbus_in_a_real_guest() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "xfs",
            "--fs",
            "tmpfs",
            "--geometry",
            "4096",
            "--check",
            "mmap.beyond_eof",
            "--check",
            "mmap.truncate",
            "--check",
            "mmap.fault_cold_scan",
            "--check",
            "mmap.fault_populate",
            "--check",
            "mmap.msync_durable",
        ],
    );
    let report = report.expect("a report is written");
    for (fs, lbs) in [("xfs", Some(4096)), ("tmpfs", None)] {
        let c = cell(&report, fs, lbs);
        common::assert_completed(c);
        assert_eq!(observed(c, "mmap.beyond_eof"), "SIGBUS");
        assert_eq!(observed(c, "mmap.truncate"), "SIGBUS");
        assert!(observed(c, "mmap.fault_populate").starts_with("major=0 "));
        assert_eq!(observed(c, "mmap.msync_durable"), "durable");
    }
    // Caches dropped inside the guest: a disk file's cold scan must do I/O, tmpfs's cannot.
    let xfs_scan = observed(cell(&report, "xfs", Some(4096)), "mmap.fault_cold_scan");
    assert!(!xfs_scan.starts_with("major=0 "), "{xfs_scan}");
    assert!(observed(cell(&report, "tmpfs", None), "mmap.fault_cold_scan").starts_with("major=0 "));
    assert_eq!(code, 0);
}
