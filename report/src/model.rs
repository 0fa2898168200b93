//! What `report.json` holds: cells (kernel × filesystem × disk geometry) with their results.
//!
//! Kernel-scope results (checks that do not depend on a filesystem) are copied into every cell of
//! the guest that measured them, so each cell is complete on its own.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zcmatrix_protocol::{CheckResult, Counts, Outcome, Record, SCHEMA_VERSION};

/// How a cell's guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The harness sent its summary and the guest reported no error outside the checks.
    Completed,
    /// The harness sent its summary, but the guest also reported errors outside any check (a
    /// module that did not load, no swap, no loopback, a garbled stream): results are real, yet
    /// some checks may have skipped for want of what the set-up should have provided. Only
    /// `vm::report::cells_of` decides this; `vm::guest::classify` never returns it.
    CompletedWithErrors,
    /// The run deadline passed with the harness between checks (mounting, say).
    Timeout,
    /// No record within the boot deadline: the guest never reached the harness.
    BootTimeout,
    /// The run deadline passed while a check was running; the detail names it.
    CheckTimeout,
    /// The console shows a kernel panic.
    Panic,
    /// QEMU ended without a summary and without a panic on the console.
    QemuExited,
    /// The user stopped the run before this guest finished, or before it started.
    Interrupted,
    InfraError,
}

impl Status {
    /// The word used in report.json and report.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::CompletedWithErrors => "completed_with_errors",
            Status::Timeout => "timeout",
            Status::BootTimeout => "boot_timeout",
            Status::CheckTimeout => "check_timeout",
            Status::Panic => "panic",
            Status::QemuExited => "qemu_exited",
            Status::Interrupted => "interrupted",
            Status::InfraError => "infra_error",
        }
    }
}

/// How the guest's CPU ran; `native` for a harness run on the host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    Kvm,
    Tcg,
    Native,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::Native => "native",
        }
    }
}

/// The architecture name reports use (`x86_64`, `arm64`, `ppc64le`, the names of `--arch`) for
/// what `uname -m` says in a guest (`aarch64` is `arm64`).
pub fn arch_name(uname_machine: &str) -> String {
    match uname_machine {
        "aarch64" | "arm64" => "arm64".into(),
        "ppc64le" | "ppc64el" => "ppc64le".into(),
        m => m.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub kernel_spec: String,
    /// `uname -r` inside the guest, from the harness's hello: `None` means the harness never
    /// started (the guest did not boot that far).
    pub kernel_release: Option<String>,
    pub kernel_package: Option<String>,
    pub kernel_version: Option<String>,
    /// Set when the locked build had left the archive and another build of the series was used.
    pub kernel_substituted: Option<String>,
    pub fs: String,
    pub logical_block_size: Option<u32>,
    /// The guest's architecture as the harness saw it (`x86_64`, `arm64`, `ppc64le`); `None`
    /// when the harness never started or is older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The kernel's page size in bytes, read in the guest; `None` as for `arch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    pub accel: Option<Accel>,
    pub boot_ms: Option<u64>,
    pub status: Status,
    pub status_detail: String,
    /// What went wrong in the guest outside any check. Guest-wide errors (modules, harness,
    /// stream) are copied into every cell of the guest, like kernel-scope results; a mount
    /// error only into its own cell.
    pub guest_errors: Vec<GuestError>,
    /// This cell's results by outcome.
    pub counts: Counts,
    /// The harness's closing record, over the whole guest (every cell of it); `None` when it
    /// never arrived, i.e. the guest died or gave up before finishing.
    pub guest_summary: Option<GuestSummary>,
    /// Folder (relative to the report) with this guest's console log and raw result stream.
    pub guest_dir: String,
    /// Kernel warnings, sanitizer reports, lockups and stalls on the guest's console (copied
    /// into every cell of the guest); the results stand, but the kernel was not well.
    #[serde(default)]
    pub splats: Vec<Splat>,
    /// How many times the guest was started again after an infrastructure failure; the cell is
    /// the last attempt's.
    #[serde(default)]
    pub retries: u32,
    /// What the host has to say about the cell that is neither an error nor a result: the
    /// optional modules it asked this kernel for and did not find (kernel TLS where the
    /// kernel has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub results: Vec<CheckResult>,
}

/// Something the kernel printed that says it is unwell, even if the guest went on: a warning, a
/// sanitizer report, a lockup, a stall, a lockdep report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splat {
    /// `warning`, `bug`, `kasan`, `ubsan`, `soft_lockup`, `hung_task`, `rcu_stall`, `lockdep`.
    pub kind: String,
    /// The line that matched and the few after it, as the console showed them.
    pub excerpt: String,
}

/// Something the guest reported (or the host noticed in its stream) outside any check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestErrorKind {
    /// A `module` record with `ok: false`.
    Module,
    /// A `mount` record with `ok: false` (the cell is then `infra_error`).
    Mount,
    /// An `error` record: set-up the harness could not do (swap, loopback) or its giving up.
    Harness,
    /// The record stream itself: lines that were not records, a hello of another schema, or a
    /// summary whose counts differ from the results that arrived (records were lost).
    Stream,
}

impl GuestErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestErrorKind::Module => "module",
            GuestErrorKind::Mount => "mount",
            GuestErrorKind::Harness => "harness",
            GuestErrorKind::Stream => "stream",
        }
    }
}

/// The harness's `summary` record as the host received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSummary {
    pub counts: Counts,
    pub duration_ms: u64,
}

impl GuestSummary {
    /// The `summary` record of a stream, if it arrived.
    pub fn of(records: &[Record]) -> Option<GuestSummary> {
        records.iter().find_map(|r| match r {
            Record::Summary {
                counts,
                duration_ms,
            } => Some(GuestSummary {
                counts: *counts,
                duration_ms: *duration_ms,
            }),
            _ => None,
        })
    }
}

impl Cell {
    /// `6.1 ext4/4096`: the cell as every format names it.
    pub fn label(&self) -> String {
        format!("{} {}", self.kernel_spec, self.target())
    }

    /// `ext4/4096`, or `tmpfs`: the filesystem and geometry without the kernel.
    pub fn target(&self) -> String {
        match self.logical_block_size {
            Some(b) => format!("{}/{}", self.fs, b),
            None => self.fs.clone(),
        }
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    /// Whether a result of this cell makes the run unsuccessful (`fail` or `error`).
    pub fn any_failed(&self) -> bool {
        self.results.iter().any(|r| r.outcome.is_failure())
    }

    /// The guest's console log, relative to the report folder.
    pub fn console_log(&self) -> String {
        format!("{}/console.log", self.guest_dir)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// Said when `auto` acceleration fell back to TCG.
    pub accel_note: Option<String>,
    pub cells: Vec<Cell>,
    /// What run wrote this report (selection, shard, lock, version), so that shards can be
    /// merged safely. Absent from reports written before sharding (still schema 2) and from
    /// native runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
}

/// The identity of a run: two reports can only be parts of one run if everything here but the
/// shard is the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub selection: Selection,
    /// Set when this report is one shard of the selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// sha256 of the kernels.lock the run started from; `None` when there was none.
    pub lock_sha256: Option<String>,
    pub zcmatrix_version: String,
    /// The files a user gave as kernels (distribution packages, images), with their sha256:
    /// what the lock is to Debian's series, this is to a kernel of the user's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_files: Vec<KernelFile>,
}

/// One file of a kernel the user gave (`--kernel FILE.deb`, `--kernel /boot/vmlinuz-X`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFile {
    /// The kernel's label in the selection.
    pub kernel: String,
    pub path: String,
    pub sha256: String,
}

/// The matrix as selected on the command line, after defaults and deduplication: what decides
/// which cells exist and what their results may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Kernel labels, in plan order.
    pub kernels: Vec<String>,
    pub filesystems: Vec<String>,
    pub geometries: Vec<u32>,
    pub checks: Vec<String>,
    pub memory_mb: u32,
    pub kernel_args: Vec<String>,
    /// Which checks and sizes ran (`quick` or `full`).
    #[serde(default)]
    pub profile: zcmatrix_protocol::Profile,
}

/// Shard `index` of `count` (1-based), and the kernels it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    pub kernels: Vec<String>,
}

/// The files every report folder gets, rendered from one model.
pub const FILES: [&str; 4] = ["report.json", "report.md", "report.html", "junit.xml"];

impl Report {
    pub fn new(accel_note: Option<String>, cells: Vec<Cell>) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            accel_note,
            cells,
            run: None,
        }
    }

    /// Reads a report.json written by this version of zcmatrix. Another schema is refused by its
    /// number before any field is looked at: an old report would otherwise fail on whichever
    /// field changed first, with a message that says nothing about versions.
    pub fn from_json(text: &str) -> Result<Report, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema_version").and_then(|n| n.as_u64()) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "it has schema_version {n}, but this zcmatrix reads only {SCHEMA_VERSION} \
                     (the outcome vocabulary and cell fields changed); run `cargo xtask \
                     test-matrix` again, or render it with the zcmatrix that wrote it"
                ))
            }
            None => return Err("it has no schema_version: not a zcmatrix report".into()),
        }
        serde_json::from_value(v).map_err(|e| format!("schema {SCHEMA_VERSION} but malformed: {e}"))
    }

    /// Reads `report.json`, or the `report.json` inside a report folder.
    pub fn load(path: &Path) -> Result<Report, String> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Report::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))
    }

    pub fn any_failed(&self) -> bool {
        self.cells.iter().any(Cell::any_failed)
    }

    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("a report always serialises");
        json.push('\n');
        json
    }

    /// Said at the top of every format of a shard's report, so that one shard is never read as
    /// the whole matrix.
    pub fn shard_note(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        let s = run.shard.as_ref()?;
        let kernels = if s.kernels.is_empty() {
            "no kernel: nothing was booted".to_string()
        } else {
            format!("kernels {}", s.kernels.join(", "))
        };
        Some(format!(
            "Shard {}/{} of a matrix of kernels {} ({kernels}); cargo xtask report merge joins \
             every shard into the whole report.",
            s.index,
            s.count,
            run.selection.kernels.join(", ")
        ))
    }

    /// Which profile the run measured, said whenever the run's selection is known: `quick`
    /// leaves checks out, and a reader comparing reports must know.
    pub fn profile_note(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        Some(match run.selection.profile {
            zcmatrix_protocol::Profile::Quick => "Profile quick: a filesystem on several disk \
                block sizes runs the checks the block size can change (direct I/O) on each and \
                the rest on its largest only; one mTHP size (64k) of the copy-on-write checks; \
                no multi-gigabyte page-cache reads (sendfile.max_count before 6.5 is a skip). \
                cargo xtask test-matrix --profile full measures everything everywhere."
                .to_string(),
            zcmatrix_protocol::Profile::Full => {
                "Profile full: every check at every size.".to_string()
            }
        })
    }

    /// Kernel specs in the order their first cell appears.
    pub fn kernels(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.cells {
            if !out.contains(&c.kernel_spec.as_str()) {
                out.push(&c.kernel_spec);
            }
        }
        out
    }
}

/// The family of a check id: `dio` of `dio.open`.
pub fn family(check: &str) -> &str {
    check.split('.').next().unwrap_or(check)
}

/// The mark of an outcome; only `pass` is a green tick.
pub fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "✅",
        Outcome::Fail => "❌",
        Outcome::Skip => "➖",
        Outcome::Error => "⚠️",
        Outcome::Xfail => "☣️",
        Outcome::Xpass => "🆕",
        Outcome::Info => "📏",
    }
}

/// Small hand-built reports for the renderers' tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use zcmatrix_protocol::Scope;

    pub fn result(
        check: &str,
        fs: Option<(&str, Option<u32>)>,
        o: Outcome,
        obs: &str,
    ) -> CheckResult {
        let (check, variant) = match check.split_once('[') {
            Some((c, v)) => (c.to_string(), Some(v.trim_end_matches(']').to_string())),
            None => (check.to_string(), None),
        };
        CheckResult {
            check,
            variant,
            scope: if fs.is_some() {
                Scope::Fs
            } else {
                Scope::Kernel
            },
            fs: fs.map(|f| f.0.to_string()),
            logical_block_size: fs.and_then(|f| f.1),
            outcome: o,
            observed: obs.into(),
            expected: obs.into(),
            evidence: "open(2)".into(),
            detail: if o == Outcome::Skip {
                "no THP here".into()
            } else {
                String::new()
            },
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        }
    }

    /// A result that measured `measures`, its observation their `name=value` text (as the
    /// harness writes its numbers).
    pub fn measured(
        check: &str,
        fs: Option<(&str, Option<u32>)>,
        o: Outcome,
        measures: &[(&str, f64)],
    ) -> CheckResult {
        let text: Vec<String> = measures.iter().map(|(n, v)| format!("{n}={v}")).collect();
        CheckResult {
            measures: measures
                .iter()
                .map(|&(n, v)| zcmatrix_protocol::Measure::new(n, v, ""))
                .collect(),
            ..result(check, fs, o, &text.join(" "))
        }
    }

    pub fn cell(kernel: &str, fs: &str, lbs: Option<u32>, results: Vec<CheckResult>) -> Cell {
        let mut counts = Counts::default();
        results.iter().for_each(|r| counts.add(r.outcome));
        Cell {
            kernel_spec: kernel.into(),
            kernel_release: Some(format!("{kernel}.0-1-cloud-amd64")),
            kernel_package: Some(format!("linux-image-{kernel}-cloud-amd64")),
            kernel_version: Some(format!("{kernel}.1-1")),
            kernel_substituted: None,
            fs: fs.into(),
            logical_block_size: lbs,
            accel: Some(Accel::Tcg),
            boot_ms: Some(2000),
            status: Status::Completed,
            status_detail: "harness finished".into(),
            guest_errors: vec![],
            counts,
            guest_summary: None,
            guest_dir: format!("guests/{kernel}"),
            splats: vec![],
            retries: 0,
            notes: vec![],
            arch: None,
            page_size: None,
            results,
        }
    }

    /// Two kernels × (ext4/4096, tmpfs): dio.align changes 4096 → 512 on ext4/4096 from 6.1,
    /// dio.tmpfs differs between filesystems, cow.leak is a hazard on 5.10 only, dio.open is
    /// the same everywhere.
    pub fn two_kernels() -> Report {
        let mut cells = Vec::new();
        for k in ["5.10", "6.1"] {
            let old = k == "5.10";
            let kernel_scope = || {
                vec![
                    if old {
                        result("cow.leak[thp]", None, Outcome::Xfail, "leak")
                    } else {
                        result("cow.leak[thp]", None, Outcome::Pass, "isolated")
                    },
                    result("cow.leak[base]", None, Outcome::Pass, "isolated"),
                    result("cow.leak[mthp]", None, Outcome::Skip, "-"),
                ]
            };
            let mut ext4 = kernel_scope();
            ext4.push(result(
                "dio.open",
                Some(("ext4", Some(4096))),
                Outcome::Pass,
                "ok",
            ));
            ext4.push(result(
                "dio.align",
                Some(("ext4", Some(4096))),
                Outcome::Pass,
                if old { "4096" } else { "512" },
            ));
            let mut tmpfs = kernel_scope();
            tmpfs.push(result(
                "dio.open",
                Some(("tmpfs", None)),
                Outcome::Pass,
                "ok",
            ));
            tmpfs.push(result(
                "dio.align",
                Some(("tmpfs", None)),
                Outcome::Pass,
                "EINVAL",
            ));
            cells.push(cell(k, "ext4", Some(4096), ext4));
            cells.push(cell(k, "tmpfs", None, tmpfs));
        }
        Report::new(None, cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_schema_is_read_back_and_files_are_written() {
        let r = fixture::two_kernels();
        assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
        let v1 = r#"{"schema_version":1,"accel_note":null,"cells":[]}"#;
        let e = Report::from_json(v1).unwrap_err();
        assert!(
            e.contains("schema_version 1") && e.contains(&format!("only {SCHEMA_VERSION}")),
            "{e}"
        );
        assert!(Report::from_json("{}")
            .unwrap_err()
            .contains("no schema_version"));
        assert!(Report::from_json("nope").unwrap_err().contains("not JSON"));
        let dir = tempfile::tempdir().unwrap();
        r.write_all(dir.path()).unwrap();
        for f in FILES {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        assert_eq!(Report::load(dir.path()).unwrap(), r);
        assert_eq!(r.kernels(), ["5.10", "6.1"]);
        assert_eq!(r.cells[0].label(), "5.10 ext4/4096");
        assert_eq!(r.cells[1].label(), "5.10 tmpfs");
    }
}
