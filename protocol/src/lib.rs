//! What crosses the guest boundary: the manifest the host puts into the initramfs, and the result
//! records the harness streams back, one JSON object a line.
//!
//! Both sides depend on this crate so that a field renamed on one side cannot silently vanish on
//! the other. Bump [`SCHEMA_VERSION`] whenever a field changes meaning or disappears.

use serde::{Deserialize, Serialize};

pub mod catalogue;
pub mod cells;
pub mod ktap;
pub mod net;
pub mod target;

/// Version of the record stream and of `report.json`.
pub const SCHEMA_VERSION: u32 = 2;

/// Where the manifest sits inside the initramfs.
pub const MANIFEST_PATH: &str = "/manifest.json";

/// The serial port that carries records in a guest. The console (ttyS0) stays human-readable and
/// separate, so kernel messages can never corrupt a record.
pub const RESULT_PORT: &str = "/dev/ttyS1";

/// The name of the virtio-serial port that carries records where the machine has no second
/// serial port (arm64 `virt`, ppc64le `pseries`); the harness looks for it under
/// `/sys/class/virtio-ports/*/name` before falling back to [`RESULT_PORT`].
pub const RESULT_PORT_NAME: &str = "zcmatrix.results";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Run once per guest (or host), independent of any filesystem.
    Kernel,
    /// Run once per mounted filesystem under test.
    Fs,
}

/// What one check on one target came to. The vocabulary of KTAP/kselftest and LTP, so that a
/// documented kernel hazard never shows as a green tick and a measurement never as a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The kernel did what the documented rule says, and that is not a hazard.
    Pass,
    /// The kernel contradicts the rule: news (the rule or the kernel is wrong).
    Fail,
    /// The kernel did what the rule says, and that is a documented hazard (a leak, an unreliable
    /// pin, wrong data): a known problem, never a green tick.
    Xfail,
    /// The rule predicted a hazard here and the kernel behaved well (a backport, a distro patch).
    Xpass,
    /// The precondition could not be created here; `detail` says why.
    Skip,
    /// The probe broke: an unexpected errno, a crash, a deadline.
    Error,
    /// A measurement with no verdict; its value is the product.
    Info,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Xfail,
        Outcome::Xpass,
        Outcome::Skip,
        Outcome::Error,
        Outcome::Info,
    ];

    /// The word used in records, reports and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
            Outcome::Skip => "skip",
            Outcome::Error => "error",
            Outcome::Info => "info",
        }
    }

    /// Whether this outcome makes a run unsuccessful: the kernel contradicted a rule, or a probe
    /// could not finish. Hazards the rules predict (`xfail`) and good news (`xpass`) do not.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error)
    }
}

/// How many results of each outcome; the summary of a run, a guest or a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pass: u32,
    pub fail: u32,
    pub xfail: u32,
    pub xpass: u32,
    pub skip: u32,
    pub error: u32,
    pub info: u32,
}

impl Counts {
    pub fn add(&mut self, o: Outcome) {
        *self.slot(o) += 1;
    }

    pub fn get(&self, o: Outcome) -> u32 {
        match o {
            Outcome::Pass => self.pass,
            Outcome::Fail => self.fail,
            Outcome::Xfail => self.xfail,
            Outcome::Xpass => self.xpass,
            Outcome::Skip => self.skip,
            Outcome::Error => self.error,
            Outcome::Info => self.info,
        }
    }

    fn slot(&mut self, o: Outcome) -> &mut u32 {
        match o {
            Outcome::Pass => &mut self.pass,
            Outcome::Fail => &mut self.fail,
            Outcome::Xfail => &mut self.xfail,
            Outcome::Xpass => &mut self.xpass,
            Outcome::Skip => &mut self.skip,
            Outcome::Error => &mut self.error,
            Outcome::Info => &mut self.info,
        }
    }

    pub fn total(&self) -> u32 {
        Outcome::ALL.iter().map(|&o| self.get(o)).sum()
    }

    /// `12 pass, 1 xfail, 3 skip`: the non-zero counts in outcome order.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|&&o| self.get(o) > 0)
            .map(|&o| format!("{} {}", self.get(o), o.as_str()))
            .collect();
        if parts.is_empty() {
            "no results".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One check run on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable id `family.name`, without the variant.
    pub check: String,
    /// The backing or flavour a check runs over, shown in brackets after the id.
    pub variant: Option<String>,
    pub scope: Scope,
    /// Filesystem label for `fs` scope; `None` for `kernel` scope.
    pub fs: Option<String>,
    /// Logical block size of the disk under the filesystem (`None` for tmpfs and kernel scope).
    pub logical_block_size: Option<u32>,
    pub outcome: Outcome,
    /// Short text of what the kernel did: `EINVAL`, `ok`, `512`, `leak`, ...
    pub observed: String,
    /// What the rule expects on this kernel, in the same vocabulary as `observed`.
    pub expected: String,
    /// Where the rule comes from: a man page section or a commit title.
    pub evidence: String,
    pub detail: String,
    pub duration_ms: u64,
    /// How far the observed numbers may move between two runs of one kernel before `report
    /// diff` calls it a change, declared by the check next to its rule. Absent in records
    /// written before it existed (read as [`Tolerance::legacy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
    /// The numbers of `observed`, typed: what charts, `report diff` and the cost section read
    /// (the host never parses `observed`, which is for people). Absent in records written
    /// before it existed, and where the observation is no number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Measure>,
}

/// One labelled number a check measured: `major` faults, `cpu_pct`, `default_pmds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// Unique within a result; stable across runs, since `report diff` pairs measures by it.
    pub name: String,
    pub value: f64,
    /// `%`, `us/MiB`, `ms`, `bytes`; empty for a count or where the check states none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

impl Measure {
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Measure {
        Measure {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

impl CheckResult {
    /// The value of the measure called `name`, if this result has it.
    pub fn measure(&self, name: &str) -> Option<f64> {
        self.measures
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The words of `observed` that are numbers (`512`, `max=1048576`, `minor:65`) when
    /// `measures` has fewer entries than them: the numbers its probe wrote for people and left
    /// untyped. Every probe types what it writes, so this is empty for every result; the tests
    /// hold each result they see to that. Not a way to read numbers: the host reads `measures`.
    pub fn untyped_numbers(&self) -> Vec<&str> {
        let numbers: Vec<&str> = self
            .observed
            .split_whitespace()
            .filter(|word| {
                word.trim_end_matches(',')
                    .rsplit(['=', ':'])
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            })
            .collect();
        if numbers.len() > self.measures.len() {
            numbers
        } else {
            Vec::new()
        }
    }
}

/// The `cost` family's variants, `<sink>_<temperature>`: declared here once, since the
/// harness builds its checks over them and the report orders its table's columns by them.
pub mod cost {
    /// Every variant, in the report's column order.
    pub const VARIANTS: [&str; 6] = [
        "file_warm",
        "file_cold",
        "tcp_warm",
        "tcp_cold",
        "nic_warm",
        "nic_cold",
    ];
    /// The variants whose sink is a file.
    pub const FILE_VARIANTS: &[&str] = VARIANTS.split_at(2).0;
    /// The variants whose sink is a socket (loopback TCP, or virtio-net to the host).
    pub const SOCKET_VARIANTS: &[&str] = VARIANTS.split_at(2).1;
}

/// How `report diff` compares two observations of one check on one kernel and target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "compare", rename_all = "snake_case")]
pub enum Tolerance {
    /// A fact (an errno, a count the kernel decides): any change of the value is a change.
    Exact,
    /// A measurement that moves with the machine (fault counts of a cold scan, a timing
    /// ratio): the same labelled numbers, each within `abs` or `pct` % of the larger of the two.
    Numbers { abs: f64, pct: f64 },
    /// Timings (the cost family): the values move with the machine's load; only the outcome
    /// counts.
    OutcomeOnly,
}

impl Tolerance {
    /// What a record without a declared tolerance gets: timings of the cost family compared by
    /// outcome (as before the field existed), every other value exactly.
    pub fn legacy(check: &str) -> Tolerance {
        if check.split('.').next() == Some("cost") {
            Tolerance::OutcomeOnly
        } else {
            Tolerance::Exact
        }
    }
}

impl CheckResult {
    /// The tolerance this result declares, or [`Tolerance::legacy`]'s.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
            .unwrap_or_else(|| Tolerance::legacy(&self.check))
    }

    /// `family.name[variant]`, the id a user sees and filters on.
    pub fn full_id(&self) -> String {
        full_id(&self.check, self.variant.as_deref())
    }
}

/// The console line (ttyS0) the harness prints before each check, followed by the check's full
/// id, ` on ` and the target: the record comes only when the check ends, so this is how the host
/// names the check a guest was in when it stopped answering.
pub const CONSOLE_CHECK_START: &str = "zcmatrix: check ";

pub fn full_id(check: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{check}[{v}]"),
        None => check.to_string(),
    }
}

/// A check filter as users write it: `*` and `?` are wildcards, and brackets are literal so that
/// `cow.*[thp]` means the `thp` variant (not a character class).
#[derive(Debug, Clone)]
pub struct CheckFilter(glob::Pattern);

impl CheckFilter {
    pub fn new(filter: &str) -> Result<CheckFilter, String> {
        let escaped: String = filter
            .chars()
            .map(|c| match c {
                '[' => "[[]".to_string(),
                ']' => "[]]".to_string(),
                c => c.to_string(),
            })
            .collect();
        glob::Pattern::new(&escaped)
            .map(CheckFilter)
            .map_err(|e| format!("bad check filter {filter:?}: {e}"))
    }

    pub fn matches(&self, full_id: &str) -> bool {
        self.0.matches(full_id)
    }
}

/// Checks every filter against the known ids; the error names the filter that matches nothing
/// and the families there are.
pub fn validate_filters(filters: &[String], ids: &[String]) -> Result<Vec<CheckFilter>, String> {
    let mut out = Vec::new();
    for f in filters {
        let cf = CheckFilter::new(f)?;
        if !ids.iter().any(|id| cf.matches(id)) {
            let mut families: Vec<&str> = ids.iter().filter_map(|i| i.split('.').next()).collect();
            families.dedup();
            return Err(format!(
                "check filter {f:?} matches no check; families: {} (`cargo run -p harness -- list` shows every id)",
                families.join(", ")
            ));
        }
        out.push(cf);
    }
    Ok(out)
}

/// A filesystem the guest mounted (or failed to mount) before running checks on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountReport {
    pub fs: String,
    pub logical_block_size: Option<u32>,
    pub device: Option<String>,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// First record: who is answering.
    Hello {
        schema_version: u32,
        kernel_release: String,
        cmdline: String,
        mem_total_kb: u64,
        /// Milliseconds since the kernel started, read from /proc/uptime when the harness began.
        uptime_ms: u64,
        /// `uname -m` in the guest (`x86_64`, `aarch64`, `ppc64le`); empty from an older harness.
        #[serde(default)]
        machine: String,
        /// The kernel's page size in bytes (`sysconf(_SC_PAGESIZE)`); 0 from an older harness.
        #[serde(default)]
        page_size: u32,
        /// The distribution build the kernel is, from /proc/version (`5.10.262-1`: Debian's
        /// release string keeps `.0`, this has the real point release); empty when it names
        /// none, or from an older harness.
        #[serde(default)]
        kernel_build: String,
    },
    /// A module the harness loaded or failed to load.
    Module {
        name: String,
        ok: bool,
        detail: String,
    },
    Mount(MountReport),
    Result(CheckResult),
    /// Something went wrong outside any check (a panic in the harness, a missing manifest).
    Error {
        message: String,
    },
    /// Last record. Its absence means the run died before finishing.
    Summary {
        counts: Counts,
        duration_ms: u64,
    },
}

impl Record {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("records always serialise");
        s.push('\n');
        s
    }
}

/// How much a run measures. `quick`, the default, fits the default matrix's time budget: it
/// leaves out the checks that cost the most guest time for the least news (most mTHP sizes,
/// and measurements that read gigabytes through the page cache on older kernels); `full` runs
/// every check at every size.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Quick,
    Full,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

/// A target the guest must prepare before running `fs`-scope checks on it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FsTarget {
    /// `ext4`, `xfs`, `btrfs`, `tmpfs` (the `-t` of mount(2)); `overlay` (overlayfs whose
    /// layers are directories of an ext4 disk); `ext4-dax`, `xfs-dax` (that filesystem on
    /// persistent memory, mounted with DAX).
    pub fs: String,
    /// Virtio serial of the disk holding it (for overlay, the ext4 disk of its layers); `None`
    /// for tmpfs and the DAX targets.
    pub disk_serial: Option<String>,
    pub logical_block_size: Option<u32>,
    /// Guest-physical start of the persistent-memory region (declared by `memmap=` on x86_64,
    /// by a device-tree node on arm64) holding a DAX target's filesystem.
    #[serde(default)]
    pub pmem_start: Option<u64>,
    /// Why this kernel cannot have this target (its modules lack what it needs): the guest
    /// mounts nothing and every fs-scope check on it is a skip with this reason.
    #[serde(default)]
    pub unavailable: Option<String>,
}

/// Whether `s` is a kernel series `--judge-as` accepts: `X.Y` or `X.Y.Z`, numbers only. The
/// host's plan refuses anything else before a guest boots, and the harness (natively, or
/// reading its manifest) by the same rule.
pub fn is_kernel_series(s: &str) -> bool {
    // Each part a number that fits a version's u32: a digit string that overflows would
    // otherwise be read as 0 (or refused only inside the booted guest).
    let parts: Vec<&str> = s.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok())
}

/// What `--judge-as` says to a word that is not a series.
pub fn not_a_series(s: &str) -> String {
    format!("--judge-as {s:?}: expected a kernel series like 7.2 or 5.10.160")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// The result port's modules in initramfs paths, in load order: the harness loads them
    /// before it opens the port (empty where the kernel builds the port's drivers in).
    #[serde(default)]
    pub port_modules: Vec<String>,
    /// The other modules in initramfs paths, in load order (dependencies first), loaded after
    /// `port_modules`.
    pub modules: Vec<String>,
    pub targets: Vec<FsTarget>,
    /// Check filters (globs over full ids); empty means all.
    pub checks: Vec<String>,
    /// Virtio serial of a disk prepared with mkswap, for checks that need pages swapped out.
    #[serde(default)]
    pub swap_serial: Option<String>,
    /// Which checks and sizes run (see [`Profile`]).
    #[serde(default)]
    pub profile: Profile,
    /// The guest's virtio-net path to zcmatrix's host end, when it has one.
    #[serde(default)]
    pub net: Option<net::NetPath>,
    /// Modules the host asked this kernel for and did not find, neither as a module nor built
    /// in (`tls` where CONFIG_TLS is unset): the check that needs one names it in its result.
    #[serde(default)]
    pub missing_modules: Vec<String>,
    /// `--judge-as`: the series whose rules judge this guest's observations (`7.2`), instead
    /// of the running kernel's.
    #[serde(default)]
    pub judge_as: Option<String>,
    /// The user's own KTAP programs, run in every filesystem target after the built-in checks.
    #[serde(default)]
    pub user_checks: Vec<UserCheck>,
}

/// A user's program that prints KTAP (`--exec`), as the guest finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCheck {
    /// The check's name: results are `user.<name>[<KTAP test>]`.
    pub name: String,
    /// Where the program is in the guest (in the initramfs).
    pub path: String,
    /// Seconds before it is killed and reported as an `error` (timeout).
    pub timeout_s: u32,
}

/// How a guest's CPU runs: under KVM (timings are the hardware's) or TCG (every instruction
/// emulated, so even ratios of timings say more about the emulator than the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuAccel {
    Kvm,
    Tcg,
}

/// The kernel command-line word by which the host tells a guest how its CPU runs
/// (`zcmatrix.accel=kvm`): on the command line rather than in the manifest because it is
/// decided per start of QEMU (a guest given up under KVM starts again under TCG with the same
/// initramfs).
pub const ACCEL_PARAM: &str = "zcmatrix.accel=";

impl CpuAccel {
    /// The command-line word saying this.
    pub fn param(self) -> String {
        format!(
            "{ACCEL_PARAM}{}",
            match self {
                CpuAccel::Kvm => "kvm",
                CpuAccel::Tcg => "tcg",
            }
        )
    }

    /// What a kernel command line says, if it says it.
    pub fn from_cmdline(cmdline: &str) -> Option<CpuAccel> {
        cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(ACCEL_PARAM))
            .and_then(|v| match v {
                "kvm" => Some(CpuAccel::Kvm),
                "tcg" => Some(CpuAccel::Tcg),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_record_carries_type_tag_and_round_trips() {
        let r = Record::Result(CheckResult {
            check: "dio.open".into(),
            variant: None,
            scope: Scope::Fs,
            fs: Some("ext4".into()),
            logical_block_size: Some(512),
            outcome: Outcome::Pass,
            observed: "ok".into(),
            expected: "ok".into(),
            evidence: "open(2)".into(),
            detail: String::new(),
            duration_ms: 3,
            tolerance: None,
            measures: Vec::new(),
        });
        let line = r.to_line();
        assert!(
            line.starts_with(r#"{"type":"result","check":"dio.open""#),
            "{line}"
        );
        assert!(line.ends_with('\n'));
        let back: Record = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back, r);
        // A record written before tolerances were declared reads, and gets the old rule.
        let Record::Result(old) = back else {
            unreachable!()
        };
        assert_eq!(old.tolerance(), Tolerance::Exact);
        assert!(!line.contains("measures"), "no measures, no field: {line}");
        let measured = CheckResult {
            measures: vec![
                Measure::new("major", 129.0, ""),
                Measure::new("cpu_pct", 62.0, "%"),
            ],
            ..old.clone()
        };
        let line = Record::Result(measured.clone()).to_line();
        assert!(
            line.contains(r#""measures":[{"name":"major","value":129.0},{"name":"cpu_pct","value":62.0,"unit":"%"}]"#),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<Record>(line.trim()).unwrap(),
            Record::Result(measured.clone())
        );
        assert_eq!(
            (measured.measure("cpu_pct"), measured.measure("minor")),
            (Some(62.0), None)
        );
        let declared = CheckResult {
            check: "cost.sendfile".into(),
            tolerance: Some(Tolerance::Numbers { abs: 2.0, pct: 5.0 }),
            ..old.clone()
        };
        let line = Record::Result(declared.clone()).to_line();
        assert!(
            line.contains(r#""tolerance":{"compare":"numbers","abs":2.0,"pct":5.0}"#),
            "{line}"
        );
        assert_eq!(
            CheckResult {
                tolerance: None,
                ..declared
            }
            .tolerance(),
            Tolerance::OutcomeOnly
        );
    }

    #[test]
    fn numbers_in_observed_without_measures_are_named() {
        let seen = |observed: &str, measures: Vec<Measure>| CheckResult {
            check: "dio.read_eof".into(),
            variant: None,
            scope: Scope::Fs,
            fs: None,
            logical_block_size: None,
            outcome: Outcome::Pass,
            observed: observed.into(),
            expected: String::new(),
            evidence: String::new(),
            detail: String::new(),
            duration_ms: 0,
            tolerance: None,
            measures,
        };
        assert_eq!(seen("4196", vec![]).untyped_numbers(), ["4196"]);
        assert_eq!(
            seen("data=ok records=4 max_record=16384,", vec![]).untyped_numbers(),
            ["records=4", "max_record=16384,"]
        );
        assert_eq!(
            seen("to_eof=EINVAL at_eof=0", vec![]).untyped_numbers(),
            ["at_eof=0"]
        );
        let typed = vec![Measure::new("", 4196.0, "bytes")];
        assert!(seen("4196", typed).untyped_numbers().is_empty());
        for words in ["ok", "E2BIG", "poll_32bits nodrop", "NaN inf", "SIGBUS"] {
            assert!(seen(words, vec![]).untyped_numbers().is_empty(), "{words}");
        }
    }

    #[test]
    fn filters_take_brackets_literally_and_stars_as_wildcards() {
        let f = CheckFilter::new("cow.*[thp]").unwrap();
        assert!(f.matches("cow.fork_basic[thp]"));
        assert!(!f.matches("cow.fork_basic[pte_thp]"));
        assert!(!f.matches("cow.fork_basic[t]"));
        assert!(CheckFilter::new("cow.*[*thp]")
            .unwrap()
            .matches("cow.fork_basic[pte_thp]"));
        assert!(CheckFilter::new("dio.*").unwrap().matches("dio.open"));
    }

    #[test]
    fn a_filter_matching_nothing_names_the_families() {
        let ids = vec![
            "dio.open".to_string(),
            "dio.append".into(),
            "mmap.truncate".into(),
        ];
        assert_eq!(validate_filters(&["mmap.*".into()], &ids).unwrap().len(), 1);
        let e = validate_filters(&["nope.*".into()], &ids).unwrap_err();
        assert!(
            e.contains("nope.*") && e.contains("families: dio, mmap"),
            "{e}"
        );
    }

    #[test]
    fn outcomes_serialise_as_their_words_and_counts_describe_themselves() {
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        let mut c = Counts::default();
        c.add(Outcome::Pass);
        c.add(Outcome::Pass);
        c.add(Outcome::Xfail);
        assert_eq!(c.describe(), "2 pass, 1 xfail");
        assert_eq!(c.total(), 3);
        assert!(Outcome::Fail.is_failure() && Outcome::Error.is_failure());
        assert!(!Outcome::Xfail.is_failure() && !Outcome::Xpass.is_failure());
    }

    #[test]
    fn full_id_puts_variant_in_brackets() {
        assert_eq!(
            full_id("cow.fork_basic", Some("thp")),
            "cow.fork_basic[thp]"
        );
        assert_eq!(full_id("dio.open", None), "dio.open");
    }
}
