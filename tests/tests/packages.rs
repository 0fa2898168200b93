//! Kernels as distributions ship them: the package files themselves as `--kernel`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_completed, cell, matrix};
use serde_json::Value;
use serial_test::serial;

/// (id, outcome, observed) of every result of a cell: what must not depend on how the kernel
/// was named.
fn verdicts(c: &Value) -> Vec<(String, Value, Value)> {
    c["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                common::full_id(r),
                r["outcome"].clone(),
                r["observed"].clone(),
            )
        })
        .collect()
}

const ARGS: &[&str] = &[
    "--fs",
    "tmpfs",
    "--check",
    "sendfile.*",
    "--check",
    "splice.*",
];

#[test]
#[serial]
fn a_debian_package_given_as_a_file_gives_the_series_results_and_is_named_by_it() {
    let series_out = tempfile::tempdir().unwrap();
    let mut args = vec!["--kernel", "6.1"];
    args.extend(ARGS);
    let (code, report) = matrix(series_out.path(), &args);
    let report = report.unwrap();
    let series = cell(&report, "tmpfs", None);
    assert_completed(series);
    assert_eq!(code, 0);
    // The very .deb the series run verified against kernels.lock, from the cache.
    let deb = xtask::cache_dir().join("debs").join(format!(
        "{}_{}.deb",
        series["kernel_package"].as_str().unwrap(),
        series["kernel_version"].as_str().unwrap()
    ));
    assert!(deb.is_file(), "{}", deb.display());

    let file_out = tempfile::tempdir().unwrap();
    let mut args = vec!["--kernel", deb.to_str().unwrap()];
    args.extend(ARGS);
    let (code, report) = matrix(file_out.path(), &args);
    let report = report.unwrap();
    let file = cell(&report, "tmpfs", None);
    assert_completed(file);
    assert_eq!(code, 0);
    assert_eq!(verdicts(file), verdicts(series));
    assert_eq!(file["kernel_package"], series["kernel_package"]);
    assert_eq!(file["kernel_version"], series["kernel_version"]);
    assert_eq!(file["kernel_release"], series["kernel_release"]);
    // The run names the file and its hash, as the lock does for a series.
    let files = report["run"]["kernel_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], deb.to_str().unwrap());
    assert_eq!(
        files[0]["sha256"].as_str().unwrap(),
        vm::kernel::sha256_file(&deb).unwrap()
    );
}

/// The release of Debian's 6.1 kernel and its unpacked tree in the cache (fetched and booted
/// once by a cheap run, so that the tree is there).
fn debian_6_1_tree() -> (String, std::path::PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let (_, report) = matrix(
        out.path(),
        &[
            "--kernel",
            "6.1",
            "--fs",
            "tmpfs",
            "--check",
            "splice.pipe_capacity",
        ],
    );
    let report = report.unwrap();
    let c = cell(&report, "tmpfs", None);
    let release = c["kernel_release"].as_str().unwrap().to_string();
    // The series' own tree (trees of packages made from it carry other names).
    let name = format!(
        "{}_{}_",
        c["kernel_package"].as_str().unwrap(),
        c["kernel_version"].as_str().unwrap()
    );
    let tree = std::fs::read_dir(xtask::cache_dir().join("kernels"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(&name)
                && p.join(format!("boot/vmlinuz-{release}")).is_file()
        })
        .expect("the 6.1 tree is in the cache");
    (release, tree)
}

/// A package made here with dpkg-deb: a real Debian kernel image and a modules tree without
/// the virtio disk drivers.
fn package_without_virtio(dir: &Path) -> std::path::PathBuf {
    let (release, tree) = debian_6_1_tree();
    let image = tree.join(format!("boot/vmlinuz-{release}"));
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("boot")).unwrap();
    let mods = root.join(format!("lib/modules/{release}"));
    std::fs::create_dir_all(mods.join("kernel/fs")).unwrap();
    std::fs::write(mods.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    std::fs::copy(&image, root.join(format!("boot/vmlinuz-{release}"))).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: linux-image-{release}-novirtio\nVersion: 1.0\nArchitecture: amd64\n\
             Maintainer: zcmatrix tests <tests@invalid>\nDescription: no virtio drivers\n"
        ),
    )
    .unwrap();
    let deb = dir.join("novirtio.deb");
    let st = Command::new("dpkg-deb")
        .args(["--build", "-Zgzip"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    deb
}

#[test]
#[serial]
fn a_package_without_virtio_drivers_is_refused_before_booting_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let deb = package_without_virtio(dir.path());
    let out = tempfile::tempdir().unwrap();
    let (code, report) = matrix(
        out.path(),
        &[
            "--kernel",
            deb.to_str().unwrap(),
            "--fs",
            "tmpfs",
            "--check",
            "splice.*",
        ],
    );
    assert_eq!(code, 3, "an unusable kernel is the host's problem to fix");
    let report = report.unwrap();
    let c = cell(&report, "tmpfs", None);
    assert_eq!(c["status"], "infra_error");
    let detail = c["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("virtio_pci, virtio_blk") && detail.contains("novirtio"),
        "{detail}"
    );
    assert!(c["kernel_release"].is_null(), "no guest booted: {c}");
    let dir_name = c["guest_dir"].as_str().unwrap();
    assert!(
        !out.path().join(dir_name).join("console.log").exists(),
        "QEMU was never started"
    );
}

/// An RPM laid out as RHEL's and Fedora's kernel-core is (the image at
/// `/lib/modules/RELEASE/vmlinuz`, the modules beside it), made with the rpm crate from the files
/// of Debian's 6.1 kernel.
fn rpm_of_debian_6_1(dir: &Path) -> std::path::PathBuf {
    let (release, tree) = debian_6_1_tree();
    let base = format!("/lib/modules/{release}");
    let mut b = rpm::PackageBuilder::new(
        "kernel-core",
        "6.1.0",
        "GPL-2.0-only",
        "x86_64",
        "Debian's 6.1 cloud kernel in RPM's layout",
    );
    // Compressed as Fedora's are (zstd), at a level that keeps the test quick.
    b.release("56")
        .using_config(rpm::BuildConfig::v4().compression(rpm::CompressionWithLevel::Zstd(1)));
    b.with_file(
        tree.join(format!("boot/vmlinuz-{release}")),
        rpm::FileOptions::new(format!("{base}/vmlinuz")),
    )
    .unwrap();
    let modules = tree.join(&base[1..]);
    for e in walkdir::WalkDir::new(&modules).into_iter().flatten() {
        let rel = e.path().strip_prefix(&modules).unwrap();
        // zcmatrix's own index files of the cached tree are not the kernel's.
        if !e.file_type().is_file() || rel.to_string_lossy().starts_with("zcmatrix-") {
            continue;
        }
        b.with_file(
            e.path(),
            rpm::FileOptions::new(format!("{base}/{}", rel.display())),
        )
        .unwrap();
    }
    let path = dir.join("kernel-core-6.1.0-56.x86_64.rpm");
    b.build().unwrap().write_file(&path).unwrap();
    path
}

#[test]
#[serial]
fn an_rpm_in_kernel_core_layout_boots_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let rpm = rpm_of_debian_6_1(dir.path());
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["--kernel", rpm.to_str().unwrap()];
    args.extend(ARGS);
    let (code, report) = matrix(out.path(), &args);
    let report = report.unwrap();
    let c = cell(&report, "tmpfs", None);
    assert_completed(c);
    assert_eq!(code, 0);
    assert_eq!(c["kernel_package"], "kernel-core");
    assert_eq!(c["kernel_version"], "6.1.0-56");
    assert!(c["kernel_spec"]
        .as_str()
        .unwrap()
        .starts_with("kernel-core_6.1.0-56"));
    let results = c["results"].as_array().unwrap();
    assert!(
        results.len() > 5 && results.iter().all(|r| r["outcome"] != "error"),
        "{c}"
    );
}
