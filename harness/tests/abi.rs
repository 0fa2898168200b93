//! Every kernel ABI number the harness uses (harness::sys::abi::table) against what each guest
//! architecture's C compiler and kernel headers give: ioctl requests, flags, socket options, and
//! the sizes and field offsets of the structs passed to the kernel. The C side is compiled with
//! `-S` (never run): each value is a global constant whose initializer is read back from the
//! assembler output, so no emulator is needed for arm64 and ppc64le.

use std::path::Path;
use std::process::Command;

use harness::sys::abi::{self, Arch, Entry};

/// The C compiler of `arch` on an x86_64 host (gcc itself for x86_64).
fn compiler(arch: Arch) -> String {
    if abi::target() == Some(arch) {
        "gcc".into()
    } else {
        format!("{}-gcc", arch.gnu_triple)
    }
}

fn c_source(table: &[Entry]) -> String {
    let mut src = String::from("#define _GNU_SOURCE\n");
    for h in abi::C_HEADERS {
        src += &format!("#include <{h}>\n");
    }
    for (i, e) in table.iter().enumerate() {
        src += &format!(
            "const unsigned long long zc_{i} = (unsigned long long)({});\n",
            e.c
        );
    }
    src
}

/// The value of each `zc_N` in gcc's assembler output: the data directive after its label
/// (`.quad`/`.xword`/`.8byte` N, or `.zero 8` for 0).
fn values(asm: &str, n: usize) -> Vec<Option<u64>> {
    let mut out = vec![None; n];
    let mut lines = asm.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(i) = line
            .strip_prefix("zc_")
            .and_then(|l| l.strip_suffix(':'))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let data = lines.next().unwrap_or_default();
        let mut words = data.split_whitespace();
        let v = match (words.next(), words.next()) {
            (Some(".quad" | ".xword" | ".8byte" | ".dword"), Some(v)) => {
                v.parse::<i128>().ok().map(|v| v as u64)
            }
            (Some(".zero"), Some("8")) => Some(0),
            _ => None,
        };
        out[i] = v;
    }
    out
}

/// Compiles the table's C expressions for `arch` and returns what C says of each.
fn c_values(arch: Arch, table: &[Entry]) -> Vec<Option<u64>> {
    let cc = compiler(arch);
    let headers = Path::new("/usr")
        .join(arch.gnu_triple)
        .join("include/linux/fs.h");
    let has_headers = abi::target() == Some(arch) || headers.exists();
    assert!(
        tool_exists(&cc) && has_headers,
        "{cc} and {}'s kernel headers ({}) are needed to check the harness's ABI numbers: run \
         `cargo xtask setup`",
        arch.machine,
        headers.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("abi.c");
    std::fs::write(&c, c_source(table)).unwrap();
    let s = dir.path().join("abi.s");
    let out = Command::new(&cc)
        .args(["-S", "-O0", "-o"])
        .arg(&s)
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} -S failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    values(&std::fs::read_to_string(&s).unwrap(), table.len())
}

fn tool_exists(cc: &str) -> bool {
    Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The names whose value on `arch` differs from C's, with both values.
fn mismatches(arch: Arch, table: &[Entry]) -> Vec<String> {
    let c = c_values(arch, table);
    table
        .iter()
        .zip(c)
        .filter_map(|(e, c)| {
            let ours = e.on(arch)?;
            match c {
                Some(c) if c == ours => None,
                Some(c) => Some(format!("{}: harness {ours:#x}, C {c:#x}", e.c)),
                None => Some(format!("{}: no value in the C compiler's output", e.c)),
            }
        })
        .collect()
}

fn check(arch: Arch) {
    let bad = mismatches(arch, &abi::table());
    assert!(bad.is_empty(), "{}:\n{}", arch.machine, bad.join("\n"));
}

#[test]
fn x86_64_abi_matches_the_c_headers() {
    check(abi::X86_64);
}

#[test]
fn arm64_abi_matches_the_c_headers() {
    check(abi::ARM64);
}

#[test]
fn ppc64le_abi_matches_the_c_headers() {
    check(abi::PPC64LE);
}

/// The comparison sees a wrong number: the x86 FICLONE of old, on ppc64le.
#[test]
fn a_changed_number_is_caught() {
    let mut table = abi::table();
    let ficlone = table.iter_mut().find(|e| e.c == "FICLONE").unwrap();
    ficlone.portable = abi::Portable::Same;
    ficlone.used = 0x4004_9409;
    let bad = mismatches(abi::PPC64LE, &table);
    assert_eq!(
        bad,
        ["FICLONE: harness 0x40049409, C 0x80049409"],
        "only the changed number differs"
    );
}
