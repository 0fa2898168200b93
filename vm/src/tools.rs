//! Host programs zcmatrix runs, and the package to install when one is missing.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("missing host tools: {}. Install them with: apt-get install {}", .missing.join(", "), .packages.join(" "))]
pub struct MissingTools {
    pub missing: Vec<String>,
    pub packages: Vec<String>,
}

/// Finds a program on PATH or in the sbin directories, where mkfs lives even when a non-root
/// PATH leaves them out.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Checks that every (program, package) is installed; names every missing package at once.
pub fn require(tools: &[(&str, &str)]) -> Result<(), MissingTools> {
    let mut missing = Vec::new();
    let mut packages: Vec<String> = Vec::new();
    for (prog, pkg) in tools {
        if which(prog).is_none() {
            missing.push(prog.to_string());
            if !packages.iter().any(|p| p == pkg) {
                packages.push(pkg.to_string());
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingTools { missing, packages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_package_of_each_missing_program_once() {
        let e = require(&[
            ("sh", "dash"),
            ("zcmatrix-no-such-tool", "pkg-a"),
            ("zcmatrix-no-such-tool-2", "pkg-a"),
        ])
        .unwrap_err();
        assert_eq!(
            e.missing,
            ["zcmatrix-no-such-tool", "zcmatrix-no-such-tool-2"]
        );
        assert_eq!(e.packages, ["pkg-a"]);
        assert!(e.to_string().contains("apt-get install pkg-a"));
    }
}
