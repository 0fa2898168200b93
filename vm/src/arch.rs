//! Architectures and Debian kernel flavours: the two axes besides the kernel series. A flavour
//! fixes the architecture and the page size the kernel was built for; the page size a guest
//! actually runs with is read in the guest (the `hello` record), never taken from here.

use std::fmt;

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Arm64,
    Ppc64le,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Arm64, Arch::Ppc64le];

    /// The name users type (`--arch`) and reports show.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::Ppc64le => "ppc64le",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            "ppc64le" | "ppc64el" => Some(Arch::Ppc64le),
            _ => None,
        }
    }

    /// What `uname -m` says in a guest of this architecture.
    pub fn uname_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
            Arch::Ppc64le => "ppc64le",
        }
    }

    /// Debian's architecture name (apt's `APT::Architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Ppc64le => "ppc64el",
        }
    }

    /// The Rust target the guest harness is built for: a static binary in every case (musl on
    /// arm64; glibc with crt-static on x86_64 and ppc64le, where Rust's musl target is tier 3).
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
            Arch::Ppc64le => "powerpc64le-unknown-linux-gnu",
        }
    }

    /// The C compiler that links the harness for this target when the host is another
    /// architecture, and the Debian package that has it.
    pub fn cross_linker(self) -> Option<(&'static str, &'static str)> {
        match self {
            Arch::X86_64 => None,
            Arch::Arm64 => Some(("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")),
            Arch::Ppc64le => Some(("powerpc64le-linux-gnu-gcc", "gcc-powerpc64le-linux-gnu")),
        }
    }

    /// The ELF machine of its binaries (`object::elf::EM_*`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => object::elf::EM_X86_64,
            Arch::Arm64 => object::elf::EM_AARCH64,
            Arch::Ppc64le => object::elf::EM_PPC64,
        }
    }

    /// The architecture zcmatrix itself runs on: the only one KVM can accelerate.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else if cfg!(target_arch = "powerpc64") {
            Arch::Ppc64le
        } else {
            Arch::X86_64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a harness binary cannot be a guest's /init: the guest has no dynamic loader and no
/// libraries, and runs one architecture.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotStatic {
    #[error("not a 64-bit little-endian ELF file: {0}")]
    NotElf(String),
    #[error("an ELF file for machine {found}, not {arch} (machine {want})")]
    WrongMachine { arch: Arch, found: u16, want: u16 },
    #[error("dynamically linked: it names an interpreter (PT_INTERP) {0:?}")]
    Interpreter(String),
    #[error("dynamically linked: it needs {0} shared libraries (DT_NEEDED)")]
    Needed(usize),
}

/// Checks from its ELF headers that `bytes` is a static executable for `arch`: the right
/// machine, no PT_INTERP, and no DT_NEEDED entry (a static-pie has a dynamic section, but
/// needs nothing).
pub fn check_static_elf(bytes: &[u8], arch: Arch) -> Result<(), NotStatic> {
    use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};
    let elf = ElfFile64::<object::LittleEndian>::parse(bytes)
        .map_err(|e| NotStatic::NotElf(e.to_string()))?;
    let (hdr, endian) = (elf.elf_header(), elf.endian());
    let found = hdr.e_machine(endian);
    if found != arch.elf_machine() {
        return Err(NotStatic::WrongMachine {
            arch,
            found,
            want: arch.elf_machine(),
        });
    }
    let mut needed = 0;
    for ph in elf.elf_program_headers() {
        if let Ok(Some(interp)) = ph.interpreter(endian, bytes) {
            return Err(NotStatic::Interpreter(
                String::from_utf8_lossy(interp).into_owned(),
            ));
        }
        if let Ok(Some(dynamic)) = ph.dynamic(endian, bytes) {
            needed += dynamic
                .iter()
                .filter(|d| d.tag32(endian) == Some(object::elf::DT_NEEDED))
                .count();
        }
    }
    match needed {
        0 => Ok(()),
        n => Err(NotStatic::Needed(n)),
    }
}

/// A Debian kernel flavour zcmatrix boots: the metapackage is `linux-image-<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavour {
    pub name: &'static str,
    pub arch: Arch,
    /// The page size the flavour is configured for (CONFIG_PAGE_SIZE_*), for choosing and
    /// naming; a cell's `page_size` is what the guest reports.
    pub page_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_test_binary_is_no_guest_init() {
        // This test binary is a dynamically linked host executable: exactly what a guest
        // cannot run.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(
            check_static_elf(&me, Arch::host()),
            Err(NotStatic::Interpreter(_))
        ));
        let other = if Arch::host() == Arch::Arm64 {
            Arch::X86_64
        } else {
            Arch::Arm64
        };
        assert!(matches!(
            check_static_elf(&me, other),
            Err(NotStatic::WrongMachine { .. })
        ));
        assert!(matches!(
            check_static_elf(b"#!/bin/sh\n", other),
            Err(NotStatic::NotElf(_))
        ));
    }
}
