//! The Rust toolchain of a machine "with Rust installed": the host's rustup toolchain copied
//! into a home of the root, as rustup's installer leaves it (~/.rustup, ~/.cargo/bin), but
//! with the host's target only: adding the guests' targets is `cargo xtask setup`'s job.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

pub struct HostToolchain {
    /// `stable-x86_64-unknown-linux-gnu`.
    pub name: String,
    /// Its directory (symbolic links resolved).
    dir: PathBuf,
    settings: String,
    cargo_bin: PathBuf,
    /// `x86_64-unknown-linux-gnu`.
    host: String,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

impl HostToolchain {
    /// The toolchain rustup uses in this workspace.
    pub fn discover() -> anyhow::Result<HostToolchain> {
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".rustup"));
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cargo"));
        let sh = Shell::new()?;
        sh.change_dir(crate::workspace_root());
        let active = cmd!(sh, "rustup show active-toolchain")
            .read()
            .context("a fresh root gets this host's rustup toolchain: is rustup installed?")?;
        let name = active
            .split_whitespace()
            .next()
            .context("rustup names no active toolchain")?
            .to_string();
        let host = host_triple(&cmd!(sh, "rustc -vV").read()?)
            .context("rustc -vV names no host")?
            .to_string();
        let dir = fs::canonicalize(rustup_home.join("toolchains").join(&name))
            .with_context(|| format!("rustup's toolchain {name}"))?;
        let settings = fs::read_to_string(rustup_home.join("settings.toml")).unwrap_or_default();
        Ok(HostToolchain {
            name,
            dir,
            settings,
            cargo_bin: cargo_home.join("bin"),
            host,
        })
    }

    /// Copies it into `home` (`<root>/root`, `<root>/home/NAME`): ~/.rustup with this one
    /// toolchain, the default, and ~/.cargo/bin (rustup and its proxies). Returns the targets
    /// left out.
    pub fn install(&self, home: &Path) -> anyhow::Result<Vec<String>> {
        let rustup = home.join(".rustup");
        let toolchains = rustup.join("toolchains");
        let bin = home.join(".cargo");
        fs::create_dir_all(&toolchains)?;
        fs::create_dir_all(&bin)?;
        let sh = Shell::new()?;
        let (src, dst) = (&self.dir, toolchains.join(&self.name));
        cmd!(sh, "cp -a {src} {dst}").run()?;
        let (src, dst) = (&self.cargo_bin, &bin);
        cmd!(sh, "cp -a {src} {dst}").run()?;
        fs::write(
            rustup.join("settings.toml"),
            settings_toml(&self.settings, &self.name),
        )?;
        let rustlib = dst_rustlib(&toolchains.join(&self.name));
        let components = fs::read_to_string(rustlib.join("components"))
            .with_context(|| format!("{} lists no components", rustlib.display()))?;
        let (kept, left_out) = without_foreign_targets(&components, &self.host);
        for t in &left_out {
            fs::remove_dir_all(rustlib.join(t))
                .with_context(|| format!("removing the copied {t} library"))?;
            fs::remove_file(rustlib.join(format!("manifest-rust-std-{t}")))?;
        }
        fs::write(rustlib.join("components"), kept)?;
        let config = rustlib.join("multirust-config.toml");
        let text =
            fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
        fs::write(&config, config_without_foreign_targets(&text, &self.host))?;
        if !rustlib.join(&self.host).is_dir() {
            bail!("the toolchain {} has no library for its host", self.name);
        }
        Ok(left_out)
    }
}

fn dst_rustlib(toolchain: &Path) -> PathBuf {
    toolchain.join("lib/rustlib")
}

/// The `host:` line of `rustc -vV`.
fn host_triple(verbose_version: &str) -> Option<&str> {
    verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("host:"))
        .map(str::trim)
}

/// rustup's `components` list without the standard libraries of other targets than `host`,
/// and those targets: as rustup records an install that never added them.
fn without_foreign_targets(components: &str, host: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut left_out = Vec::new();
    for line in components.lines() {
        match line.trim().strip_prefix("rust-std-") {
            Some(target) if target != host => left_out.push(target.to_string()),
            _ => {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    (kept, left_out)
}

/// rustup's record of the installed components (`multirust-config.toml`, what `rustup target
/// list --installed` reads) without the `rust-std` of other targets than `host`.
fn config_without_foreign_targets(config: &str, host: &str) -> String {
    let mut blocks = config.split("[[components]]");
    let mut out = blocks.next().unwrap_or("").to_string();
    for b in blocks {
        let field = |name: &str| {
            b.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let foreign_std =
            field("pkg").as_deref() == Some("rust-std") && field("target").as_deref() != Some(host);
        if !foreign_std {
            out.push_str("[[components]]");
            out.push_str(b);
        }
    }
    out
}

/// The host's rustup settings with `toolchain` as the default (the copy has no other); the
/// overrides name host folders, which the root does not have.
fn settings_toml(host: &str, toolchain: &str) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if line.trim_start().starts_with('[') {
            break;
        }
        if key != "default_toolchain" && !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("default_toolchain = \"{toolchain}\"\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hosts_standard_library_stays() {
        let components = "clippy-preview-x86_64-unknown-linux-gnu\n\
                          rust-std-x86_64-unknown-linux-gnu\n\
                          rustc-x86_64-unknown-linux-gnu\n\
                          rust-std-aarch64-unknown-linux-musl\n\
                          rust-std-powerpc64le-unknown-linux-gnu\n";
        let (kept, left_out) = without_foreign_targets(components, "x86_64-unknown-linux-gnu");
        assert_eq!(
            kept,
            "clippy-preview-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n\
             rustc-x86_64-unknown-linux-gnu\n"
        );
        assert_eq!(
            left_out,
            [
                "aarch64-unknown-linux-musl",
                "powerpc64le-unknown-linux-gnu"
            ]
        );
    }

    #[test]
    fn the_component_record_forgets_the_foreign_standard_libraries() {
        let config = "config_version = \"1\"\n\n[[components]]\npkg = \"rust-std\"\n\
                      target = \"powerpc64le-unknown-linux-gnu\"\nis_extension = false\n\n\
                      [[components]]\npkg = \"cargo\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\
                      is_extension = false\n\n[[components]]\npkg = \"rust-std\"\n\
                      target = \"x86_64-unknown-linux-gnu\"\nis_extension = false\n";
        assert_eq!(
            config_without_foreign_targets(config, "x86_64-unknown-linux-gnu"),
            "config_version = \"1\"\n\n[[components]]\npkg = \"cargo\"\n\
             target = \"x86_64-unknown-linux-gnu\"\nis_extension = false\n\n[[components]]\n\
             pkg = \"rust-std\"\ntarget = \"x86_64-unknown-linux-gnu\"\nis_extension = false\n"
        );
    }

    #[test]
    fn settings_keep_the_format_and_name_the_copied_default() {
        let host = "version = \"12\"\ndefault_toolchain = \"nightly-x86_64-unknown-linux-gnu\"\n\
                    profile = \"default\"\n\n[overrides]\n\"/work/x\" = \"nightly\"\n";
        assert_eq!(
            settings_toml(host, "stable-x86_64-unknown-linux-gnu"),
            "version = \"12\"\nprofile = \"default\"\n\
             default_toolchain = \"stable-x86_64-unknown-linux-gnu\"\n"
        );
    }

    #[test]
    fn the_host_is_read_from_rustc() {
        let v =
            "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n";
        assert_eq!(host_triple(v), Some("x86_64-unknown-linux-gnu"));
    }
}
