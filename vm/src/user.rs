//! The user's own checks (`--exec`): static programs that print KTAP, one binary per guest
//! architecture, copied into each guest's initramfs and run by the harness in every filesystem
//! target after the built-in checks (see the harness's `user` module).

use std::path::{Path, PathBuf};

use crate::arch::{check_static_elf, Arch};

/// Seconds a user program may run on one target before it is killed and reported as an error:
/// generous for a probe, short of the guest's own run deadline so the guest still reports.
pub const TIMEOUT_S: u32 = 120;

/// One binary of a user check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProgram {
    /// The check's name (`user.<name>`): the file's name, less an architecture suffix.
    pub name: String,
    pub arch: Arch,
    pub path: PathBuf,
}

impl UserProgram {
    /// Where the guest finds it.
    pub fn guest_path(&self) -> String {
        format!("/user/{}", self.name)
    }
}

/// `PATH` or `ARCH=PATH` words of `--exec`, checked: each file exists and is a static ELF
/// executable (its machine says its architecture; `ARCH=` must agree), and every program name
/// has a binary for each architecture in `arches` (the guests of the run).
pub fn parse(words: &[String], arches: &[Arch]) -> Result<Vec<UserProgram>, String> {
    let mut out: Vec<UserProgram> = Vec::new();
    for w in words {
        let (said, path) = match w.split_once('=') {
            Some((a, p)) => match Arch::parse(a) {
                Some(arch) => (Some(arch), PathBuf::from(p)),
                None => {
                    return Err(format!(
                        "--exec {w}: {a:?} is not an architecture ({})",
                        Arch::ALL.map(Arch::name).join(", ")
                    ))
                }
            },
            None => (None, PathBuf::from(w)),
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("--exec {}: {e}", path.display()))?;
        let arch = said.or_else(|| machine_of(&bytes)).ok_or_else(|| {
            format!(
                "--exec {}: not an ELF executable of x86_64, arm64 or ppc64le (a guest has \
                 no shell or interpreter: build the program static, e.g. `cc -static`)",
                path.display()
            )
        })?;
        check_static_elf(&bytes, arch).map_err(|e| {
            format!(
                "--exec {}: {e}; a guest has no libraries, so the program must be static \
                 (`cc -static`)",
                path.display()
            )
        })?;
        let name = name_of(&path)?;
        if out.iter().any(|p| p.name == name && p.arch == arch) {
            return Err(format!("--exec: two {arch} programs are named {name}"));
        }
        out.push(UserProgram { name, arch, path });
    }
    for p in &out {
        for &a in arches {
            if !out.iter().any(|q| q.name == p.name && q.arch == a) {
                return Err(format!(
                    "--exec: user check {} has no {a} binary, and the run has {a} guests: add \
                     --exec {a}=PATH (a static build for {a}) or leave those kernels out",
                    p.name
                ));
            }
        }
    }
    Ok(out)
}

/// The programs a guest of `arch` runs.
pub fn for_arch(programs: &[UserProgram], arch: Arch) -> Vec<&UserProgram> {
    programs.iter().filter(|p| p.arch == arch).collect()
}

fn machine_of(bytes: &[u8]) -> Option<Arch> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    Arch::ALL.into_iter().find(|a| a.elf_machine() == machine)
}

/// The file's name less an architecture suffix (`probe-arm64` and `probe-x86_64` are both
/// `probe`), in the characters a check id may hold.
fn name_of(path: &Path) -> Result<String, String> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    const ARCH_WORDS: [&str; 6] = ["x86_64", "amd64", "arm64", "aarch64", "ppc64le", "ppc64el"];
    let name = ARCH_WORDS
        .iter()
        .flat_map(|a| ['-', '_', '.'].map(|sep| format!("{sep}{a}")))
        .find_map(|suffix| file.strip_suffix(suffix.as_str()))
        .unwrap_or(&file);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "--exec {}: name the program with letters, digits, '-' and '_' only: it becomes \
             the check id user.{file}",
            path.display()
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_architecture_suffix() {
        assert_eq!(name_of(Path::new("/x/probe-arm64")).unwrap(), "probe");
        assert_eq!(name_of(Path::new("/x/probe_x86_64")).unwrap(), "probe");
        assert_eq!(name_of(Path::new("/x/my-probe")).unwrap(), "my-probe");
        assert!(name_of(Path::new("/x/a b")).is_err());
    }

    #[test]
    fn a_dynamic_program_or_a_missing_architecture_is_refused() {
        // This test binary itself: an x86_64 (or host) ELF that needs libraries.
        let me = std::env::current_exe().unwrap();
        let e = parse(&[me.display().to_string()], &[Arch::host()]).unwrap_err();
        assert!(e.contains("static"), "{e}");
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), "#!/bin/sh\necho hi\n").unwrap();
        let e = parse(&[script.path().display().to_string()], &[Arch::host()]).unwrap_err();
        assert!(e.contains("not an ELF"), "{e}");
        let e = parse(&["sparc=/bin/true".into()], &[Arch::host()]).unwrap_err();
        assert!(e.contains("not an architecture"), "{e}");
    }
}
