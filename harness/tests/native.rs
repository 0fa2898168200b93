//! Host-native runs of the checks: the harness binary against a directory on the build machine's
//! disk and one on tmpfs, on the build machine's kernel. Outcomes are judged by the same rules a
//! guest uses (the records carry them); these tests hold every result to the outcome model: no
//! `fail`, no `error`, measurements as `info`, and a skip only for a reason this host explains.
//! They run one at a time: the cost checks time their paths, and a check that drops caches or
//! burns CPU beside them would be measured with them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use serial_test::serial;

fn run(dir: &Path, filters: &[&str]) -> (i32, Vec<Value>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.arg("run").arg("--dir").arg(dir);
    for f in filters {
        cmd.args(["--check", f]);
    }
    let out = cmd.output().expect("harness runs");
    let records = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is a JSON record"))
        .collect();
    (out.status.code().unwrap_or(-1), records)
}

/// A directory on the filesystem the workspace lives on, and one on tmpfs.
fn dirs() -> Vec<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "/dev/shm (tmpfs) is needed for the tmpfs runs"
    );
    vec![
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        tempfile::tempdir_in(shm).unwrap(),
    ]
}

fn results(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["type"] == "result").collect()
}

/// The result of `id`, a full id with the variant in brackets where there is one.
fn result<'a>(records: &'a [Value], id: &str) -> &'a Value {
    let (check, variant) = match id.split_once('[') {
        Some((c, v)) => (c, Value::from(v.trim_end_matches(']'))),
        None => (id, Value::Null),
    };
    records
        .iter()
        .find(|r| r["type"] == "result" && r["check"] == check && r["variant"] == variant)
        .unwrap_or_else(|| panic!("no result for {id}"))
}

fn full_id(r: &Value) -> String {
    match r["variant"].as_str() {
        Some(v) => format!("{}[{v}]", r["check"].as_str().unwrap()),
        None => r["check"].as_str().unwrap().to_string(),
    }
}

/// Why a check may skip natively, and on which filesystem: a host run never changes
/// machine-wide settings, the host does not reserve hugetlb pages or swap for us, a container may
/// not open the disk, and tmpfs has no disk or STATX_DIOALIGN at all.
const EXPLAINED_SKIPS: &[(&str, Option<&str>, &str)] = &[
    ("cow.", None, "guest only"),
    ("cow.", None, "hugetlb"),
    ("cow.", None, "swap"),
    ("cow.", None, "MADV_PAGEOUT"),
    ("dio.blockdev_align", Some("ext4"), "EPERM"),
    ("dio.blockdev_align", Some("tmpfs"), "no block device"),
    ("dio.statx_agrees", Some("tmpfs"), "STATX_DIOALIGN"),
    // A native run hands the harness one directory, so no pair of filesystems is mounted.
    ("cfr.cross_fs", None, "target mounted here"),
    // A container or a hardened host may refuse io_uring_setup (seccomp, io_uring_disabled).
    ("uring.", None, "io_uring unavailable"),
    // The virtio-net path and its host end exist only in a guest.
    ("net.", None, "only a guest has one"),
    // A host kernel without the "tls" ULP loaded (Debian's 5.10 cloud kernel has none at all).
    ("net.ktls_sendfile", None, "no kernel TLS here"),
    // Bind-mounting the target changes the host's mount table.
    ("reflink.cross_mount", None, "guest only"),
    // No reflink on the host's ext4 or tmpfs: reflink.clone records the refusal.
    (
        "reflink.cow_isolation",
        Some("ext4"),
        "reflink.clone records",
    ),
    (
        "reflink.cow_isolation",
        Some("tmpfs"),
        "reflink.clone records",
    ),
    // tmpfs pages are the file: nothing to evict, no cold read.
    ("cost.", Some("tmpfs"), "no cold read"),
    ("cost.uring", None, "io_uring unavailable"),
    // A host has no host end of zcmatrix's network.
    ("cost.", None, "no virtio-net path"),
    // Run as a normal user: what needs a privilege skips saying so (harness::sys::needs_root,
    // needs_memlock): dropping caches, mounting a tmpfs, opening the disk, pinning more than
    // RLIMIT_MEMLOCK for io_uring buffers and zero-copy sends. As root none of these skips.
    ("", None, harness::sys::NEEDS_ROOT),
];

fn skip_is_explained(r: &Value) -> bool {
    let id = full_id(r);
    let why = r["detail"].as_str().unwrap_or_default();
    !why.is_empty()
        && EXPLAINED_SKIPS.iter().any(|(prefix, fs, reason)| {
            id.starts_with(prefix) && fs.is_none_or(|f| r["fs"] == f) && why.contains(reason)
        })
}

#[test]
#[serial]
fn every_check_runs_and_none_fails_errs_or_skips_without_a_host_reason() {
    let listed = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("list")
        .output()
        .unwrap();
    // (id, the filesystems it is limited to: empty for every one)
    let listed: Vec<(String, Vec<String>)> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v = serde_json::from_str::<Value>(l).unwrap();
            let only_on = v["only_on"].as_array().expect("harness list says only_on");
            (
                v["id"].as_str().unwrap().to_string(),
                only_on
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let ids: Vec<String> = listed
        .iter()
        .filter(|(_, only_on)| only_on.is_empty())
        .map(|(id, _)| id.clone())
        .collect();
    assert!(ids.len() >= 50, "{ids:?}");
    for d in dirs() {
        let (code, recs) = run(d.path(), &[]);
        assert_eq!(recs.first().unwrap()["type"], "hello");
        let summary = recs.last().unwrap();
        assert_eq!(summary["type"], "summary");
        let mut problems = Vec::new();
        for id in &ids {
            let r = result(&recs, id);
            for field in [
                "outcome", "observed", "expected", "evidence", "detail", "scope",
            ] {
                assert!(r.get(field).is_some(), "{id} lacks {field}");
            }
            assert_ne!(r["expected"], "", "{id} has no expectation");
            match r["outcome"].as_str().unwrap() {
                "pass" | "xfail" | "xpass" | "info" => {}
                "skip" if skip_is_explained(r) => {}
                other => problems.push(format!(
                    "{id} on {}: {other} {} (expected {}): {}",
                    r["fs"], r["observed"], r["expected"], r["detail"]
                )),
            }
        }
        // Every number a probe writes for people it types for the host (charts, diffs).
        for r in results(&recs) {
            let typed: zcmatrix_protocol::CheckResult = serde_json::from_value(r.clone()).unwrap();
            let untyped = typed.untyped_numbers();
            if !untyped.is_empty() {
                problems.push(format!(
                    "{} on {}: {untyped:?} in `{}` without measures",
                    full_id(r),
                    r["fs"],
                    typed.observed
                ));
            }
        }
        // A check about one filesystem (overlay's copy-up) is not run on a host directory
        // of another: no result at all, rather than a skip in every cell.
        for (id, only_on) in listed.iter().filter(|(_, o)| !o.is_empty()) {
            let ran = results(&recs).into_iter().find(|r| full_id(r) == *id);
            if let Some(r) = ran {
                assert!(
                    only_on.iter().any(|f| r["fs"] == f.as_str()),
                    "{id} ran on {}",
                    r["fs"]
                );
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(code, 0, "no fail and no error: the run succeeds");
        let counted = summary["counts"].as_object().expect("summary counts");
        let total: u64 = counted.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total as usize, results(&recs).len(), "{summary}");
        assert_eq!(counted["fail"], 0);
    }
}

#[test]
#[serial]
fn fs_results_name_the_filesystem_and_block_size_they_ran_on() {
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (_, recs) = run(shm.path(), &["dio.open"]);
    let r = result(&recs, "dio.open");
    assert_eq!(r["fs"], "tmpfs");
    assert_eq!(r["logical_block_size"], Value::Null);
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, recs) = run(disk.path(), &["dio.open"]);
    let lbs = result(&recs, "dio.open")["logical_block_size"].as_u64();
    assert!(matches!(lbs, Some(512) | Some(4096)), "{lbs:?}");
}

#[test]
#[serial]
fn a_filter_runs_only_matching_checks() {
    let d = tempfile::tempdir().unwrap();
    let (_, recs) = run(d.path(), &["sendfile.file_to_*"]);
    let ran: Vec<&str> = results(&recs)
        .iter()
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        ran,
        [
            "sendfile.file_to_tcp",
            "sendfile.file_to_unix",
            "sendfile.file_to_file",
            "sendfile.file_to_pipe"
        ]
    );
}

#[test]
#[serial]
fn a_filter_matching_nothing_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let (code, recs) = run(d.path(), &["nosuch.*"]);
    assert_eq!(code, 2);
    assert!(recs.is_empty());
}

/// Measurements say they are measurements, whatever this kernel does.
#[test]
#[serial]
fn measurements_are_info() {
    for d in dirs() {
        let (_, recs) = run(d.path(), &["mmap.fault_sequential"]);
        let r = result(&recs, "mmap.fault_sequential");
        assert_eq!(r["outcome"], "info", "{r}");
        assert!(r["observed"].as_str().unwrap().contains("major"), "{r}");
    }
}

/// The per-call cap is the kernel's, not the harness's: the same number on every filesystem.
#[test]
#[serial]
fn sendfile_moves_max_rw_count_in_one_call() {
    let d = tempfile::tempdir().unwrap();
    let (_, recs) = run(d.path(), &["sendfile.max_count"]);
    let r = result(&recs, "sendfile.max_count");
    assert_eq!(
        (r["outcome"].as_str(), r["observed"].as_str()),
        (Some("pass"), Some("2147479552")),
        "{r}"
    );
}

/// A backing the machine cannot produce is a skip with its reason, never a pass; mTHP sizes are
/// machine-wide settings a native run must not touch.
#[test]
#[serial]
fn cow_backings_the_host_cannot_produce_are_skips_with_reasons() {
    let d = tempfile::tempdir().unwrap();
    let (_, recs) = run(d.path(), &["cow.fork_basic[*]"]);
    let results = results(&recs);
    // base, swapped_base, 8 PMD-size THP layouts, hugetlb 2 MiB and 1 GiB, and 6 layouts for
    // each of the 7 mTHP sizes.
    assert_eq!(results.len(), 2 + 8 + 2 + 6 * 7);
    for r in results {
        match r["outcome"].as_str().unwrap() {
            "skip" => assert!(!r["detail"].as_str().unwrap().is_empty(), "{r}"),
            "pass" => assert_eq!(r["observed"], "isolated", "{r}"),
            other => panic!("{other}: {r}"),
        }
    }
    // mTHP sizes are machine-wide settings: a native run must not touch them.
    for layout in ["pte_thp", "swapped_pte_thp", "mremap_thp", "shared_thp"] {
        let m = result(&recs, &format!("cow.fork_basic[{layout}_64k]"));
        assert_eq!(m["outcome"], "skip", "{m}");
        assert!(m["detail"].as_str().unwrap().contains("guest only"), "{m}");
    }
}

/// copy_file_range on the host's disk and tmpfs: copies within a filesystem verify, the refusals
/// are the documented errnos, and FIEMAP says what the copy shares rather than the harness
/// guessing from the filesystem's name.
#[test]
#[serial]
fn cfr_copies_within_a_filesystem_and_observes_sharing() {
    for d in dirs() {
        let (code, recs) = run(d.path(), &["cfr.*"]);
        assert_eq!(code, 0, "{recs:?}");
        let seen = |id: &str| result(&recs, id)["observed"].as_str().unwrap().to_string();
        assert_eq!(seen("cfr.same_fs"), "whole=ok range=ok");
        assert_eq!(seen("cfr.overlap"), "EINVAL");
        assert_eq!(seen("cfr.append_out"), "EBADF");
        let shares = seen("cfr.shares_extents");
        assert!(
            ["shared", "copied", "EOPNOTSUPP"].contains(&shares.as_str()),
            "{shares}"
        );
        // One directory, so no pair: every cross_fs variant says why it did not run.
        let cross: Vec<_> = results(&recs)
            .into_iter()
            .filter(|r| r["check"] == "cfr.cross_fs")
            .collect();
        assert_eq!(cross.len(), 15);
        assert!(cross.iter().all(|r| r["outcome"] == "skip"), "{cross:?}");
    }
}

/// The reflink ioctls on the host: whatever the filesystem answers is judged by its rule (no
/// fail, no error), and a clone the filesystem refuses leaves cow_isolation a reasoned skip.
#[test]
#[serial]
fn reflink_answers_are_judged_and_refusals_skip_isolation() {
    for d in dirs() {
        let (code, recs) = run(d.path(), &["reflink.*"]);
        assert_eq!(code, 0, "{recs:?}");
        let clone = result(&recs, "reflink.clone");
        let iso = result(&recs, "reflink.cow_isolation");
        if clone["observed"] == "ok" {
            assert_eq!(iso["observed"], "write=isolated mmap=isolated", "{iso}");
        } else {
            assert_eq!(iso["outcome"], "skip", "{iso}");
            assert!(iso["detail"].as_str().unwrap().contains("FICLONE refused"));
        }
    }
}

/// io_uring on the host's disk and tmpfs: where the ring sets up, the file operations verify
/// their data, and a fixed buffer over a file mapping is either registered (and a READ_FIXED
/// into it shows through the mapping) or refused with one of the errnos the kernel's history
/// gives, never anything else.
#[test]
#[serial]
fn uring_moves_verified_data_and_file_buffers_register_or_are_refused() {
    for d in dirs() {
        let (code, recs) = run(d.path(), &["uring.*"]);
        assert_eq!(code, 0, "{recs:?}");
        if result(&recs, "uring.features")["outcome"] == "skip" {
            continue; // io_uring refused here; EXPLAINED_SKIPS covers the reason
        }
        for id in ["uring.read_fixed_direct", "uring.splice", "uring.tee"] {
            let r = result(&recs, id);
            assert!(r["observed"] == "ok" || r["outcome"] == "skip", "{r}");
        }
        for v in ["shared", "private"] {
            let r = result(&recs, &format!("uring.fixed_buffer_file[{v}]"));
            let seen = r["observed"].as_str().unwrap();
            assert!(["ok", "EOPNOTSUPP", "EFAULT"].contains(&seen), "{r}");
        }
    }
}

/// Every cost check on the host's disk and tmpfs: each path to each of its sinks, cached and (on
/// the disk) evicted, reports its per-MiB costs and its ratios to read+write; the premise rule
/// holds for a cached file; `--out` writes the same cost table report.md has for a matrix.
#[test]
#[serial]
fn cost_measures_every_path_and_sink() {
    let out = tempfile::tempdir().unwrap();
    for d in dirs() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
        // Quick: every path and sink as the full profile has them, on a smaller file (the
        // full profile runs in every_check_runs… above).
        cmd.args(["run", "--profile", "quick", "--check", "cost.*", "--out"])
            .arg(out.path())
            .arg("--dir")
            .arg(d.path());
        let o = cmd.output().unwrap();
        let recs: Vec<Value> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(o.status.code(), Some(0), "{recs:?}");
        let rs = results(&recs);
        assert_eq!(rs.len(), 26, "every path × sink × temperature");
        let tmpfs = rs[0]["fs"] == "tmpfs";
        for r in rs {
            let id = full_id(r);
            if r["outcome"] == "skip" {
                assert!(skip_is_explained(r), "{id}: {r}");
                let why = r["detail"].as_str().unwrap_or_default();
                assert!(
                    !id.ends_with("_warm]")
                        || id.starts_with("cost.uring")
                        || why.contains(harness::sys::NEEDS_ROOT),
                    "a cached file always measures (as root): {r}"
                );
                continue;
            }
            assert!(!tmpfs || id.ends_with("_warm]"), "{r}");
            let seen = r["observed"].as_str().unwrap();
            for f in [
                "cpu_us=",
                " wall_us=",
                " calls=",
                " vcsw=",
                " ivcsw=",
                " cpu_pct=",
            ] {
                assert!(seen.contains(f), "{id} lacks {f}: {seen}");
            }
            assert_eq!(
                id.contains("[tcp"),
                seen.contains(" rx_us="),
                "{id}: {seen}"
            );
            if id.starts_with("cost.read_write") {
                assert!(seen.contains(" cpu_pct=100 "), "{seen}");
            }
            let premise = ["cost.sendfile[", "cost.splice[", "cost.copy_file_range["]
                .iter()
                .any(|p| id.starts_with(p))
                && id.ends_with("_warm]");
            let want = if premise { "pass" } else { "info" };
            assert_eq!(r["outcome"], want, "{r}");
            if id.starts_with("cost.msg_zerocopy") {
                assert!(r["detail"].as_str().unwrap().contains("completions"), "{r}");
            }
        }
        let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        assert!(md.contains("## What zero-copy saves (cost)"), "{md}");
        assert!(md.contains("| path | native (native) |"), "{md}");
        assert!(md.contains("Acceleration, native: the host itself"), "{md}");
    }
}

#[test]
#[serial]
fn ktap_output_follows_the_kernels_grammar_with_the_ids_as_test_names() {
    let dirs = dirs();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "run",
            "--ktap",
            "--check",
            "splice.*",
            "--check",
            "mmap.offset_4k",
        ])
        .arg("--dir")
        .arg(dirs[0].path())
        .arg("--dir")
        .arg(dirs[1].path())
        .output()
        .expect("harness runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("KTAP version 1\n1..3\n"), "{text}");
    let parsed = zcmatrix_protocol::ktap::parse(&text);
    assert_eq!(parsed.problems, [], "{text}");
    let top = parsed.suite.unwrap();
    // The kernel-scope checks, then one test per directory, named by its filesystem.
    assert_eq!(top.tests[0].description, "kernel");
    assert_eq!(top.tests[2].description, "tmpfs");
    let subtests: Vec<&str> = top.tests[2]
        .subtests
        .as_ref()
        .unwrap()
        .tests
        .iter()
        .map(|t| t.description.as_str())
        .collect();
    assert!(
        subtests.iter().all(|id| id.starts_with("splice.")),
        "{subtests:?}"
    );
    assert!(subtests.len() >= 3, "{subtests:?}");
}
