//! End-to-end: one 6.1 guest's matrix (ext4/512 and tmpfs, the dio and tee families) run as 3
//! shards and merged equals the same matrix run once, cell by cell and result by result. With
//! one kernel, two of the shards are empty: they boot nothing, succeed, and merge. The shards
//! are laid out as the merge job's actions/download-artifact leaves them (several artifacts:
//! one subfolder each; a lone one: its files straight in the folder) and merged by that folder.

mod common;

use common::matrix;
use serde_json::Value;
use serial_test::serial;

const SELECTION: [&str; 12] = [
    "--kernel",
    "6.1",
    "--fs",
    "ext4",
    "--fs",
    "tmpfs",
    "--geometry",
    "512",
    "--check",
    "dio.*",
    "--check",
    "tee.*",
];

/// The report without what differs from run to run of the same guest: times, the status
/// detail, whose last console lines carry the kernel's timestamps, and the wording of the
/// accelerator's note (the first run on a host without KVM says what its probe found, later
/// ones that an earlier run found it): whether there is one stays.
fn timeless(mut report: Value) -> Value {
    if let Some(note) = report.get_mut("accel_note") {
        if !note.is_null() {
            *note = Value::Bool(true);
        }
    }
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["boot_ms", "duration_ms", "status_detail", "uptime_ms"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut report);
    report
}

#[test]
#[serial]
fn three_shards_merged_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let (code, report) = matrix(&whole, &SELECTION);
    assert_eq!(code, 0, "{report:?}");
    let whole_report = report.expect("a report is written");
    assert_eq!(whole_report["cells"].as_array().unwrap().len(), 2);

    let mut shard_dirs = Vec::new();
    let mut booted = 0;
    let shards = dir.path().join("shards");
    for k in 1..=3 {
        let out = shards.join(format!("shard-{}", k - 1));
        let shard = format!("{k}/3");
        let mut args = SELECTION.to_vec();
        args.extend(["--shard", &shard]);
        let (code, report) = matrix(&out, &args);
        assert_eq!(code, 0, "shard {shard}: {report:?}");
        let report = report.expect("every shard writes a report, an empty one too");
        assert_eq!(report["run"]["shard"]["index"], k);
        let cells = report["cells"].as_array().unwrap().len();
        if cells == 0 {
            // An empty shard boots nothing.
            assert!(!out.join("guests").exists(), "shard {shard}");
        } else {
            assert_eq!(cells, 2, "one kernel's cells stay in one shard");
            booted += 1;
        }
        shard_dirs.push(out);
    }
    assert_eq!(booted, 1, "one kernel: one shard boots it");

    // The folder holding every shard's folder, as the workflow names it.
    let merged = dir.path().join("merged");
    let argv = vec![
        "cargo xtask",
        "report",
        "merge",
        shards.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ];
    assert_eq!(xtask::run(argv), 0);
    for f in ["report.json", "report.md", "report.html", "junit.xml"] {
        assert!(merged.join(f).is_file(), "{f}");
    }
    let merged_report: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("report.json")).unwrap())
            .unwrap();
    // The guest the shards timed, for the next run to size its shards by: one kernel, one
    // guest, timed by the shard that booted it (an empty shard times nothing).
    let times: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(merged.join("guest-times.json")).unwrap())
            .unwrap();
    assert_eq!(times.len(), 1, "{times:?}");
    let (key, ms) = times.iter().next().unwrap();
    assert!(key.starts_with(SELECTION[1]), "{key}");
    assert!(ms.as_u64().unwrap() > 0);
    // Every cell's console.log link resolves in the merged folder.
    for c in merged_report["cells"].as_array().unwrap() {
        let log = merged
            .join(c["guest_dir"].as_str().unwrap())
            .join("console.log");
        assert!(log.is_file(), "{}", log.display());
    }
    let (a, b) = (timeless(whole_report), timeless(merged_report));
    assert_eq!(a["run"], b["run"], "the merged run is the whole run's");
    let (ca, cb) = (
        a["cells"].as_array().unwrap(),
        b["cells"].as_array().unwrap(),
    );
    assert_eq!(ca.len(), cb.len());
    for (x, y) in ca.iter().zip(cb) {
        let (rx, ry) = (
            x["results"].as_array().unwrap(),
            y["results"].as_array().unwrap(),
        );
        assert_eq!(rx.len(), ry.len(), "{} {}", x["fs"], y["fs"]);
        for (p, q) in rx.iter().zip(ry) {
            assert_eq!(p, q, "result of {} {}", x["fs"], p["check"]);
        }
        assert_eq!(x, y, "cell {}", x["fs"]);
    }
    assert_eq!(a, b);

    // Two shards are not the whole run: the missing one is named.
    let mut argv = vec!["cargo xtask", "report", "merge"];
    argv.extend(shard_dirs[..2].iter().map(|d| d.to_str().unwrap()));
    let partial = dir.path().join("partial");
    argv.extend(["--out", partial.to_str().unwrap()]);
    assert_eq!(xtask::run(argv), 2);
    assert!(!partial.join("report.json").exists());
}

/// A selection of one kernel is one shard (`ci matrix-plan` gives `1/1`), whose artifact
/// actions/download-artifact unpacks flat into the merge job's folder: that folder merges.
#[test]
#[serial]
fn a_lone_shard_laid_out_flat_merges() {
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    let args = [
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
        "--shard",
        "1/1",
    ];
    let (code, report) = matrix(&shards, &args);
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(
        report.expect("a report")["cells"].as_array().unwrap().len(),
        1
    );
    let merged = dir.path().join("merged");
    let argv = [
        "cargo xtask",
        "report",
        "merge",
        shards.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ];
    assert_eq!(xtask::run(argv), 0);
    let merged_report: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("report.json")).unwrap())
            .unwrap();
    let cells = merged_report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(
        cells[0]["status"], "completed",
        "{}",
        cells[0]["status_detail"]
    );
    assert!(merged_report["run"]["shard"].is_null());
    let log = merged
        .join(cells[0]["guest_dir"].as_str().unwrap())
        .join("console.log");
    assert!(log.is_file(), "{}", log.display());
}
