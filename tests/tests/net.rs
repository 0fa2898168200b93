//! End-to-end: the `net` family in real guests, whose virtio-net device reaches zcmatrix's host
//! end through QEMU's restricted user network. Two kernels at once (`--jobs 2`), so two host
//! ends serve two guests side by side.

mod common;

use common::matrix;
use serde_json::Value;
use serial_test::serial;

/// The result of `id` (a full id, variant in brackets) in a cell.
fn result<'a>(c: &'a Value, id: &str) -> &'a Value {
    c["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| common::full_id(r) == id)
        .unwrap_or_else(|| panic!("no {id} in {}", c["kernel_spec"]))
}

#[test]
#[serial]
fn msg_zerocopy_copies_on_loopback_and_reaches_the_host_end_through_virtio_net() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel", "6.1", "--kernel", "6.12", "--fs", "tmpfs", "--check", "net.*", "--jobs",
            "2",
        ],
    );
    let report = report.expect("a report is written");
    assert_eq!(code, 0, "no check failed: {report}");
    for kernel in ["6.1", "6.12"] {
        let c = report["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kernel_spec"] == kernel)
            .unwrap_or_else(|| panic!("no {kernel} cell"));
        common::assert_completed(c);
        // Loopback: the kernel copies what MSG_ZEROCOPY pinned, and says so in the completion.
        let lo = result(c, "net.msg_zerocopy_lo");
        assert_eq!(
            (&lo["outcome"], &lo["observed"]),
            (&"pass".into(), &"copied".into()),
            "{lo}"
        );
        // Through virtio-net: every byte checked by the host end, and what the completion says.
        let nic = result(c, "net.msg_zerocopy_nic");
        let seen = nic["observed"].as_str().unwrap();
        assert_eq!(nic["outcome"], "pass", "{nic}");
        assert!(seen.starts_with("data=ok notified=all "), "{nic}");
        assert!(
            seen.ends_with(" sg=off"),
            "user networking has no vnet header: {nic}"
        );
        assert!(
            nic["detail"]
                .as_str()
                .unwrap()
                .contains("verified by the host end"),
            "{nic}"
        );
        for id in ["net.sendfile_nic", "net.splice_nic"] {
            assert_eq!(result(c, id)["observed"], "ok", "{}", result(c, id));
        }
        // TCP receive zero-copy maps whole pages on loopback; through a 1500-byte MTU nothing is a
        // whole page, and every byte comes through the fallback.
        assert_eq!(
            result(c, "net.tcp_zerocopy_receive[aligned]")["observed"],
            "mapped"
        );
        assert_eq!(
            result(c, "net.tcp_zerocopy_receive[nic]")["observed"],
            "copied"
        );
        let tls = result(c, "net.ktls_sendfile");
        assert!(
            tls["observed"]
                .as_str()
                .unwrap()
                .starts_with("data=ok records="),
            "{tls}"
        );
        // The host end's own log: each transfer it saw, and that it verified every byte.
        let log = std::fs::read_to_string(out.path().join("guests").join(kernel).join("net.log"))
            .expect("the host end writes net.log next to console.log");
        let sinks: Vec<&str> = log.lines().filter(|l| l.starts_with("sink ")).collect();
        assert_eq!(sinks.len(), 3, "{log}");
        assert!(sinks.iter().all(|l| l.contains("verified=true")), "{log}");
        assert!(log.lines().any(|l| l.starts_with("source ")), "{log}");
    }
}
