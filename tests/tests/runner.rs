//! End-to-end tests of the runner itself: parallel guests, and every way a guest or a run can
//! end (the acceleration verdict is tests/accel.rs's). Real guests, one test at a time (they
//! share the cache and the two cores).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::matrix;
use serde_json::Value;
use serial_test::serial;

/// report.json without what depends on the clock.
fn without_timings(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "boot_ms" | "duration_ms"))
                .map(|(k, v)| (k.clone(), without_timings(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_timings).collect()),
        v => v.clone(),
    }
}

#[test]
#[serial]
fn parallel_guests_write_the_same_report_as_serial_ones() {
    let args = |jobs: &'static str| {
        [
            "--kernel",
            "5.10",
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--fs",
            "ext4",
            "--geometry",
            "512",
            "--check",
            "dio.*",
            "--jobs",
            jobs,
        ]
    };
    let serial_out = tempfile::tempdir().unwrap();
    let (serial_code, serial) = matrix(serial_out.path(), &args("1"));
    let parallel_out = tempfile::tempdir().unwrap();
    let (parallel_code, parallel) = matrix(parallel_out.path(), &args("2"));
    let (serial, parallel) = (serial.unwrap(), parallel.unwrap());
    assert_eq!(serial["cells"].as_array().unwrap().len(), 4);
    for c in serial["cells"].as_array().unwrap() {
        common::assert_completed(c);
    }
    assert_eq!(without_timings(&serial), without_timings(&parallel));
    assert_eq!(serial_code, parallel_code);
    for k in ["5.10", "6.1"] {
        assert!(parallel_out
            .path()
            .join(format!("guests/{k}/console.log"))
            .is_file());
    }
}

/// The pid of the QEMU whose command line names `out` (each test has its own), once it runs.
fn qemu_pid(out: &Path) -> Option<i32> {
    let needle = out.to_str().unwrap();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.starts_with(vm::qemu::QEMU) || cmdline.contains("/qemu-system"))
            .then_some(())
            .filter(|_| cmdline.contains(needle))
            .map(|_| pid)
    })
}

/// Result records that have reached the guest's results.jsonl so far, whole: a line still being
/// written when QEMU is killed stays a truncated (raw) line, not a record.
fn results_so_far(guest_dir: &Path) -> usize {
    std::fs::read_to_string(guest_dir.join("results.jsonl"))
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && l.contains(r#""type":"result""#))
        .count()
}

/// Checks the console has announced so far.
fn checks_started(guest_dir: &Path) -> usize {
    std::fs::read_to_string(guest_dir.join("console.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(zcmatrix_protocol::CONSOLE_CHECK_START))
        .count()
}

/// Waits (up to a minute) until `ready` holds for the 6.1 guest under `out`, then returns its
/// QEMU's pid.
fn when_guest(out: &Path, ready: impl Fn(&Path) -> bool) -> i32 {
    when_any_guest(out, &["6.1"], ready).0
}

/// Waits (up to two minutes) until `ready` holds for one of the `kernels`' guests under `out`
/// (whichever the run started first); its QEMU's pid and the kernel.
fn when_any_guest<'k>(
    out: &Path,
    kernels: &[&'k str],
    ready: impl Fn(&Path) -> bool,
) -> (i32, &'k str) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < until, "no guest ever got there");
        if let Some(pid) = qemu_pid(out) {
            for k in kernels {
                if ready(&out.join("guests").join(k)) {
                    return (pid, k);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 105 checks, about 3 s under TCG: time enough to catch the guest mid-run.
const COW: &[&str] = &["--kernel", "6.1", "--fs", "tmpfs", "--check", "cow.*"];

#[test]
#[serial]
fn qemu_killed_mid_run_is_qemu_exited_and_keeps_what_streamed() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().to_path_buf();
    let killer = std::thread::spawn(move || {
        let pid = when_guest(&path, |d| results_so_far(d) >= 3);
        // SAFETY: kill(2) on the pid of the QEMU this test started; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    });
    let (code, report) = matrix(out.path(), COW);
    killer.join().unwrap();
    let c = common::cell(report.as_ref().unwrap(), "tmpfs", None);
    assert_eq!(c["status"], "qemu_exited", "{}", c["status_detail"]);
    let detail = c["status_detail"].as_str().unwrap();
    assert!(detail.contains("signal 9 (SIGKILL)"), "{detail}");
    assert!(
        c["results"].as_array().unwrap().len() >= 3,
        "streamed results are kept"
    );
    assert_eq!(c["guest_summary"], Value::Null);
    assert_eq!(
        code, 3,
        "QEMU killed from outside says nothing about the kernel"
    );
}

#[test]
#[serial]
fn sigint_stops_the_guests_writes_the_report_and_exits_130() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().to_path_buf();
    let interrupter = std::thread::spawn(move || {
        let (_, first) = when_any_guest(&path, &["6.1", "5.10"], |d| results_so_far(d) >= 3);
        // SAFETY: kill(2) to this very process; the run's SIGINT handler sets its stop flag.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGINT) }, 0);
        first
    });
    // One guest at a time (--jobs 1), so the other has not started when the signal comes.
    // Which goes first depends on how long each took last time (longest first).
    let mut args = COW.to_vec();
    args.extend(["--kernel", "5.10", "--jobs", "1"]);
    let started = Instant::now();
    let (code, report) = matrix(out.path(), &args);
    let first = interrupter.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(code, 130);
    let report = report.expect("the report is written");
    let cells = report["cells"].as_array().unwrap();
    let of = |k: &str| cells.iter().find(|c| c["kernel_spec"] == k).unwrap();
    let measured = of(first);
    assert_eq!(
        measured["status"], "interrupted",
        "{}",
        measured["status_detail"]
    );
    assert!(measured["results"].as_array().unwrap().len() >= 3);
    let unstarted = of(if first == "6.1" { "5.10" } else { "6.1" });
    assert_eq!(unstarted["status"], "interrupted");
    assert_eq!(unstarted["results"], Value::Array(vec![]));
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("interrupted"), "{md}");
}

#[test]
#[serial]
fn a_guest_that_freezes_in_a_check_is_check_timeout_naming_it() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().to_path_buf();
    let freezer = std::thread::spawn(move || loop {
        // Stop QEMU while a check is announced and has no record yet; if that check ended in
        // between, let the guest go on and try the next one.
        let pid = when_guest(&path, |d| checks_started(d) > results_so_far(d).max(2));
        // SAFETY: kill(2) on the pid of the QEMU this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let dir = path.join("guests/6.1");
        if checks_started(&dir) > results_so_far(&dir) {
            return;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    let mut args = COW.to_vec();
    args.extend(["--timeout", "15"]);
    let (code, report) = matrix(out.path(), &args);
    freezer.join().unwrap();
    let c = common::cell(report.as_ref().unwrap(), "tmpfs", None);
    assert_eq!(c["status"], "check_timeout", "{}", c["status_detail"]);
    let detail = c["status_detail"].as_str().unwrap();
    let named = detail.split(" on kernel did not finish").next().unwrap();
    assert!(named.starts_with("cow."), "{detail}");
    let results = c["results"].as_array().unwrap();
    assert!(results.len() >= 2, "results before it are kept");
    assert!(
        results.iter().all(|r| common::full_id(r) != named),
        "{named} has no result"
    );
    assert_eq!(code, 4, "a guest that stopped answering mid-run");
}

#[test]
#[serial]
fn a_boot_that_never_reaches_the_harness_is_a_boot_timeout_in_seconds() {
    let out = tempfile::tempdir().unwrap();
    // No /init to run: the kernel looks for a root device instead, and waits for it forever.
    let started = Instant::now();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "dio.open",
            "--kernel-arg",
            "rdinit=/nonexistent",
            "--kernel-arg",
            "root=/dev/vdz",
            "--kernel-arg",
            "rootwait",
            "--boot-timeout",
            "8",
            "--retries",
            "1",
        ],
    );
    // Far below the 300 s run deadline: the boot deadline, not the run's, ended both attempts.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    let c = common::cell(report.as_ref().unwrap(), "tmpfs", None);
    assert_eq!(c["status"], "boot_timeout", "{}", c["status_detail"]);
    assert_eq!(c["kernel_release"], Value::Null);
    assert!(c["status_detail"].as_str().unwrap().contains("8s"));
    assert_eq!(c["retries"], 1);
    assert!(out.path().join("guests/6.1.attempt1/console.log").is_file());
    assert_eq!(code, 3);
}

/// Hard links of `src` at `dst` where they share a filesystem, else a copy: a file of the copy is
/// only ever replaced (unlinked, written anew), never changed in place, so `src` stays intact.
fn link_tree(src: &Path, dst: &Path) {
    let linked = std::process::Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap()
        .success();
    if !linked {
        let _ = std::fs::remove_dir_all(dst);
        assert!(std::process::Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(src)
            .arg(dst)
            .status()
            .unwrap()
            .success());
    }
}

/// Replaces `file` by a copy with `len` bytes at `at` overwritten by `byte`.
fn corrupt(file: &Path, at: u64, len: usize, byte: u8) {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = file.with_extension("corrupting");
    assert!(std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(file)
        .arg(&tmp)
        .status()
        .unwrap()
        .success());
    let mut f = std::fs::File::options().write(true).open(&tmp).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&vec![byte; len]).unwrap();
    drop(f);
    std::fs::rename(&tmp, file).unwrap();
}

/// One 6.1 guest, one check on ext4/512, with the cache at `cache`. The boot deadline is
/// generous (two guests may boot at once on a busy machine): these tests are about the cache.
fn ext4_dio_open(out: &Path, cache: &Path) -> (u8, Option<Value>) {
    matrix(
        out,
        &[
            "--kernel",
            "6.1",
            "--fs",
            "ext4",
            "--geometry",
            "512",
            "--check",
            "dio.open",
            "--cache",
            cache.to_str().unwrap(),
            "--boot-timeout",
            "120",
        ],
    )
}

#[test]
#[serial]
fn a_corrupted_kernel_and_a_corrupted_image_are_found_rebuilt_and_the_cell_completes() {
    // What the shared cache holds for a 6.1 ext4/512 guest, made if missing.
    let cache = xtask::cache_dir();
    let spec = vm::kernel::KernelSpec::parse("6.1").unwrap();
    let mut lock = vm::kernel::LockFile::load(&xtask::lock_path()).unwrap();
    let k = vm::kernel::KernelStore::new(&cache)
        .ensure(&spec, &mut lock)
        .unwrap();
    let image = vm::disk::blank_image(&cache, "ext4", 512).unwrap();
    let good_kernel = vm::cache::hash_file(&k.image).unwrap();
    let good_image = vm::cache::hash_file(&image).unwrap();

    // A private cache: the .debs, that kernel's tree and that image, then damage in it.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("cache");
    std::fs::create_dir_all(private.join("kernels")).unwrap();
    std::fs::create_dir_all(private.join("disks")).unwrap();
    link_tree(&cache.join("debs"), &private.join("debs"));
    let tree = k
        .image
        .ancestors()
        .find(|p| p.parent() == Some(&cache.join("kernels")))
        .unwrap();
    let my_tree = private.join("kernels").join(tree.file_name().unwrap());
    link_tree(tree, &my_tree);
    let my_kernel = my_tree.join(k.image.strip_prefix(tree).unwrap());
    let my_image = private.join("disks").join(image.file_name().unwrap());
    for f in [&image, &image.with_extension("img.manifest.json")] {
        link_tree(f, &private.join("disks").join(f.file_name().unwrap()));
    }
    // A few KiB of the kernel zeroed (it used to print nothing and wait out the deadline) and
    // the ext4 superblock overwritten (it used to fail the mount with EBADMSG).
    corrupt(&my_kernel, 64 << 10, 8 << 10, 0);
    corrupt(&my_image, 1024, 1024, 0x5a);
    assert_ne!(vm::cache::hash_file(&my_kernel).unwrap(), good_kernel);
    let bad_image = vm::cache::hash_file(&my_image).unwrap();

    let out = dir.path().join("out");
    let (code, report) = ext4_dio_open(&out, &private);
    let c = common::cell(report.as_ref().unwrap(), "ext4", Some(512));
    common::assert_completed(c);
    assert_eq!(common::observed(c, "dio.open"), "ok");
    assert_eq!(code, 0);
    assert_eq!(
        vm::cache::hash_file(&my_kernel).unwrap(),
        good_kernel,
        "rebuilt"
    );
    // mkfs writes fresh UUIDs and times: a remade image is another blank image, with its own
    // manifest.
    let remade = vm::cache::hash_file(&my_image).unwrap();
    assert_ne!(remade, bad_image, "rebuilt");
    let manifest =
        vm::cache::Manifest::load(&my_image.with_extension("img.manifest.json")).unwrap();
    let name = my_image.file_name().unwrap().to_str().unwrap();
    assert_eq!(manifest.files[name], remade);
    // The shared cache was never touched.
    assert_eq!(vm::cache::hash_file(&k.image).unwrap(), good_kernel);
    assert_eq!(vm::cache::hash_file(&image).unwrap(), good_image);
}

#[test]
#[serial]
fn a_garbled_result_stream_is_kept_raw_and_never_stops_the_host() {
    // The kernel's early console on the result port, kept for the whole boot: its log lands
    // between (and may land inside) the harness's records there.
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "dio.*",
            "--kernel-arg",
            "earlyprintk=serial,ttyS1,115200",
            "--kernel-arg",
            "keep_bootcon",
        ],
    );
    let report = report.expect("a report is written");
    let c = common::cell(&report, "tmpfs", None);
    let raw = std::fs::read_to_string(out.path().join("guests/6.1/raw-lines.txt")).unwrap();
    assert!(
        raw.contains("Linux version"),
        "the kernel's log is kept raw: {raw}"
    );
    assert!(
        c["guest_errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "stream"),
        "{c}"
    );
    assert_ne!(c["kernel_release"], Value::Null, "what parsed is kept");
    assert!(!c["results"].as_array().unwrap().is_empty(), "{c}");
    assert_eq!(
        code, 3,
        "a guest whose stream was garbled did not run cleanly"
    );
}

#[test]
#[serial]
fn two_runs_sharing_an_empty_cache_build_each_entry_once_and_both_complete() {
    // A cache with only the .debs: both runs must unpack the same kernel and make the same
    // images at once, and the locks make one wait for the other's entry.
    let cache = xtask::cache_dir();
    let spec = vm::kernel::KernelSpec::parse("6.1").unwrap();
    let mut lock = vm::kernel::LockFile::load(&xtask::lock_path()).unwrap();
    vm::kernel::KernelStore::new(&cache)
        .ensure(&spec, &mut lock)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("cache");
    std::fs::create_dir_all(&shared).unwrap();
    link_tree(&cache.join("debs"), &shared.join("debs"));
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            let shared = shared.clone();
            std::thread::spawn(move || {
                let (code, report) = ext4_dio_open(&out, &shared);
                (code, report.unwrap())
            })
        })
        .collect();
    for r in runs {
        let (code, report) = r.join().unwrap();
        common::assert_completed(common::cell(&report, "ext4", Some(512)));
        assert_eq!(code, 0);
    }
    let trees: Vec<_> = std::fs::read_dir(shared.join("kernels"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .collect();
    assert_eq!(trees.len(), 1, "one tree, no leftover temporary directory");
}
