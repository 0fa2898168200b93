//! End-to-end tests of the runner itself: the acceleration verdict, parallel guests, and every
//! way a guest or a run can end. Real guests, one test at a time (they share the cache and the
//! two cores).

mod common;

use std::time::Instant;

use common::matrix;
use serde_json::Value;
use serial_test::serial;

#[test]
#[serial]
fn auto_decides_on_kvm_without_booting_a_guest_for_it() {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, report) = matrix(
        out.path(),
        &["--kernel", "6.1", "--fs", "tmpfs", "--check", "dio.open"],
    );
    let elapsed = started.elapsed().as_millis() as u64;
    let report = report.unwrap();
    let c = common::cell(&report, "tmpfs", None);
    common::assert_completed(c);
    assert_eq!(code, 0);
    // The guest's own time, from QEMU's start to the harness's summary. What is left is the
    // command line, the harness build check, the kernel look-up and the KVM verdict; a verdict
    // that waited for a silent KVM guest used to add about 8 s to it.
    let guest =
        c["boot_ms"].as_u64().unwrap() + c["guest_summary"]["duration_ms"].as_u64().unwrap();
    assert!(
        elapsed.saturating_sub(guest) < 5000,
        "{elapsed} ms in all, {guest} ms of it in the guest"
    );
    if c["accel"] == "tcg" {
        let note = report["accel_note"].as_str().unwrap_or_default();
        assert!(note.contains("TCG"), "auto fell back and says so: {report}");
    } else {
        assert_eq!(c["accel"], "kvm");
        assert_eq!(report["accel_note"], Value::Null);
    }
}

/// report.json without what depends on the clock.
fn without_timings(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "boot_ms" | "duration_ms"))
                .map(|(k, v)| (k.clone(), without_timings(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_timings).collect()),
        v => v.clone(),
    }
}

#[test]
#[serial]
fn parallel_guests_write_the_same_report_as_serial_ones() {
    let args = |jobs: &'static str| {
        [
            "--kernel",
            "5.10",
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--fs",
            "ext4",
            "--geometry",
            "512",
            "--check",
            "dio.*",
            "--jobs",
            jobs,
        ]
    };
    let serial_out = tempfile::tempdir().unwrap();
    let (serial_code, serial) = matrix(serial_out.path(), &args("1"));
    let parallel_out = tempfile::tempdir().unwrap();
    let (parallel_code, parallel) = matrix(parallel_out.path(), &args("2"));
    let (serial, parallel) = (serial.unwrap(), parallel.unwrap());
    assert_eq!(serial["cells"].as_array().unwrap().len(), 4);
    for c in serial["cells"].as_array().unwrap() {
        common::assert_completed(c);
    }
    assert_eq!(without_timings(&serial), without_timings(&parallel));
    assert_eq!(serial_code, parallel_code);
    for k in ["5.10", "6.1"] {
        assert!(parallel_out
            .path()
            .join(format!("guests/{k}/console.log"))
            .is_file());
    }
}
