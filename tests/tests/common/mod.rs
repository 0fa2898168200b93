//! Helpers shared by the end-to-end test files: run the real command line, read the report.

#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

/// Runs `cargo xtask test-matrix --out OUT ARGS…` in-process; the exit status and report.json.
pub fn matrix(out: &Path, args: &[&str]) -> (u8, Option<Value>) {
    let mut argv = vec!["cargo xtask", "test-matrix", "--out", out.to_str().unwrap()];
    argv.extend(args);
    let code = xtask::run(argv);
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("report.json is JSON"));
    (code, report)
}

/// The cell of `fs` (and, when given, that logical block size).
pub fn cell<'a>(report: &'a Value, fs: &str, lbs: Option<u64>) -> &'a Value {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fs"] == fs && lbs.is_none_or(|b| c["logical_block_size"] == b))
        .unwrap_or_else(|| panic!("no {fs} {lbs:?} cell"))
}

pub fn result<'a>(cell: &'a Value, check: &str) -> &'a Value {
    cell["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in the {} cell", cell["fs"]))
}

pub fn observed<'a>(cell: &'a Value, check: &str) -> &'a str {
    result(cell, check)["observed"].as_str().unwrap()
}

/// Asserts the cell's guest finished cleanly (no module, mount, harness or stream error),
/// showing why when it did not.
pub fn assert_completed(cell: &Value) {
    assert_eq!(
        cell["status"], "completed",
        "{} {}: {} {}",
        cell["kernel_spec"], cell["fs"], cell["status_detail"], cell["guest_errors"]
    );
    assert_eq!(cell["guest_errors"], Value::Array(vec![]));
    let summary = &cell["guest_summary"]["counts"];
    assert!(summary.is_object(), "a completed guest sent its summary");
    // Every number a probe writes for people it types for the host (charts, diffs).
    for r in cell["results"].as_array().into_iter().flatten() {
        let typed: zcmatrix_protocol::CheckResult = serde_json::from_value(r.clone()).unwrap();
        assert!(
            typed.untyped_numbers().is_empty(),
            "{} on {}: numbers without measures in `{}`",
            full_id(r),
            cell["kernel_spec"],
            typed.observed
        );
    }
}

/// `family.name[variant]` of a result in report.json.
pub fn full_id(result: &Value) -> String {
    match result["variant"].as_str() {
        Some(v) => format!("{}[{v}]", result["check"].as_str().unwrap()),
        None => result["check"].as_str().unwrap().to_string(),
    }
}
