//! End-to-end: sendfile, splice and tee in a real guest, with the guest's own loopback network.

mod common;

use common::{cell, matrix, observed, result};
use serial_test::serial;

#[test]
#[serial]
fn sendfile_and_splice_endpoints_in_a_6_1_guest() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "ext4",
            "--fs",
            "tmpfs",
            "--geometry",
            "512",
            "--check",
            "sendfile.socket_source",
            "--check",
            "sendfile.file_to_tcp",
            "--check",
            "sendfile.append_out",
            "--check",
            "splice.*",
            "--check",
            "tee.*",
        ],
    );
    let report = report.expect("a report is written");
    for (fs, lbs) in [("ext4", Some(512)), ("tmpfs", None)] {
        let c = cell(&report, fs, lbs);
        common::assert_completed(c);
        assert_eq!(observed(c, "sendfile.socket_source"), "EINVAL");
        // The whole 256 KiB file crossed the guest's loopback TCP, byte for byte.
        let tcp = result(c, "sendfile.file_to_tcp");
        assert_eq!(tcp["observed"], "ok", "{}", tcp["detail"]);
        assert!(tcp["detail"]
            .as_str()
            .unwrap()
            .starts_with("262144 bytes moved"));
        assert_eq!(observed(c, "sendfile.append_out"), "EINVAL");
        assert_eq!(observed(c, "splice.tcp_to_pipe"), "ok");
        assert_eq!(observed(c, "splice.by_reference"), "new");
        assert_eq!(observed(c, "tee.duplicate"), "ok");
    }
    // O_DIRECT on tmpfs arrived in 6.6: on 6.1 the splice checks that need it do not apply,
    // and say why; they do not answer their own question with the open's errno.
    let dio_in = result(cell(&report, "tmpfs", None), "splice.dio_in");
    assert_eq!(dio_in["outcome"], "skip", "{dio_in}");
    assert!(
        dio_in["detail"].as_str().unwrap().contains("O_DIRECT"),
        "{dio_in}"
    );
    assert_eq!(
        observed(cell(&report, "ext4", Some(512)), "splice.dio_in"),
        "ok"
    );
    assert_eq!(code, 0);
}
