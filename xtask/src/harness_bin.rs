//! Builds the harness as a static binary (it is /init in a guest with no libc) and asks it which
//! checks it has.

use std::path::PathBuf;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

/// glibc with crt-static needs nothing beyond the installed toolchain; its own target dir keeps
/// the static flags from invalidating the host build.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = crate::workspace_root();
    let target_dir = root.join("target/guest");
    let triple = "x86_64-unknown-linux-gnu";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let sh = Shell::new()?;
    sh.change_dir(&root);
    cmd!(
        sh,
        "{cargo} build --quiet --release --package harness --target {triple}"
    )
    .env("CARGO_TARGET_DIR", &target_dir)
    .env("RUSTFLAGS", "-C target-feature=+crt-static")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .quiet()
    .run()
    .context("building the static harness")?;
    let bin = target_dir.join(triple).join("release/harness");
    if !bin.is_file() {
        bail!("cargo built no {}", bin.display());
    }
    Ok(bin)
}

/// A check as `harness list` names it: its full id and the least profile it runs in.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListedCheck {
    pub id: String,
    pub profile: zcmatrix_protocol::Profile,
    /// Its probe swaps pages out: the guest needs a swap disk.
    #[serde(default)]
    pub needs_swap: bool,
    /// It talks to the host end through virtio-net or needs a network module: the guest needs
    /// its network.
    #[serde(default)]
    pub needs_net: bool,
}

/// The harness's checks, from `harness list`.
pub fn checks(bin: &PathBuf) -> anyhow::Result<Vec<ListedCheck>> {
    let sh = Shell::new()?;
    let out = cmd!(sh, "{bin} list").quiet().read()?;
    out.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("harness list said {l:?}")))
        .collect()
}
