//! The check catalogue: what each check the harness declares is, needs and runs on, as
//! `harness list` prints it (one [`CheckInfo`] a line) and the host reads it back. [`select`] and
//! [`CheckInfo::runs_at`] are the one answer to "which checks run where": the harness running
//! checks, the guest narrowing by geometry and the host planning guests (swap, network, hugetlb,
//! usage errors) all call them, so that they cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::{validate_filters, Profile, Scope};

/// One check as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// The full id, `family.name` or `family.name[variant]`.
    pub id: String,
    /// The part of the id before the dot.
    pub family: String,
    pub scope: Scope,
    pub description: String,
    /// The commit title or man page the rule rests on.
    pub evidence: String,
    /// A measurement: the result is `info`, its value is the product.
    pub measurement: bool,
    /// The observed values that are documented hazards (`xfail`, never a green tick).
    pub hazards: Vec<String>,
    /// The least profile the check runs in.
    pub profile: Profile,
    /// Its probe swaps pages out: the guest needs a swap disk.
    #[serde(default)]
    pub needs_swap: bool,
    /// It talks to the host end through virtio-net or needs a network module.
    #[serde(default)]
    pub needs_net: bool,
    /// Its probe maps 2 MiB hugetlb pages: the guest reserves a pool.
    #[serde(default)]
    pub needs_hugetlb: bool,
    /// Machine-wide settings (sysfs/procfs files) the runner writes for it and restores.
    #[serde(default)]
    pub settings: Vec<SettingInfo>,
    /// The filesystem targets it means something on (empty: every one).
    #[serde(default)]
    pub only_on: Vec<String>,
    /// The targets it runs on only with `--profile full`.
    #[serde(default)]
    pub full_profile_on: Vec<String>,
    /// The largest page size it means something with, and why.
    #[serde(default)]
    pub pages_up_to: Option<PagesUpTo>,
    /// The disk's logical block size can change its answer (direct I/O): in `quick` it runs on
    /// every geometry of a filesystem, the others on its largest one only.
    #[serde(default)]
    pub block_size_matters: bool,
}

/// A machine-wide knob a check needs, and the value it writes there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingInfo {
    pub path: String,
    pub value: String,
}

/// The largest page size a check means something with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagesUpTo {
    pub bytes: u32,
    pub why: String,
}

/// Where checks would run: one target (or the kernel's scratch directory) of one machine.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub scope: Scope,
    /// The filesystem target; `None` for kernel scope.
    pub fs: Option<&'a str>,
    pub profile: Profile,
    /// The machine's page size in bytes; `None` when not known (the host planning guests).
    pub page_size: Option<u32>,
    /// Quick profile on a filesystem that also runs on a larger geometry: only the checks the
    /// block size can change run here (see [`only_block_size`]).
    pub only_block_size: bool,
}

/// The target a refined one stands under: `ext4-dax-async` (a DAX file on a region that is not
/// synchronous, virtio-pmem) is `ext4-dax` for every rule, `only_on` and `full_profile_on` that
/// does not name it.
pub fn base_target(fs: &str) -> &str {
    fs.strip_suffix("-async").unwrap_or(fs)
}

impl CheckInfo {
    /// A check of `scope` and `profile` with no rule, requirement or limit yet (the harness
    /// fills them in from its declaration).
    pub fn new(id: &str, scope: Scope, profile: Profile) -> Self {
        CheckInfo {
            id: id.into(),
            family: id.split_once('.').map_or(id, |(f, _)| f).into(),
            scope,
            description: String::new(),
            evidence: String::new(),
            measurement: false,
            hazards: vec![],
            profile,
            needs_swap: false,
            needs_net: false,
            needs_hugetlb: false,
            settings: vec![],
            only_on: vec![],
            full_profile_on: vec![],
            pages_up_to: None,
            block_size_matters: false,
        }
    }

    /// Whether the check runs on a target of filesystem `fs` (`None`: kernel scope).
    pub fn applies_to(&self, fs: Option<&str>) -> bool {
        self.only_on.is_empty()
            || fs.is_some_and(|f| self.only_on.iter().any(|o| o == base_target(f)))
    }

    /// Whether a run with `profile` runs the check on a target of filesystem `fs`.
    pub fn runs_on(&self, fs: Option<&str>, profile: Profile) -> bool {
        self.applies_to(fs)
            && (profile == Profile::Full
                || !fs.is_some_and(|f| self.full_profile_on.iter().any(|o| o == base_target(f))))
    }

    /// Whether the check means something with pages of `page_size` bytes.
    pub fn runs_with_pages(&self, page_size: u32) -> bool {
        self.pages_up_to
            .as_ref()
            .is_none_or(|p| page_size <= p.bytes)
    }

    /// Whether a selected check runs at `p`.
    pub fn runs_at(&self, p: &Placement) -> bool {
        self.scope == p.scope
            && self.runs_on(p.fs, p.profile)
            && p.page_size.is_none_or(|ps| self.runs_with_pages(ps))
            && (!p.only_block_size || self.block_size_matters)
    }
}

/// Why a selection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// A filter matches no check (or does not parse); the message names the families.
    NoMatch(String),
    /// The filters select only checks of a larger profile than the run's.
    OnlyFullProfile(Vec<String>),
}

impl std::fmt::Display for SelectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectError::NoMatch(m) => f.write_str(m),
            SelectError::OnlyFullProfile(filters) => write!(
                f,
                "{} select only checks of the full profile (they cost more guest time than the \
                 default matrix has): add --profile full",
                filters.join(" ")
            ),
        }
    }
}

impl std::error::Error for SelectError {}

/// The positions in `catalogue` of the checks of `profile` matching any of `filters` (all of
/// them when there are none), in catalogue order. A filter that matches nothing is an error (a
/// typo must not silently run zero checks); filters that match only checks of a larger profile
/// say so.
pub fn select(
    catalogue: &[CheckInfo],
    filters: &[String],
    profile: Profile,
) -> Result<Vec<usize>, SelectError> {
    let ids: Vec<String> = catalogue.iter().map(|c| c.id.clone()).collect();
    let compiled = validate_filters(filters, &ids).map_err(SelectError::NoMatch)?;
    let chosen: Vec<usize> = catalogue
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.profile <= profile
                && (filters.is_empty() || compiled.iter().any(|f| f.matches(&c.id)))
        })
        .map(|(i, _)| i)
        .collect();
    if chosen.is_empty() && !filters.is_empty() {
        return Err(SelectError::OnlyFullProfile(filters.to_vec()));
    }
    Ok(chosen)
}

/// Whether any check the run selects satisfies `wanted` (a filter error selects nothing: the
/// run is refused elsewhere with the reason).
pub fn selects_any(
    catalogue: &[CheckInfo],
    filters: &[String],
    profile: Profile,
    wanted: impl Fn(&CheckInfo) -> bool,
) -> bool {
    select(catalogue, filters, profile)
        .is_ok_and(|chosen| chosen.into_iter().any(|i| wanted(&catalogue[i])))
}

/// Quick profile: a filesystem mounted on several geometries runs what only the page cache sees
/// once, on its largest block size; what the block size changes (direct I/O) runs on each.
/// `mounted` lists every (filesystem, logical block size) of the run.
pub fn only_block_size(
    profile: Profile,
    fs: &str,
    lbs: Option<u32>,
    mounted: &[(&str, Option<u32>)],
) -> bool {
    profile == Profile::Quick && mounted.iter().any(|(f, l)| *f == fs && *l > lbs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, profile: Profile) -> CheckInfo {
        CheckInfo::new(id, Scope::Fs, profile)
    }

    #[test]
    fn selection_follows_filters_and_profile() {
        let cat = [
            info("dio.open", Profile::Quick),
            info("sendfile.file_to_pipe", Profile::Quick),
            CheckInfo {
                needs_swap: true,
                ..info("cow.fork_basic[pte_thp_16k]", Profile::Full)
            },
        ];
        assert_eq!(select(&cat, &[], Profile::Quick).unwrap(), [0, 1]);
        assert_eq!(select(&cat, &[], Profile::Full).unwrap(), [0, 1, 2]);
        let f = |s: &str| vec![s.to_string()];
        assert_eq!(select(&cat, &f("sendfile.*"), Profile::Quick).unwrap(), [1]);
        let e = select(&cat, &f("cow.*"), Profile::Quick).unwrap_err();
        assert!(e.to_string().contains("--profile full"), "{e}");
        let e = select(&cat, &f("sendfil.*"), Profile::Quick).unwrap_err();
        assert!(matches!(e, SelectError::NoMatch(_)), "{e}");
        assert!(!selects_any(&cat, &[], Profile::Quick, |c| c.needs_swap));
        assert!(selects_any(&cat, &[], Profile::Full, |c| c.needs_swap));
    }

    #[test]
    fn placement_narrows_by_target_profile_pages_and_geometry() {
        let c = CheckInfo {
            only_on: vec!["overlay".into()],
            full_profile_on: vec![],
            pages_up_to: Some(PagesUpTo {
                bytes: 4096,
                why: "a 4 KiB split".into(),
            }),
            ..info("overlay.copy_up", Profile::Quick)
        };
        let at = |fs, page_size, only_block_size| Placement {
            scope: Scope::Fs,
            fs,
            profile: Profile::Quick,
            page_size,
            only_block_size,
        };
        assert!(c.runs_at(&at(Some("overlay"), Some(4096), false)));
        assert!(c.runs_at(&at(Some("overlay-async"), None, false)));
        assert!(!c.runs_at(&at(Some("ext4"), None, false)));
        assert!(!c.runs_at(&at(Some("overlay"), Some(65536), false)));
        assert!(!c.runs_at(&at(Some("overlay"), None, true)));
        let slow = CheckInfo {
            full_profile_on: vec!["tmpfs".into()],
            ..info("cost.read", Profile::Quick)
        };
        assert!(!slow.runs_on(Some("tmpfs"), Profile::Quick));
        assert!(slow.runs_on(Some("tmpfs"), Profile::Full));
        assert!(slow.runs_on(Some("ext4"), Profile::Quick));
        let m = [
            ("ext4", Some(512)),
            ("ext4", Some(4096)),
            ("xfs", Some(512)),
        ];
        assert!(only_block_size(Profile::Quick, "ext4", Some(512), &m));
        assert!(!only_block_size(Profile::Quick, "ext4", Some(4096), &m));
        assert!(!only_block_size(Profile::Quick, "xfs", Some(512), &m));
        assert!(!only_block_size(Profile::Full, "ext4", Some(512), &m));
    }
}
