//! Builds the report's cells from what a guest streamed: kernel-scope results copied into every
//! cell of the guest, fs-scope results into their own, guest errors and the cell's status. The
//! model and every format live in the `zcmatrix-report` crate (shared with the harness's native
//! mode); they are re-exported here so the host keeps one path to them.

use zcmatrix_protocol::{Counts, MountReport, Record, SCHEMA_VERSION};
pub use zcmatrix_report::{
    Accel as CellAccel, Cell, GuestError, GuestErrorKind, GuestSummary, KernelFile, Report,
    RunInfo, Selection, Shard, Splat, FILES,
};

use crate::guest::{GuestOutcome, Status};
use crate::kernel::Kernel;
use crate::qemu::Accel;

/// The report's word for how a guest ran (the report also knows `native`, which no guest is).
fn cell_accel(a: Accel) -> CellAccel {
    match a {
        Accel::Kvm => CellAccel::Kvm,
        Accel::Tcg => CellAccel::Tcg,
    }
}

/// A filesystem target of one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellKey {
    pub fs: String,
    pub logical_block_size: Option<u32>,
}

/// Errors of a whole guest, in stream order: failed modules, harness errors, and what the host
/// notices about the stream itself.
pub fn guest_errors(guest: &GuestOutcome) -> Vec<GuestError> {
    let mut out = Vec::new();
    let mut received = Counts::default();
    let mut summary = None;
    for r in &guest.records {
        match r {
            Record::Hello { schema_version, .. } if *schema_version != SCHEMA_VERSION => {
                out.push(GuestError {
                    kind: GuestErrorKind::Stream,
                    message: format!(
                        "the harness speaks schema {schema_version}, the host {SCHEMA_VERSION}"
                    ),
                })
            }
            Record::Module {
                name,
                ok: false,
                detail,
            } => out.push(GuestError {
                kind: GuestErrorKind::Module,
                message: format!("{name}: {detail}"),
            }),
            Record::Error { message } => out.push(GuestError {
                kind: GuestErrorKind::Harness,
                message: message.clone(),
            }),
            Record::Result(c) => received.add(c.outcome),
            Record::Summary { counts, .. } => summary = Some(*counts),
            _ => {}
        }
    }
    if let Some(sent) = summary.filter(|s| *s != received) {
        out.push(GuestError {
            kind: GuestErrorKind::Stream,
            message: format!(
                "the harness sent {} but the host received {}",
                sent.describe(),
                received.describe()
            ),
        });
    }
    if let Some(first) = guest.raw_lines.first() {
        // A garbled line may have been a result: say so rather than lose it silently.
        out.push(GuestError {
            kind: GuestErrorKind::Stream,
            message: format!(
                "{} line(s) on the result port were not records (raw-lines.txt), the first: {}",
                guest.raw_lines.len(),
                first.chars().take(120).collect::<String>()
            ),
        });
    }
    out
}

/// Splits one guest's records into its cells.
pub fn cells_of(
    kernel_spec: &str,
    kernel: Option<&Kernel>,
    keys: &[CellKey],
    guest: &GuestOutcome,
    guest_dir: &str,
) -> Vec<Cell> {
    let release = guest.records.iter().find_map(|r| match r {
        Record::Hello { kernel_release, .. } => Some(kernel_release.clone()),
        _ => None,
    });
    // The build the guest says it runs (/proc/version), where the host knows no package (a
    // bzImage of one's own).
    let build = guest.records.iter().find_map(|r| match r {
        Record::Hello { kernel_build, .. } if !kernel_build.is_empty() => {
            Some(kernel_build.clone())
        }
        _ => None,
    });
    // What the guest itself said it is: never assumed from the flavour.
    let (arch, page_size) = guest
        .records
        .iter()
        .find_map(|r| match r {
            Record::Hello {
                machine, page_size, ..
            } => Some((
                (!machine.is_empty()).then(|| zcmatrix_report::arch_name(machine)),
                (*page_size != 0).then_some(*page_size),
            )),
            _ => None,
        })
        .unwrap_or((None, None));
    let guest_summary = GuestSummary::of(&guest.records);
    let guest_wide = guest_errors(guest);
    let mounts: Vec<&MountReport> = guest
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Mount(m) => Some(m),
            _ => None,
        })
        .collect();
    keys.iter()
        .map(|k| {
            let failed_mount = mounts
                .iter()
                .find(|m| m.fs == k.fs && m.logical_block_size == k.logical_block_size)
                .filter(|m| !m.ok);
            let mut errors = guest_wide.clone();
            if let Some(m) = failed_mount {
                errors.insert(
                    0,
                    GuestError {
                        kind: GuestErrorKind::Mount,
                        message: m.detail.clone(),
                    },
                );
            }
            // A guest that finished is only clean if nothing went wrong outside the checks; a
            // guest that died keeps saying how it died, its errors listed beside.
            let (status, status_detail) = match (guest.status, failed_mount) {
                (Status::Completed, Some(m)) => {
                    (Status::InfraError, format!("mount failed: {}", m.detail))
                }
                (Status::Completed, None) if !errors.is_empty() => (
                    Status::CompletedWithErrors,
                    format!(
                        "the harness finished, but with {} guest error(s); the first, {}: {}",
                        errors.len(),
                        errors[0].kind.as_str(),
                        errors[0].message
                    ),
                ),
                _ => (guest.status, guest.detail.clone()),
            };
            let (results, counts) =
                zcmatrix_protocol::cells::cell_results(&guest.records, &k.fs, k.logical_block_size);
            Cell {
                kernel_spec: kernel_spec.to_string(),
                kernel_release: release.clone(),
                kernel_package: kernel.and_then(|k| k.package.clone()),
                kernel_version: kernel.and_then(|k| k.version.clone()).or(build.clone()),
                kernel_substituted: kernel.and_then(|k| k.substituted.clone()),
                fs: k.fs.clone(),
                logical_block_size: k.logical_block_size,
                accel: guest.accel.map(cell_accel),
                boot_ms: guest.boot_ms,
                status,
                status_detail,
                guest_errors: errors,
                counts,
                guest_summary,
                guest_dir: guest_dir.to_string(),
                splats: guest.splats.clone(),
                retries: 0,
                notes: guest.notes.clone(),
                arch: arch.clone(),
                page_size,
                results,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcmatrix_protocol::{CheckResult, Outcome, Scope};

    fn result(
        check: &str,
        scope: Scope,
        fs: Option<&str>,
        outcome: Outcome,
        observed: &str,
    ) -> Record {
        Record::Result(CheckResult {
            check: check.into(),
            variant: None,
            scope,
            fs: fs.map(str::to_string),
            logical_block_size: fs.filter(|f| *f != "tmpfs").map(|_| 512),
            outcome,
            observed: observed.into(),
            expected: "ok".into(),
            evidence: "man | page".into(),
            detail: "d".into(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        })
    }

    fn guest() -> GuestOutcome {
        GuestOutcome {
            status: Status::Completed,
            detail: "harness finished".into(),
            accel: Some(Accel::Tcg),
            boot_ms: Some(3000),
            records: vec![
                Record::Hello {
                    schema_version: SCHEMA_VERSION,
                    kernel_release: "6.1.0-47-cloud-amd64".into(),
                    cmdline: String::new(),
                    mem_total_kb: 1,
                    uptime_ms: 1,
                    machine: "x86_64".into(),
                    page_size: 4096,
                    kernel_build: String::new(),
                },
                result(
                    "splice.no_pipe",
                    Scope::Kernel,
                    None,
                    Outcome::Pass,
                    "EINVAL",
                ),
                Record::Mount(MountReport {
                    fs: "ext4".into(),
                    logical_block_size: Some(512),
                    device: Some("/dev/vda".into()),
                    ok: true,
                    detail: "mounted".into(),
                }),
                result("dio.open", Scope::Fs, Some("ext4"), Outcome::Pass, "ok"),
                Record::Mount(MountReport {
                    fs: "xfs".into(),
                    logical_block_size: Some(512),
                    device: None,
                    ok: false,
                    detail: "no disk".into(),
                }),
                result(
                    "dio.open",
                    Scope::Fs,
                    Some("tmpfs"),
                    Outcome::Fail,
                    "EINVAL",
                ),
            ],
            raw_lines: vec![],
            splats: vec![],
            notes: Vec::new(),
            may_retry: true,
        }
    }

    fn keys() -> Vec<CellKey> {
        vec![
            CellKey {
                fs: "ext4".into(),
                logical_block_size: Some(512),
            },
            CellKey {
                fs: "xfs".into(),
                logical_block_size: Some(512),
            },
            CellKey {
                fs: "tmpfs".into(),
                logical_block_size: None,
            },
        ]
    }

    #[test]
    fn kernel_scope_results_land_in_every_cell_and_fs_results_in_their_own() {
        let cells = cells_of("6.1", None, &keys(), &guest(), "guests/6.1");
        assert_eq!(cells.len(), 3);
        let ids = |c: &Cell| {
            c.results
                .iter()
                .map(|r| r.check.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&cells[0]), ["splice.no_pipe", "dio.open"]);
        assert_eq!(ids(&cells[1]), ["splice.no_pipe"]);
        assert_eq!(ids(&cells[2]), ["splice.no_pipe", "dio.open"]);
        assert!(cells
            .iter()
            .all(|c| c.kernel_release.as_deref() == Some("6.1.0-47-cloud-amd64")));
    }

    /// The guest's own word for its build (/proc/version's point release) is the cell's
    /// kernel version where the host knows no package.
    #[test]
    fn the_guest_names_its_build_where_the_host_knows_no_package() {
        let mut g = guest();
        if let Record::Hello { kernel_build, .. } = &mut g.records[0] {
            *kernel_build = "6.1.192-2".into();
        }
        let cells = cells_of("6.1", None, &keys(), &g, "g");
        assert!(cells
            .iter()
            .all(|c| c.kernel_version.as_deref() == Some("6.1.192-2")));
    }

    /// The host's notes (modules asked for and not found) reach every cell of the guest and
    /// leave its status alone: a kernel without kTLS is no broken guest.
    #[test]
    fn host_notes_reach_the_cells_without_making_them_errors() {
        let mut g = guest();
        g.notes = vec!["module tls: asked for and not found".into()];
        let cells = cells_of("5.10", None, &keys(), &g, "g");
        assert!(cells.iter().all(|c| c.notes == g.notes));
        assert_eq!(cells[0].status, Status::Completed);
        let md = Report::new(None, cells).markdown();
        assert!(
            md.contains("Notes from the host:\n- 5.10: module tls: asked for and not found\n"),
            "{md}"
        );
    }

    #[test]
    fn a_failed_mount_makes_its_cell_an_infrastructure_error() {
        let cells = cells_of("6.1", None, &keys(), &guest(), "g");
        assert_eq!(cells[0].status, Status::Completed);
        assert_eq!(cells[1].status, Status::InfraError);
        assert!(cells[1].status_detail.contains("no disk"));
    }

    #[test]
    fn json_carries_schema_version_and_cell_fields() {
        let r = Report::new(None, cells_of("6.1", None, &keys(), &guest(), "g"));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        let c = &v["cells"][2];
        for f in [
            "kernel_spec",
            "kernel_release",
            "kernel_package",
            "kernel_version",
            "fs",
            "logical_block_size",
            "accel",
            "boot_ms",
            "status",
            "guest_errors",
            "counts",
            "guest_summary",
            "results",
        ] {
            assert!(c.get(f).is_some(), "missing {f}");
        }
        assert_eq!(c["logical_block_size"], serde_json::Value::Null);
        assert_eq!(c["status"], "completed");
        assert_eq!(c["accel"], "tcg");
    }

    /// One guest's records around `extra`, with a summary that matches the results it carries.
    fn finished_guest(extra: Vec<Record>) -> GuestOutcome {
        let mut g = guest();
        g.records.extend(extra);
        let mut counts = Counts::default();
        for r in &g.records {
            if let Record::Result(c) = r {
                counts.add(c.outcome);
            }
        }
        g.records.push(Record::Summary {
            counts,
            duration_ms: 5,
        });
        g
    }

    #[test]
    fn guest_errors_are_carried_into_cells_and_into_report_json() {
        let g = finished_guest(vec![
            Record::Module {
                name: "btrfs".into(),
                ok: false,
                detail: "ENOEXEC".into(),
            },
            Record::Error {
                message: "swap: no disk with serial \"zc-swap\"".into(),
            },
        ]);
        let cells = cells_of("6.1", None, &keys(), &g, "g");
        let kinds = |c: &Cell| c.guest_errors.iter().map(|e| e.kind).collect::<Vec<_>>();
        use GuestErrorKind::*;
        // Guest-wide errors in every cell; a mount error only in its own.
        assert_eq!(kinds(&cells[0]), [Module, Harness]);
        assert_eq!(kinds(&cells[1]), [Mount, Module, Harness]);
        assert_eq!(cells[0].guest_errors[0].message, "btrfs: ENOEXEC");
        let v = serde_json::to_value(Report::new(None, cells)).unwrap();
        assert_eq!(v["cells"][0]["guest_errors"][1]["kind"], "harness");
        assert!(v["cells"][0]["guest_errors"][1]["message"]
            .as_str()
            .unwrap()
            .starts_with("swap:"));
        assert_eq!(v["cells"][1]["guest_errors"][0]["kind"], "mount");
        assert_eq!(v["cells"][0]["guest_summary"]["counts"]["fail"], 1);
        assert_eq!(v["cells"][0]["counts"]["pass"], 2);
    }

    #[test]
    fn a_finished_guest_with_errors_is_not_a_clean_completion() {
        let swap = Record::Error {
            message: "swap: swapon /dev/vdb: EINVAL".into(),
        };
        let module = Record::Module {
            name: "xfs".into(),
            ok: false,
            detail: "Unknown symbol".into(),
        };
        for (extra, status) in [
            (vec![], Status::Completed),
            (vec![swap], Status::CompletedWithErrors),
            (vec![module], Status::CompletedWithErrors),
        ] {
            let cells = cells_of("6.1", None, &keys(), &finished_guest(extra), "g");
            // ext4 mounted; xfs did not, which outranks any guest-wide error.
            assert_eq!(cells[0].status, status, "{}", cells[0].status_detail);
            assert_eq!(cells[1].status, Status::InfraError);
        }
    }

    #[test]
    fn the_host_notices_a_stream_that_lost_or_garbled_records() {
        let mut g = finished_guest(vec![]);
        // The harness says it sent one more pass than arrived, and a line was not a record.
        let Some(Record::Summary { counts, .. }) = g.records.last_mut() else {
            unreachable!()
        };
        counts.add(Outcome::Pass);
        g.raw_lines.push("{\"type\":\"res".into());
        let errs = guest_errors(&g);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.kind == GuestErrorKind::Stream));
        assert!(
            errs[0].message.contains("3 pass, 1 fail"),
            "{}",
            errs[0].message
        );
        assert!(errs[1].message.contains("1 line(s)"), "{}", errs[1].message);
        // A guest that died keeps its status: it did not finish, errors or not.
        g.status = Status::Timeout;
        let cells = cells_of("6.1", None, &keys(), &g, "g");
        assert_eq!(cells[0].status, Status::Timeout);
        assert_eq!(cells[0].guest_errors.len(), 2);
    }
}
