//! Whether the fresh root's matrix run proves the install: every default kernel booted, and
//! every cell is `completed`.

use zcmatrix_report::{Report, Status};

/// Problems with the run, one line each; empty when it proves the install. `expected` is the
/// kernel labels of the default matrix (every default kernel and architecture).
pub fn problems(report: &Report, expected: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if report.cells.is_empty() {
        out.push("the report has no cell".to_string());
    }
    for c in &report.cells {
        let name = format!("{} {}", c.kernel_spec, c.fs);
        if c.status != Status::Completed {
            out.push(format!(
                "{name}: {} ({})",
                c.status.as_str(),
                c.status_detail
            ));
        } else if c.results.is_empty() {
            out.push(format!("{name}: completed without a result"));
        }
        let failed = c.results.iter().filter(|r| r.outcome.is_failure()).count();
        if failed > 0 {
            out.push(format!("{name}: {failed} result(s) fail or error"));
        }
    }
    for k in expected {
        if !report.cells.iter().any(|c| &c.kernel_spec == k) {
            out.push(format!("{k}: no cell (the default kernel did not run)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as `test-matrix` writes it: one tmpfs cell per kernel, `status` per kernel.
    fn report(cells: &[(&str, &str, &str)]) -> Report {
        let cells: Vec<String> = cells
            .iter()
            .map(|(kernel, status, outcome)| {
                let results = if outcome.is_empty() {
                    String::new()
                } else {
                    format!(
                        r#"{{"check":"mmap.offset_4k","variant":null,"scope":"kernel","fs":null,
                            "logical_block_size":null,"outcome":"{outcome}","observed":"ok",
                            "expected":"ok","evidence":"mmap(2)","detail":"","duration_ms":1}}"#
                    )
                };
                format!(
                    r#"{{"kernel_spec":"{kernel}","kernel_release":null,"kernel_package":null,
                    "kernel_version":null,"kernel_substituted":null,"fs":"tmpfs",
                    "logical_block_size":null,"accel":"tcg","boot_ms":null,
                    "status":"{status}","status_detail":"d","guest_errors":[],
                    "counts":{{"pass":1,"fail":0,"xfail":0,"xpass":0,"skip":0,"error":0,"info":0}},
                    "guest_summary":null,"guest_dir":"guests/{kernel}","results":[{results}]}}"#
                )
            })
            .collect();
        let json = format!(
            r#"{{"schema_version":{},"accel_note":null,"cells":[{}]}}"#,
            zcmatrix_protocol::SCHEMA_VERSION,
            cells.join(",")
        );
        Report::from_json(&json).unwrap()
    }

    fn kernels(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_default_kernel_completed_is_a_proof() {
        let r = report(&[
            ("7.2", "completed", "pass"),
            ("7.2-arm64-16k", "completed", "pass"),
        ]);
        assert_eq!(
            problems(&r, &kernels(&["7.2", "7.2-arm64-16k"])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_cell_not_completed_is_named_with_its_status() {
        let r = report(&[("6.1", "boot_timeout", ""), ("7.2", "completed", "pass")]);
        assert_eq!(
            problems(&r, &kernels(&["6.1", "7.2"])),
            ["6.1 tmpfs: boot_timeout (d)"]
        );
    }

    #[test]
    fn a_missing_kernel_an_empty_cell_and_a_failure_are_problems() {
        let r = report(&[("7.2", "completed", ""), ("6.1", "completed", "fail")]);
        let p = problems(&r, &kernels(&["6.1", "7.2", "5.10"]));
        assert_eq!(
            p,
            [
                "7.2 tmpfs: completed without a result",
                "6.1 tmpfs: 1 result(s) fail or error",
                "5.10: no cell (the default kernel did not run)"
            ]
        );
        assert_eq!(problems(&report(&[]), &[]), ["the report has no cell"]);
    }
}
