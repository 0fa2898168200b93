//! Builds the harness as a static binary per guest architecture (it is /init in a guest with no
//! libc) and asks it which checks it has.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use vm::arch::Arch;
use xshell::{cmd, Shell};
use zcmatrix_protocol::catalogue::CheckInfo;

/// The static harness for `arch`, built with its own target dir so the static flags do not
/// invalidate the host build. glibc with crt-static (x86_64, ppc64le) or musl (arm64) needs
/// nothing at run time; another architecture than the host's is linked by Debian's cross gcc
/// (`cargo xtask setup` installs it and the rustup target; a run asks setup's `link_gap` first,
/// see `matrix::build_harness`, so that a missing piece is named rather than met by the linker).
pub fn build(arch: Arch) -> anyhow::Result<PathBuf> {
    let root = crate::workspace_root();
    let target_dir = root.join("target/guest");
    let triple = arch.rust_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let sh = Shell::new()?;
    sh.change_dir(&root);
    // Without the `render` feature: a guest streams records, the host renders them; the
    // renderers would only make every guest's initramfs larger.
    let mut c = cmd!(
        sh,
        "{cargo} build --quiet --release --package harness --no-default-features --target {triple}"
    )
    .env("CARGO_TARGET_DIR", &target_dir)
    .env("RUSTFLAGS", "-C target-feature=+crt-static")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .quiet();
    if arch != Arch::host() {
        if let Some((linker, _)) = arch.cross_linker() {
            c = c.env(linker_var(triple), linker);
        }
    }
    c.run()
        .with_context(|| format!("building the static {arch} harness ({triple})"))?;
    let bin = target_dir.join(triple).join("release/harness");
    if !bin.is_file() {
        bail!("cargo built no {}", bin.display());
    }
    // A guest has no loader and no libraries: a binary that needs them would only show as a
    // guest that never says hello.
    let bytes = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    vm::arch::check_static_elf(&bytes, arch)
        .with_context(|| format!("the harness built for {arch} ({})", bin.display()))?;
    Ok(bin)
}

/// Cargo's variable naming the linker of a target: `CARGO_TARGET_<TRIPLE>_LINKER`.
fn linker_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

/// The harness's checks, from `harness list` (of the host's harness: the checks are the same on
/// every architecture).
pub fn checks(bin: &Path) -> anyhow::Result<Vec<CheckInfo>> {
    let sh = Shell::new()?;
    let out = cmd!(sh, "{bin} list").quiet().read()?;
    out.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("harness list said {l:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_variables_follow_cargos_spelling() {
        assert_eq!(
            linker_var("aarch64-unknown-linux-musl"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }
}
