//! The proof at the end of setup: what a run will do first, done now. Each QEMU binary runs
//! (`-version`: its shared libraries load), and the static harness is linked for every guest
//! architecture of matrix.toml by the same build a run uses, so a gap is named here and the
//! run's first build finds the binaries warm.

use std::process::Command;

use vm::arch::Arch;

use super::needs::Need;

/// What failed, one message per gap, each naming the package to install or reinstall.
pub fn prove(arches: &[Arch], needs: &[Need], packages: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut gaps = Vec::new();
    for &arch in arches {
        let (qemu, package) = vm::qemu::binary(arch);
        match Command::new(qemu).arg("-version").output() {
            Ok(out) if out.status.success() => {
                let v = String::from_utf8_lossy(&out.stdout);
                println!("setup: {qemu}: {}", v.lines().next().unwrap_or_default());
            }
            Ok(out) => gaps.push(format!(
                "{qemu} -version failed ({}): {}; reinstall it: sudo apt-get install --reinstall \
                 {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                packages(package)
            )),
            Err(e) => gaps.push(format!(
                "{qemu} cannot run ({e}): sudo apt-get install {}",
                packages(package)
            )),
        }
    }
    for &arch in arches {
        println!(
            "setup: linking the static {arch} harness (the build every run uses; it is kept \
             under target/guest)"
        );
        if let Err(e) = crate::harness_bin::build(arch) {
            let why = format!("linking the static {arch} harness");
            let mut closure: Vec<String> = needs
                .iter()
                .filter(|n| n.why == why)
                .map(|n| format!("{} ({})", packages(n.package), n.probe))
                .collect();
            closure.dedup();
            gaps.push(format!(
                "{why} failed: {e:#}. Setup found what it knows the link reads{}; reinstall \
                 it (sudo apt-get install --reinstall <package>) or report this as a gap in \
                 `cargo xtask setup`",
                if closure.is_empty() {
                    String::new()
                } else {
                    format!(": {}", closure.join(", "))
                }
            ));
        }
    }
    gaps
}
