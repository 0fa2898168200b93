//! Copy-on-write isolation under zero-copy: after fork(), can a pipe filled by vmsplice, or an
//! io_uring fixed buffer, see another process's later writes? The scenarios of the kernel's
//! `tools/testing/selftests/mm/cow.c` that run without debugfs gup_test (which Debian's cloud
//! kernels lack), over its backings, whose results these must agree with; and its
//! non-anonymous "Basic COW" as `cow.file_basic`.
//!
//! - [`scenarios`]: what each check does (cow.c's `test_*` functions);
//! - [`backings`]: the memory it does it on, built and verified as cow.c's `run_with_*` do;
//! - [`copy`]: whether a forked child holds a copy of its parent's memory, and what it found if not;
//! - [`rules`]: what each scenario should observe on each class of backing, and why.
//!
//! Variant names: `base`, `swapped_base`; `<layout>` for the PMD-size THP and `<layout>_<N>k`
//! for each mTHP size, the layouts being `thp`, `swapped_thp` (PMD size only), `pte_thp`,
//! `swapped_pte_thp`, `single_pte_thp`, `single_pte_swapped_thp`, `mremap_thp`, `shared_thp`;
//! `hugetlb_2m`, `hugetlb_1g`. `cow.file_basic` runs over `zeropage`, `huge_zeropage`, `memfd`,
//! `tmpfile`, `memfd_hugetlb_2m`, `memfd_hugetlb_1g`. A backing the machine cannot produce is a
//! skip with the reason, never a pass; the THP sizes an mTHP variant needs are settings the
//! runner writes and restores. The quick profile runs one mTHP size (64k), `--profile full`
//! all of them.

use std::sync::LazyLock;

use super::Check;

pub mod backings;
pub mod copy;
pub mod rules;
pub mod scenarios;

use backings::{Backing, Layout};
use rules::Class;

/// Which rule class a backing's write fault falls in (see [`rules`]).
pub fn class(b: Backing) -> Class {
    match b {
        Backing::Base => Class::Base,
        Backing::SwappedBase => Class::Swapped,
        Backing::Thp { kb: Some(_), .. } => Class::Mthp,
        Backing::Thp { layout, kb: None } if layout.swapped() => Class::Swapped,
        Backing::Thp {
            layout: Layout::Pmd,
            kb: None,
        } => Class::Thp,
        Backing::Thp { kb: None, .. } => Class::PteThp,
        Backing::Hugetlb { .. } => Class::Hugetlb,
    }
}

/// Every scenario over every backing, then `cow.file_basic`, built once.
pub fn checks() -> &'static [Check] {
    static ALL: LazyLock<Vec<Check>> = LazyLock::new(|| {
        let mut all = Vec::new();
        for s in scenarios::ANON {
            for v in backings::ANON.iter() {
                let rule = rules::of(s.scenario, class(v.backing));
                let check = Check::kernel(s.id, s.description, rule, s.probe)
                    .variant(&v.name)
                    .settings(v.settings);
                let check = if v.backing.swapped() {
                    check.needs_swap()
                } else {
                    check
                };
                let check = match v.backing {
                    Backing::Hugetlb { mb: 2 } => check.needs_hugetlb(),
                    _ => check,
                };
                let check = match v.backing {
                    Backing::Thp { kb: Some(kb), .. } => check.pages_up_to(
                        (kb as u32) << 10 >> 2,
                        "an anonymous mTHP is a folio of four pages or more (THP_ORDERS_ALL_ANON \
                         leaves out orders 0 and 1), so with pages of more than a quarter of \
                         this size there is no such mTHP",
                    ),
                    _ => check,
                };
                all.push(match v.backing {
                    Backing::Thp { kb: Some(kb), .. } if kb != backings::QUICK_MTHP_KB => {
                        check.full_profile_only()
                    }
                    _ => check,
                });
            }
        }
        for v in backings::FILE.iter() {
            let check = Check::kernel(
                scenarios::FILE_BASIC_ID,
                scenarios::FILE_BASIC_DESCRIPTION,
                rules::FILE_BASIC,
                scenarios::file_basic,
            )
            .variant(&v.name)
            .settings(v.settings);
            all.push(match v.backing {
                backings::FileBacking::MemfdHugetlb { mb: 2 } => check.needs_hugetlb(),
                _ => check,
            });
        }
        all
    });
    &ALL
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use zcmatrix_protocol::Outcome;

    use super::*;
    use crate::checks::Ctx;
    use crate::kver::KernelVersion;
    use crate::runner::{judge, Answer};

    fn find(id: &str, variant: &str) -> &'static Check {
        checks()
            .iter()
            .find(|c| c.id == id && c.variant == Some(variant))
            .unwrap_or_else(|| panic!("no {id}[{variant}]"))
    }

    fn judged(id: &str, variant: &str, kernel: (u32, u32), seen: &str) -> Outcome {
        let check = find(id, variant);
        let ctx = Ctx {
            kernel: KernelVersion::new(kernel.0, kernel.1, 0),
            dir: PathBuf::from("/tmp/kernel-scope"),
            fs: None,
            logical_block_size: None,
            device: None,
            owns_machine: true,
            mounts: Vec::new(),
            profile: zcmatrix_protocol::Profile::Full,
            variant: check.variant,
        };
        let answer = Answer::Saw(crate::checks::Observation::saw(seen, "test"));
        judge(check, &ctx, answer, Duration::ZERO).outcome
    }

    #[test]
    fn an_mthp_size_runs_only_with_pages_a_quarter_of_it_or_smaller() {
        let at =
            |variant: &str, page: u32| find("cow.fork_basic", variant).info().runs_with_pages(page);
        assert!(at("pte_thp_16k", 4096));
        assert!(!at("pte_thp_16k", 16384));
        assert!(at("pte_thp_64k", 16384));
        assert!(!at("pte_thp_64k", 65536));
        assert!(at("pte_thp_256k", 65536));
        // Not mTHP: every page size.
        assert!(at("hugetlb_2m", 65536) && at("base", 65536));
    }

    #[test]
    fn variant_names_follow_the_scheme() {
        let mut want = vec!["base".to_string(), "swapped_base".to_string()];
        want.extend(Layout::ALL.iter().map(|l| l.name().to_string()));
        want.extend(["hugetlb_2m".to_string(), "hugetlb_1g".to_string()]);
        for kb in backings::MTHP_KB {
            for l in Layout::ALL.iter().filter(|l| !l.pmd_only()) {
                want.push(format!("{}_{kb}k", l.name()));
            }
        }
        let names: Vec<&str> = backings::ANON.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, want);
        assert_eq!(names.len(), 54);
        let layouts = [
            "thp",
            "swapped_thp",
            "pte_thp",
            "swapped_pte_thp",
            "single_pte_thp",
            "single_pte_swapped_thp",
            "mremap_thp",
            "shared_thp",
        ];
        assert_eq!(Layout::ALL.map(Layout::name), layouts);
        let files: Vec<&str> = backings::FILE.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            files,
            [
                "zeropage",
                "huge_zeropage",
                "memfd",
                "tmpfile",
                "memfd_hugetlb_2m",
                "memfd_hugetlb_1g"
            ]
        );
        // Every scenario runs over every anonymous backing, and file_basic over the others.
        assert_eq!(
            checks().len(),
            scenarios::ANON.len() * names.len() + files.len()
        );
        assert_eq!(scenarios::ANON.len(), 8);
    }

    #[test]
    fn mthp_variants_set_their_size_and_turn_the_pmd_size_off() {
        for v in backings::ANON.iter() {
            match v.backing {
                Backing::Thp { kb: Some(kb), .. } => {
                    assert!(v.name.ends_with(&format!("_{kb}k")), "{}", v.name);
                    let [size, pmds @ ..] = v.settings else {
                        panic!("{}: {:?}", v.name, v.settings)
                    };
                    assert_eq!(
                        size.path,
                        format!("/sys/kernel/mm/transparent_hugepage/hugepages-{kb}kB/enabled")
                    );
                    assert_eq!(size.value, "always");
                    assert_eq!(
                        size.why,
                        format!("no {kb} KiB mTHP on this kernel (mTHP sysfs since 6.8)")
                    );
                    assert!(!size.if_present);
                    // Every PMD size a guest may have: 4 KiB pages, ppc64le (radix, hash),
                    // arm64 with 16 KiB and 64 KiB pages.
                    let pmd_kb: Vec<&str> = pmds
                        .iter()
                        .map(|p| {
                            assert_eq!(p.value, "never");
                            assert!(p.if_present, "{}", p.path);
                            p.path
                                .strip_prefix("/sys/kernel/mm/transparent_hugepage/hugepages-")
                                .and_then(|p| p.strip_suffix("kB/enabled"))
                                .unwrap()
                        })
                        .collect();
                    assert_eq!(pmd_kb, ["2048", "16384", "32768", "524288"]);
                }
                // Nothing machine-wide for the others: the PMD size needs only THP not off.
                _ => assert!(v.settings.is_empty(), "{}", v.name),
            }
        }
        let hz = &backings::FILE[1];
        assert_eq!(hz.name, "huge_zeropage");
        assert_eq!(hz.settings[0].value, "1");
    }

    #[test]
    fn every_rule_that_can_expect_a_hazard_declares_it() {
        for c in checks() {
            let mut leaves = Vec::new();
            c.rule.expect.leaves(&mut leaves);
            assert!(!leaves.is_empty(), "{}: a measurement", c.full_id());
            for h in rules::HAZARDS {
                if leaves
                    .iter()
                    .any(|p| p.accepts(h, crate::checks::rule::Geom::new(None, 4096)))
                {
                    assert!(c.rule.hazards.contains(h), "{}: {h}", c.full_id());
                }
            }
            // And no rule accepts everything: some value fails it on every kernel.
            for p in &leaves {
                assert!(
                    p.counterexample(crate::checks::rule::Geom::new(None, 4096))
                        .is_some(),
                    "{}",
                    c.full_id()
                );
            }
        }
    }

    #[test]
    fn known_hazards_are_xfail_and_fixed_kernels_pass() {
        use Outcome::*;
        let cases = [
            ("cow.vmsplice_unmap_child", "thp", (5, 10), "leak", Xfail),
            ("cow.vmsplice_unmap_child", "thp", (6, 1), "isolated", Pass),
            ("cow.vmsplice_unmap_child", "thp", (6, 1), "leak", Fail),
            (
                "cow.vmsplice_unmap_child",
                "swapped_pte_thp",
                (5, 10),
                "leak",
                Xfail,
            ),
            (
                "cow.vmsplice_unmap_child",
                "mremap_thp",
                (5, 10),
                "isolated",
                Pass,
            ),
            (
                "cow.vmsplice_unmap_parent",
                "hugetlb_2m",
                (7, 2),
                "leak",
                Xfail,
            ),
            ("cow.iouring_fixed_ro", "base", (5, 10), "unreliable", Xfail),
            (
                "cow.iouring_fixed_ro",
                "shared_thp",
                (6, 1),
                "reliable",
                Pass,
            ),
            (
                "cow.iouring_fixed_fork",
                "hugetlb_2m",
                (5, 10),
                "unreliable",
                Xfail,
            ),
            (
                "cow.fork_basic_mprotect",
                "pte_thp_64k",
                (6, 12),
                "isolated",
                Pass,
            ),
            ("cow.fork_basic_mprotect", "base", (5, 10), "leak", Fail),
            ("cow.file_basic", "memfd", (5, 10), "isolated", Pass),
        ];
        for (id, variant, k, seen, want) in cases {
            assert_eq!(
                judged(id, variant, k, seen),
                want,
                "{id}[{variant}] on {k:?} saw {seen}"
            );
        }
    }

    /// A child whose memory after fork() is not its parent's (`not_copied`, seen on 7.2 with
    /// arm64's 16 KiB pages) breaks fork(2) whatever the scenario: no rule expects it, so it is a
    /// `fail` with what the child read, never an `error` and never a known hazard.
    #[test]
    fn a_lost_copy_fails_every_rule() {
        let cases = [
            ("cow.vmsplice_unmap_child", "hugetlb_2m", (7, 2)),
            ("cow.vmsplice_unmap_child", "hugetlb_2m", (5, 10)),
            ("cow.vmsplice_unmap_parent", "hugetlb_2m", (7, 2)),
            ("cow.fork_basic", "base", (6, 1)),
            ("cow.vmsplice_unmap_child", "thp", (5, 10)),
            ("cow.file_basic", "memfd_hugetlb_2m", (7, 2)),
        ];
        for (id, variant, k) in cases {
            assert_eq!(
                judged(id, variant, k, copy::NOT_COPIED),
                Outcome::Fail,
                "{id}[{variant}] on {k:?}"
            );
        }
        assert!(!rules::HAZARDS.contains(&copy::NOT_COPIED));
    }

    #[test]
    fn a_single_changed_byte_is_seen() {
        let mut v = vec![backings::FILL; 3 * 4096 + 100];
        assert!(backings::all_equal(&v, backings::FILL));
        for at in [0, 4095, 4096, 3 * 4096 + 99] {
            v[at] = 0xff;
            assert!(!backings::all_equal(&v, backings::FILL), "{at}");
            v[at] = backings::FILL;
        }
    }

    #[test]
    fn backings_fall_in_the_class_of_their_fault_path() {
        let of = |name: &str| {
            class(
                backings::ANON
                    .iter()
                    .find(|v| v.name == name)
                    .unwrap()
                    .backing,
            )
        };
        assert_eq!(of("thp"), Class::Thp);
        for n in [
            "swapped_base",
            "swapped_thp",
            "swapped_pte_thp",
            "single_pte_swapped_thp",
        ] {
            assert_eq!(of(n), Class::Swapped, "{n}");
        }
        for n in ["pte_thp", "single_pte_thp", "mremap_thp", "shared_thp"] {
            assert_eq!(of(n), Class::PteThp, "{n}");
        }
        assert_eq!(of("single_pte_swapped_thp_16k"), Class::Mthp);
        assert_eq!(of("hugetlb_1g"), Class::Hugetlb);
    }
}
