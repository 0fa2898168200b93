//! End-to-end: `cargo xtask test-matrix` boots real Debian kernels under real QEMU with real
//! filesystems on virtio disks, and the assertions read what the harness measured inside.
//! Guests are slow and share the cache, so these tests run one at a time.

mod common;

use common::{matrix, observed};
use serde_json::Value;
use serial_test::serial;

fn cell<'a>(report: &'a Value, fs: &str) -> &'a Value {
    common::cell(report, fs, None)
}

#[test]
#[serial]
fn debian_6_1_guest_measures_every_filesystem() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(out.path(), &["--kernel", "6.1", "--geometry", "512"]);
    let report = report.expect("a report is written");
    assert_eq!(report["schema_version"], 2);
    let cells = report["cells"].as_array().unwrap();
    // ext4, xfs, btrfs on the one geometry, tmpfs, overlay on it too, and the DAX targets.
    assert_eq!(cells.len(), 7);
    for c in cells {
        common::assert_completed(c);
        let release = c["kernel_release"].as_str().unwrap();
        assert!(release.starts_with("6.1.0-"), "{release}");
        assert!(c["kernel_package"]
            .as_str()
            .unwrap()
            .starts_with("linux-image-6.1.0-"));
        assert!(c["boot_ms"].as_u64().unwrap() > 0);
        assert!(c["accel"] == "kvm" || c["accel"] == "tcg");
        // Kernel-scope result, copied into every cell of the guest.
        assert_eq!(observed(c, "splice.no_pipe"), "EINVAL");
        assert_eq!(observed(c, "mmap.private_write"), "isolated");
        assert_eq!(observed(c, "sendfile.file_to_pipe"), "ok");
    }
    // Measured inside a 6.1 guest: tmpfs learnt O_DIRECT only in 6.6, whatever the host runs.
    assert_eq!(observed(cell(&report, "tmpfs"), "dio.open"), "EINVAL");
    assert_eq!(observed(cell(&report, "ext4"), "dio.open"), "ok");
    assert_eq!(
        observed(cell(&report, "ext4"), "dio.misaligned_buffer"),
        "EINVAL"
    );
    assert_eq!(cell(&report, "tmpfs")["logical_block_size"], Value::Null);
    assert_eq!(cell(&report, "xfs")["logical_block_size"], 512);
    assert_eq!(cell(&report, "overlay")["logical_block_size"], 512);
    assert_eq!(observed(cell(&report, "ext4-dax"), "dax.mounted"), "on");
    assert_eq!(code, 0, "every check passed or skipped");
    let console = std::fs::read_to_string(out.path().join("guests/6.1/console.log")).unwrap();
    assert!(console.contains("Linux version 6.1.0-"));
    // Every format of the report, from the same model.
    for f in vm::report::FILES {
        assert!(out.path().join(f).is_file(), "{f}");
    }
}

#[test]
#[serial]
fn check_filter_limits_what_the_guest_runs() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "sendfile.file_to_pipe",
        ],
    );
    let report = report.unwrap();
    let c = cell(&report, "tmpfs");
    let ids: Vec<&str> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sendfile.file_to_pipe"]);
    assert_eq!(code, 0);
    // The guest's results as KTAP, for the kernel world's runners: grammatical, ids as names.
    let ktap = std::fs::read_to_string(out.path().join("guests/6.1/results.ktap")).unwrap();
    let parsed = zcmatrix_protocol::ktap::parse(&ktap);
    assert_eq!(parsed.problems, [], "{ktap}");
    let tmpfs = &parsed.suite.unwrap().tests[0];
    assert_eq!(tmpfs.description, "tmpfs", "{ktap}");
    assert!(ktap.contains("ok 1 sendfile.file_to_pipe"), "{ktap}");
}

#[test]
#[serial]
fn a_guest_past_its_deadline_before_the_harness_starts_could_not_boot() {
    let out = tempfile::tempdir().unwrap();
    // Under TCG a Debian kernel needs more than a second to reach PID 1 (2.5 s and up, as the
    // hello records' uptime show), so the deadline falls before the harness's first record.
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--accel",
            "tcg",
            "--timeout",
            "1",
        ],
    );
    let c = cell(report.as_ref().unwrap(), "tmpfs");
    assert_eq!(c["status"], "timeout", "{}", c["status_detail"]);
    assert_eq!(c["kernel_release"], Value::Null);
    assert_eq!(c["guest_summary"], Value::Null);
    assert_eq!(
        code, 3,
        "a guest that never reached the harness could not boot"
    );
}

#[test]
#[serial]
fn a_kernel_that_cannot_boot_is_an_infrastructure_error_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bzImage");
    std::fs::write(&bogus, b"not a kernel").unwrap();
    let out = dir.path().join("out");
    let (code, report) = matrix(
        &out,
        &["--kernel", bogus.to_str().unwrap(), "--fs", "tmpfs"],
    );
    let c = cell(report.as_ref().unwrap(), "tmpfs");
    assert_ne!(c["status"], "completed");
    assert_eq!(code, 3);
}

#[test]
fn bad_input_is_exit_2_and_boots_nothing() {
    let out = tempfile::tempdir().unwrap();
    for args in [
        &["--kernel", "4.19"][..],
        &["--fs", "zfs"][..],
        &["--kernel", "/no/such/bzImage"][..],
    ] {
        let (code, report) = matrix(out.path(), args);
        assert_eq!(code, 2, "{args:?}");
        assert!(report.is_none(), "{args:?} wrote a report");
    }
}

#[test]
#[serial]
fn a_check_filter_matching_nothing_is_exit_2_before_booting() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(out.path(), &["--kernel", "6.1", "--check", "nosuch.*"]);
    assert_eq!(code, 2);
    assert!(report.is_none());
    assert!(!out.path().join("guests").exists());
}

#[test]
#[serial]
fn a_pinned_build_that_left_the_archive_is_replaced_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("kernels.lock");
    let mut pins: Value = serde_json::from_str(
        &std::fs::read_to_string(xtask::workspace_root().join("kernels.lock")).unwrap(),
    )
    .unwrap();
    let k = &mut pins["kernels"]["6.1"];
    k["version"] = "6.1.0-0zcmatrix1".into();
    k["packages"][0]["version"] = "6.1.0-0zcmatrix1".into();
    std::fs::write(&lock, serde_json::to_string(&pins).unwrap()).unwrap();
    let out = dir.path().join("out");
    // The lock goes in as an argument: setting ZCMATRIX_LOCK here would change the environment
    // of every test thread of this binary, serial or not (set_var races with any reader).
    // One family is enough to show the substituted kernel runs; the checks have their own tests.
    let (code, report) = matrix(
        &out,
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "splice.*",
            "--lock",
            lock.to_str().unwrap(),
        ],
    );
    let c = cell(report.as_ref().unwrap(), "tmpfs");
    common::assert_completed(c);
    let note = c["kernel_substituted"]
        .as_str()
        .expect("substitution is reported");
    assert!(note.contains("6.1.0-0zcmatrix1"), "{note}");
    assert_ne!(c["kernel_version"], "6.1.0-0zcmatrix1");
    let relocked: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(relocked["kernels"]["6.1"]["version"], c["kernel_version"]);
    assert_eq!(code, 0);
}

#[test]
#[serial]
fn a_local_kernel_with_its_modules_tree_boots_like_a_debian_one() {
    let spec = vm::kernel::KernelSpec::parse("6.1").unwrap();
    let mut lock = vm::kernel::LockFile::load(&xtask::lock_path()).unwrap();
    let k = vm::kernel::KernelStore::new(&xtask::cache_dir())
        .ensure(&spec, &mut lock)
        .unwrap();
    let local = format!(
        "{}:{}",
        k.image.display(),
        k.modules.as_ref().unwrap().display()
    );
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(out.path(), &["--kernel", &local, "--fs", "xfs"]);
    let c = cell(report.as_ref().unwrap(), "xfs");
    common::assert_completed(c);
    assert!(c["kernel_release"].as_str().unwrap().starts_with("6.1.0-"));
    assert_eq!(c["kernel_package"], Value::Null);
    assert_eq!(observed(c, "dio.open"), "ok");
    assert_eq!(code, 0);
}

#[test]
#[serial]
fn a_module_that_does_not_load_is_a_guest_error_and_not_a_clean_run() {
    // A real 6.1 kernel whose virtio_blk.ko has one byte of its vermagic changed: the signature
    // no longer matches and the magic is no kernel's, so the guest's finit_module refuses it.
    // Without virtio_blk there is no swap disk, the checks that need swapped pages skip, and
    // only the guest's errors say why.
    let spec = vm::kernel::KernelSpec::parse("6.1").unwrap();
    let mut lock = vm::kernel::LockFile::load(&xtask::lock_path()).unwrap();
    let k = vm::kernel::KernelStore::new(&xtask::cache_dir())
        .ensure(&spec, &mut lock)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("modules");
    let src = k.modules.as_ref().unwrap();
    // Hard links where the cache shares a filesystem with the temporary directory; the one
    // file changed is unlinked first, so the cached tree is never touched.
    let linked = std::process::Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(&tree)
        .status()
        .unwrap()
        .success();
    if !linked {
        let _ = std::fs::remove_dir_all(&tree);
        assert!(std::process::Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(&tree)
            .status()
            .unwrap()
            .success());
    }
    let ko = tree.join("kernel/drivers/block/virtio_blk.ko");
    let mut bytes = std::fs::read(&ko).expect("6.1 ships virtio_blk.ko uncompressed");
    let at = bytes
        .windows(9)
        .position(|w| w == b"vermagic=")
        .expect("a vermagic");
    let space = at + bytes[at..].iter().position(|&b| b == b' ').unwrap();
    bytes[space + 1] = b'X';
    std::fs::remove_file(&ko).unwrap();
    std::fs::write(&ko, bytes).unwrap();

    let local = format!("{}:{}", k.image.display(), tree.display());
    let out = dir.path().join("out");
    let (code, report) = matrix(
        &out,
        &[
            "--kernel",
            &local,
            "--fs",
            "tmpfs",
            "--check",
            "cow.vmsplice_unmap_child[swapped_base]",
        ],
    );
    let c = cell(report.as_ref().unwrap(), "tmpfs");
    assert_eq!(
        c["status"], "completed_with_errors",
        "{}",
        c["status_detail"]
    );
    let errors = c["guest_errors"].as_array().unwrap();
    let has = |kind: &str, prefix: &str| {
        errors
            .iter()
            .any(|e| e["kind"] == kind && e["message"].as_str().unwrap().starts_with(prefix))
    };
    assert!(has("module", "virtio_blk:"), "{errors:?}");
    assert!(has("harness", "swap:"), "{errors:?}");
    assert_eq!(
        common::result(c, "cow.vmsplice_unmap_child")["outcome"],
        "skip"
    );
    assert!(c["guest_summary"]["counts"]["skip"] == 1);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("completed_with_errors"), "{md}");
    // Markdown escapes the underscore.
    assert!(md.contains(r": module: virtio\_blk:"), "{md}");
    assert_eq!(code, 3, "a guest whose set-up failed is infrastructure");
}
