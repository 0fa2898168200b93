//! Host-native runs of the checks: the harness binary against a temporary directory on the build
//! machine's kernel. Asserts record shape and the facts that hold on every supported kernel.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use test_case::test_case;

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

#[test]
fn stream_starts_with_hello_ends_with_summary_and_covers_every_check() {
    let listed = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("list")
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.len() >= 5, "{ids:?}");
    for d in dirs() {
        let (code, recs) = run(d.path(), &[]);
        assert_eq!(recs.first().unwrap()["type"], "hello");
        assert_eq!(recs.last().unwrap()["type"], "summary");
        for id in &ids {
            let r = result(&recs, id);
            for field in [
                "outcome", "observed", "expected", "evidence", "detail", "scope",
            ] {
                assert!(r.get(field).is_some(), "{id} lacks {field}");
            }
            assert_ne!(
                r["outcome"], "error",
                "{id} could not finish: {}",
                r["detail"]
            );
            assert_ne!(r["expected"], "", "{id} has no expectation");
        }
        let failed = recs.iter().any(|r| r["outcome"] == "fail");
        assert_eq!(code, if failed { 1 } else { 0 });
    }
}

#[test]
fn fs_results_name_the_filesystem_they_ran_on() {
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (_, recs) = run(shm.path(), &["dio.open"]);
    assert_eq!(result(&recs, "dio.open")["fs"], "tmpfs");
}

#[test]
fn a_filter_runs_only_matching_checks() {
    let d = tempfile::tempdir().unwrap();
    let (_, recs) = run(d.path(), &["sendfile.file_to_*"]);
    let ran: Vec<&str> = recs
        .iter()
        .filter(|r| r["type"] == "result")
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
fn a_filter_matching_nothing_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let (code, recs) = run(d.path(), &["nosuch.*"]);
    assert_eq!(code, 2);
    assert!(recs.is_empty());
}

// Facts that hold on every kernel and filesystem zcmatrix supports.
#[test_case("mmap.private_write", &["isolated"]; "a private mapping never writes the file")]
#[test_case("sendfile.file_to_pipe", &["ok"]; "sendfile fills a pipe with the exact bytes")]
#[test_case("splice.no_pipe", &["EINVAL"]; "splice needs a pipe on one side")]
#[test_case("dio.misaligned_buffer", &["EINVAL", "ok", "skipped"]; "a misaligned direct read fails or is right, never wrong")]
#[test_case("dio.open", &["ok", "EINVAL"]; "direct open succeeds or is refused by the filesystem")]
#[test_case("dio.misaligned_offset", &["EINVAL", "ok", "skipped"]; "a misaligned offset fails or is right")]
#[test_case("dio.read_eof", &["4196", "skipped"]; "a direct read stops at end of file")]
#[test_case("dio.write_extend", &["12288", "skipped"]; "a direct write past end of file extends it with zeros")]
#[test_case("dio.append", &["ok", "skipped"]; "direct appends land at end of file in order")]
#[test_case("dio.sees_dirty_cache", &["new", "skipped"]; "a direct read sees dirty page cache")]
#[test_case("dio.sees_dirty_mmap", &["new", "skipped"]; "a direct read sees a dirty shared mapping")]
#[test_case("dio.invalidates_cache", &["new", "skipped"]; "a direct write invalidates cached pages")]
#[test_case("dio.statx_agrees", &["agrees", "skipped"]; "statx direct I/O promises hold")]
#[test_case("dio.min_mem_align", &["1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096", "skipped"]; "some buffer alignment works")]
#[test_case("sendfile.file_to_tcp", &["ok"]; "sendfile file to tcp is byte exact")]
#[test_case("sendfile.file_to_unix", &["ok"]; "sendfile file to unix socket is byte exact")]
#[test_case("sendfile.file_to_file", &["ok"]; "sendfile file to file is byte exact")]
#[test_case("sendfile.socket_source", &["EINVAL"]; "sendfile refuses a socket as input")]
#[test_case("sendfile.append_out", &["EINVAL"]; "sendfile refuses an append-only output")]
#[test_case("sendfile.past_eof", &["0"]; "sendfile past end of file moves nothing")]
#[test_case("sendfile.offset_pointer", &["ok"]; "sendfile offset pointer semantics")]
#[test_case("sendfile.max_count", &["2147479552"]; "sendfile moves at most MAX_RW_COUNT")]
#[test_case("splice.file_to_pipe", &["ok"]; "splice file to pipe is byte exact")]
#[test_case("splice.pipe_to_file", &["ok"]; "splice pipe to file is byte exact")]
#[test_case("splice.pipe_to_tcp", &["ok"]; "splice pipe to tcp is byte exact")]
#[test_case("splice.tcp_to_pipe", &["ok"]; "splice tcp to pipe is byte exact")]
#[test_case("splice.pipe_to_pipe", &["ok"]; "splice pipe to pipe is byte exact")]
#[test_case("splice.nonblock_empty", &["EAGAIN"]; "nonblocking splice from an empty pipe")]
#[test_case("splice.append_out", &["EINVAL"]; "splice refuses an append-only output")]
#[test_case("tee.duplicate", &["ok"]; "tee duplicates without consuming")]
#[test_case("tee.non_pipe", &["EINVAL"]; "tee needs pipes")]
#[test_case("cow.fork_basic[base]", &["isolated"]; "writes after fork stay in their process")]
#[test_case("vmsplice.by_reference", &["reference"]; "vmsplice refers to user pages")]
#[test_case("vmsplice.non_pipe", &["EBADF"]; "vmsplice needs a pipe")]
#[test_case("vmsplice.iov_limit", &["EINVAL"]; "vmsplice refuses more than IOV_MAX segments")]
#[test_case("mmap.beyond_eof", &["SIGBUS"]; "touching past end of file is SIGBUS")]
#[test_case("mmap.truncate", &["SIGBUS"]; "touching a truncated mapping is SIGBUS")]
#[test_case("mmap.eof_tail", &["zero, not persisted"]; "the tail of the last page is zero and private")]
#[test_case("mmap.shared_read_coherent", &["coherent"]; "shared stores are seen by read")]
#[test_case("mmap.bad_offset", &["EINVAL"]; "an unaligned offset is refused")]
#[test_case("mmap.map_sync", &["EOPNOTSUPP"]; "MAP_SYNC needs DAX")]
#[test_case("mmap.dontneed_private", &["file content"]; "MADV_DONTNEED drops a private copy")]
fn observation_is_one_of(id: &str, allowed: &[&str]) {
    for d in dirs() {
        let (_, recs) = run(d.path(), &[id]);
        let r = result(&recs, id);
        let seen = r["observed"].as_str().unwrap();
        assert!(
            allowed.contains(&seen),
            "{id} on {}: {seen} ({})",
            r["fs"],
            r["detail"]
        );
    }
}

#[test]
fn map_populate_leaves_no_fault_that_waits_for_io() {
    for d in dirs() {
        let (_, recs) = run(d.path(), &["mmap.fault_populate"]);
        let r = result(&recs, "mmap.fault_populate");
        let seen = r["observed"].as_str().unwrap();
        assert!(seen.starts_with("major=0 ") || seen == "skipped", "{seen}");
    }
}

/// A cold scan needs root to drop caches; without it the check must say so rather than guess.
#[test]
fn cold_scan_goes_to_disk_or_says_it_needs_root() {
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, recs) = run(d.path(), &["mmap.fault_cold_scan"]);
    let r = result(&recs, "mmap.fault_cold_scan");
    match r["outcome"].as_str().unwrap() {
        "skip" => assert!(r["detail"].as_str().unwrap().contains("needs root"), "{r}"),
        _ => {
            let seen = r["observed"].as_str().unwrap();
            assert!(
                seen.starts_with("major=") && !seen.starts_with("major=0 "),
                "{seen}"
            );
        }
    }
}

/// A backing the machine cannot produce is a skip with its reason, never a pass.
#[test]
fn cow_backings_the_host_cannot_produce_are_skips_with_reasons() {
    let d = tempfile::tempdir().unwrap();
    let (_, recs) = run(d.path(), &["cow.fork_basic[*]"]);
    let results: Vec<&Value> = recs.iter().filter(|r| r["type"] == "result").collect();
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
