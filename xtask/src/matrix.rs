//! `test-matrix`: builds the harness for the plan's guests and hands both to
//! [`vm::matrix::run`], printing what it hears; what runs (the slice a shard boots, the tools it
//! needs, the checks it selects) and the run itself (scheduling, retries, the report, the exit
//! policy) are decided in `vm`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use vm::arch::Arch;
use vm::matrix::{self, Event, Harness};
use vm::plan::{self, Plan};
use vm::report::Report;
use vm::{shard, tools};
use zcmatrix_protocol::Outcome;

use crate::harness_bin;
use crate::progress::Progress;
use crate::UsageError;

/// The static harness for `arch`, after asking setup whether this machine has what linking it
/// reads (the cross linker, the C library a glibc target links statically): a gap is named with
/// its packages, not met by the linker.
fn build_harness(arch: Arch) -> anyhow::Result<std::path::PathBuf> {
    if let Some(gap) = crate::setup::link_gap(arch) {
        anyhow::bail!(gap);
    }
    harness_bin::build(arch)
}

pub fn run(plan: &Plan) -> anyhow::Result<u8> {
    let slice = shard::slice(plan);
    if let Some(s) = plan.shard {
        let labels: Vec<String> = slice.kernels.iter().map(|k| k.label()).collect();
        println!(
            "shard {}/{}: kernels {}",
            s.index,
            s.count,
            if labels.is_empty() {
                "none".to_string()
            } else {
                labels.join(", ")
            }
        );
        if slice.kernels.is_empty() {
            matrix::write_empty_report(plan, &slice)?;
            println!("report: {}", plan.out.join("report.md").display());
            return Ok(matrix::exit::OK);
        }
    }
    tools::require(&matrix::required_tools(plan, &slice))?;
    let progress = Mutex::new(Progress::new(slice.kernels.len()));
    let say = |m: &str| progress.lock().unwrap_or_else(|e| e.into_inner()).say(m);

    say("building the static harness");
    let host = build_harness(Arch::host())?;
    let checks = harness_bin::checks(&host)?;
    plan::validate_checks(&plan.checks, &checks, plan.profile).map_err(UsageError::from)?;
    let mut binaries = BTreeMap::from([(Arch::host(), host)]);
    for arch in slice.kernels.iter().map(|k| k.arch()) {
        if let std::collections::btree_map::Entry::Vacant(e) = binaries.entry(arch) {
            say(&format!("building the static {arch} harness"));
            e.insert(build_harness(arch)?);
        }
    }
    let harness = Harness { binaries, checks };
    let report = matrix::run(plan, &slice, &harness, &|ev| {
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            Event::Note(n) => p.say(&format!("note: {n}")),
            Event::Phase { guest, what } => p.guest(guest, what),
            Event::GuestNote { guest, note } => p.say(&format!("[{guest}] {note}")),
            Event::Record { guest, record } => p.record(guest, record),
            Event::Done {
                guest,
                status,
                detail,
            } => p.guest_done(guest, status, detail),
        }
    })?;
    progress.lock().unwrap_or_else(|e| e.into_inner()).finish();

    print_summary(&report);
    println!("report: {}", plan.out.join("report.md").display());
    Ok(matrix::exit_status(&report))
}

fn print_summary(report: &Report) {
    let mut head = format!("{:<24} {:<28} {:<21}", "cell", "release", "status");
    for o in Outcome::ALL {
        head.push_str(&format!(" {:>5}", o.as_str()));
    }
    println!("{head}");
    for c in &report.cells {
        let mut line = format!(
            "{:<24} {:<28} {:<21}",
            c.label(),
            c.kernel_release.as_deref().unwrap_or("-"),
            c.status.as_str(),
        );
        for o in Outcome::ALL {
            line.push_str(&format!(" {:>5}", c.count(o)));
        }
        println!("{line}");
        for e in &c.guest_errors {
            println!("    {}: {}", e.kind.as_str(), e.message);
        }
        for sp in &c.splats {
            println!(
                "    splat {}: {}",
                sp.kind,
                sp.excerpt.lines().next().unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use vm::guest::{GuestOutcome, Status};
    use vm::report::{self, CellKey, Report};
    use zcmatrix_protocol::{CheckResult, Record, Scope, SCHEMA_VERSION};

    use crate::exit;

    /// A 6.1 tmpfs cell whose one result is a hazard, as a guest would have sent it.
    fn report_with_a_hazard() -> Report {
        let hello = Record::Hello {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-47-cloud-amd64".into(),
            cmdline: String::new(),
            mem_total_kb: 1,
            uptime_ms: 1,
            machine: "x86_64".into(),
            page_size: 4096,
            kernel_build: String::new(),
        };
        let xfail = Record::Result(CheckResult {
            check: "dio.open".into(),
            variant: None,
            scope: Scope::Kernel,
            fs: None,
            logical_block_size: None,
            outcome: zcmatrix_protocol::Outcome::Xfail,
            observed: "ok".into(),
            expected: "ok".into(),
            evidence: "open(2)".into(),
            detail: String::new(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        });
        let mut counts = zcmatrix_protocol::Counts::default();
        counts.add(zcmatrix_protocol::Outcome::Xfail);
        let g = GuestOutcome {
            status: Status::Completed,
            detail: "d".into(),
            accel: None,
            boot_ms: None,
            records: vec![
                hello,
                xfail,
                Record::Summary {
                    counts,
                    duration_ms: 1,
                },
            ],
            raw_lines: Vec::new(),
            splats: Vec::new(),
            notes: Vec::new(),
            may_retry: true,
        };
        let keys = [CellKey {
            fs: "tmpfs".into(),
            logical_block_size: None,
        }];
        Report::new(None, report::cells_of("6.1", None, &keys, &g, "g"))
    }

    #[test]
    fn a_report_of_another_schema_is_refused_as_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        // The head of a report.json that a schema 1 zcmatrix wrote.
        std::fs::write(
            dir.path().join("report.json"),
            r#"{"schema_version":1,"accel_note":null,"cells":[{"kernel_spec":"5.10",
               "status":"completed","results":[]}]}"#,
        )
        .unwrap();
        let out = dir.path().to_str().unwrap();
        assert_eq!(
            crate::run(["cargo xtask", "report", "--out", out]),
            exit::USAGE
        );
        assert!(!dir.path().join("report.md").exists());
        // The same folder rendered from a report this zcmatrix wrote.
        let r = report_with_a_hazard();
        std::fs::write(
            dir.path().join("report.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        assert_eq!(
            crate::run(["cargo xtask", "report", "--out", out]),
            exit::OK
        );
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("☣️ xfail | `dio.open`"), "{md}");
    }
}
