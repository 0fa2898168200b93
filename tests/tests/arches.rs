//! End-to-end: guests of other architectures and page sizes (arm64 with 4 KiB and 16 KiB pages,
//! ppc64le with 64 KiB), emulated by QEMU under TCG with real Debian kernels, and the harness
//! cross-built for each as a static binary.

mod common;

use common::{assert_completed, matrix, observed, result};
use serde_json::Value;
use serial_test::serial;
use vm::arch::Arch;

/// INT_MAX & PAGE_MASK: what the kernel caps one read, write or sendfile at.
fn max_rw_count(page_size: u64) -> u64 {
    (i32::MAX as u64) & !(page_size - 1)
}

fn cells_of<'a>(report: &'a Value, spec: &str) -> Vec<&'a Value> {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kernel_spec"] == spec)
        .collect()
}

#[test]
fn cross_built_harnesses_are_static_binaries_of_their_machine() {
    for arch in Arch::ALL {
        let bin = xtask::harness_bin::build(arch).unwrap();
        let bytes = std::fs::read(&bin).unwrap();
        vm::arch::check_static_elf(&bytes, arch)
            .unwrap_or_else(|e| panic!("{arch}: {}: {e}", bin.display()));
        // And not of another machine.
        for other in Arch::ALL.into_iter().filter(|o| *o != arch) {
            assert!(vm::arch::check_static_elf(&bytes, other).is_err());
        }
    }
}

#[test]
#[serial]
fn arm64_16k_and_ppc64le_64k_guests_report_their_page_size_and_its_rules() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "7.2-arm64-16k",
            "--kernel",
            "7.2-powerpc64le-64k",
            "--fs",
            "tmpfs",
            "--fs",
            "ext4",
            "--geometry",
            "4096",
            "--check",
            "sendfile.max_count",
            "--check",
            "splice.pipe_capacity",
            "--check",
            "mmap.fault_around",
            "--check",
            "mmap.offset_4k",
            "--check",
            "mmap.fixed_4k_address",
            "--check",
            "dio.buffer_4k_aligned",
            "--check",
            "reflink.clone",
            "--check",
            "net.tcp_zerocopy_receive[aligned]",
            "--accel",
            "tcg",
            "--jobs",
            "2",
            "--boot-timeout",
            "120",
        ],
    );
    let report = report.expect("a report is written");
    for (spec, arch, page) in [
        ("7.2-arm64-16k", "arm64", 16384u64),
        ("7.2-powerpc64le-64k", "ppc64le", 65536),
    ] {
        let cells = cells_of(&report, spec);
        assert_eq!(cells.len(), 2, "{spec}: tmpfs and ext4/4096");
        for c in cells {
            assert_completed(c);
            assert_eq!(c["arch"], arch, "{spec}");
            assert_eq!(c["page_size"], page, "{spec}");
            assert_eq!(c["accel"], "tcg");
            let release = c["kernel_release"].as_str().unwrap();
            assert!(release.starts_with("7.2."), "{release}");
            let max = result(c, "sendfile.max_count");
            assert_eq!(
                max["observed"],
                max_rw_count(page).to_string(),
                "{spec} {}",
                c["fs"]
            );
            assert_eq!(max["outcome"], "pass", "{max}");
            // A new pipe holds 16 pages: 256 KiB or 1 MiB here.
            let pipe = observed(c, "splice.pipe_capacity");
            assert!(
                pipe.starts_with(&format!("default={} ", 16 * page)),
                "{pipe}"
            );
            assert_eq!(result(c, "splice.pipe_capacity")["outcome"], "pass");
            // With 64 KiB pages the fault-around window is the one page every fault maps: the
            // rule cannot fail there, so no verdict, and the result says why.
            let around = result(c, "mmap.fault_around");
            if page == 65536 {
                assert_eq!(around["outcome"], "info", "{around}");
                assert!(
                    around["expected"]
                        .as_str()
                        .unwrap()
                        .contains("cannot fail here"),
                    "{around}"
                );
            } else {
                assert_eq!(around["outcome"], "pass", "{around}");
            }
            // 4 KiB alignment is no page alignment here; O_DIRECT does not care.
            assert_eq!(observed(c, "mmap.offset_4k"), "EINVAL");
            assert_eq!(observed(c, "mmap.fixed_4k_address"), "EINVAL");
            if c["fs"] == "ext4" {
                assert_eq!(observed(c, "dio.buffer_4k_aligned"), "ok");
            }
            // The architecture's own FICLONE: ext4 and tmpfs refuse it as on x86_64, where an
            // x86 request number on ppc64le read ENOTTY ("no such ioctl").
            assert_eq!(observed(c, "reflink.clone"), "EOPNOTSUPP", "{spec}");
            // A loopback segment (< 64 KiB) holds whole 16 KiB pages, never a 64 KiB one.
            let zc = c["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| common::full_id(r) == "net.tcp_zerocopy_receive[aligned]")
                .expect("net.tcp_zerocopy_receive[aligned]");
            let want = if page == 65536 { "copied" } else { "mapped" };
            assert_eq!(zc["observed"], want, "{spec}: {zc}");
            assert_eq!(zc["outcome"], "pass", "{zc}");
        }
    }
    assert_eq!(max_rw_count(16384), 0x7fff_c000);
    assert_eq!(max_rw_count(65536), 0x7fff_0000);
    assert_eq!(code, 0, "every check passed or skipped");
    let console =
        std::fs::read_to_string(out.path().join("guests/7.2-powerpc64le-64k/console.log")).unwrap();
    assert!(console.contains("Linux version 7.2."), "{console}");
}

#[test]
#[serial]
fn arch_arm64_with_a_bare_series_is_the_4k_cloud_kernel() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--arch",
            "arm64",
            "--kernel",
            "7.2",
            "--fs",
            "tmpfs",
            "--check",
            "sendfile.max_count",
            "--accel",
            "tcg",
            "--boot-timeout",
            "120",
        ],
    );
    let report = report.expect("a report is written");
    let cells = cells_of(&report, "7.2-cloud-arm64");
    assert_eq!(cells.len(), 1);
    let c = cells[0];
    assert_completed(c);
    assert_eq!(c["arch"], "arm64");
    assert_eq!(c["page_size"], 4096);
    assert!(c["kernel_package"]
        .as_str()
        .unwrap()
        .ends_with("-cloud-arm64"));
    assert_eq!(observed(c, "sendfile.max_count"), "2147479552");
    assert_eq!(code, 0);
}

/// Debian's 6.1 cloud-arm64 builds virtio_console and virtio_pci as modules: the guest loads
/// them (the host chose them from the kernel's own module index) before it opens the result
/// port, and its first record is still `hello`, the modules' records after it.
#[test]
#[serial]
fn a_kernel_with_its_result_port_as_modules_loads_them_before_the_port() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--arch",
            "arm64",
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "dio.open",
            "--accel",
            "tcg",
            "--boot-timeout",
            "120",
        ],
    );
    let report = report.expect("a report is written");
    let cells = cells_of(&report, "6.1-cloud-arm64");
    assert_eq!(cells.len(), 1);
    assert_completed(cells[0]);
    assert_eq!(cells[0]["arch"], "arm64");
    assert_eq!(code, 0);
    let stream =
        std::fs::read_to_string(out.path().join("guests/6.1-cloud-arm64/results.jsonl")).unwrap();
    let records: Vec<Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["type"], "hello", "{stream}");
    let modules: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "module")
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            r["name"].as_str().unwrap()
        })
        .collect();
    let at = |m: &str| modules.iter().position(|n| *n == m);
    assert!(
        at("virtio_pci").is_some() && at("virtio_pci") < at("virtio_console"),
        "{modules:?}"
    );
}
