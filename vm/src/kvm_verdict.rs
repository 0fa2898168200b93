//! The KVM verdict kept between runs: whether a guest really ran under KVM on this host, keyed by
//! what decides it, so that a host whose KVM was found unusable pays nothing for it next time.
//!
//! The key is what can change the answer: the host kernel (its KVM module), the QEMU that starts
//! the guests and the CPU it passes through. A verdict under another key is not used; the run
//! decides again and replaces it. A verdict reached with the fault injected (see
//! `crate::accel::FAULT_KVM_SILENT`) says so in its key, so no real run ever trusts it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the cache.
pub const FILE: &str = "kvm-verdict.json";

/// Names another file for the verdict (tests use it so as not to replace the shared cache's).
pub const FILE_VAR: &str = "ZCMATRIX_KVM_VERDICT";

/// What decides whether KVM runs a guest here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The host kernel's release (`uname -r`).
    pub host_kernel: String,
    /// The first line of `qemu-system-x86_64 --version` (of the host's architecture).
    pub qemu: String,
    /// The CPU's model name from /proc/cpuinfo.
    pub cpu: String,
    /// The verdict was reached with a silent KVM guest injected, not by the host.
    #[serde(default)]
    pub injected: bool,
}

/// A verdict as kept in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub key: Key,
    /// A guest ran under KVM (`true`) or KVM had to be given up (`false`).
    pub usable: bool,
    /// What showed it: the probe's failure, or the guest that stayed silent.
    pub reason: String,
}

/// Where the verdict lives: `$ZCMATRIX_KVM_VERDICT`, else the cache's [`FILE`].
pub fn path(cache: &Path) -> PathBuf {
    std::env::var_os(FILE_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join(FILE))
}

impl Key {
    /// This host's key; `injected` when the fault is.
    pub fn of_host(qemu: &str, injected: bool) -> Key {
        Key {
            host_kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            qemu: std::process::Command::new(qemu)
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .map(|l| l.trim().to_string())
                })
                .unwrap_or_default(),
            cpu: fs::read_to_string("/proc/cpuinfo")
                .map(|s| cpu_model(&s))
                .unwrap_or_default(),
            injected,
        }
    }
}

/// The CPU model of a /proc/cpuinfo: `model name` on x86, else the first of the fields other
/// architectures name it by.
pub fn cpu_model(cpuinfo: &str) -> String {
    ["model name", "cpu model", "cpu", "CPU part"]
        .iter()
        .find_map(|field| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *field).then(|| v.trim().to_string())
            })
        })
        .unwrap_or_default()
}

/// The verdict kept for `key`, if any: a missing, unreadable or foreign file is none.
pub fn load(path: &Path, key: &Key) -> Option<Verdict> {
    let v: Verdict = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    (v.key == *key).then_some(v)
}

/// Keeps `verdict` in `path` (written under a temporary name and renamed: a run sharing the cache
/// never reads half of it).
pub fn save(path: &Path, verdict: &Verdict) -> anyhow::Result<()> {
    crate::cache::write_atomically(path, serde_json::to_string_pretty(verdict)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            host_kernel: "6.1.0-40-amd64".into(),
            qemu: "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)".into(),
            cpu: "Intel(R) Xeon(R) Platinum 8269CY CPU @ 2.50GHz".into(),
            injected: false,
        }
    }

    #[test]
    fn a_verdict_is_used_only_under_the_key_it_was_reached_with() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        assert_eq!(load(&p, &key()), None, "no file, no verdict");
        let v = Verdict {
            key: key(),
            usable: false,
            reason: "a guest sent nothing".into(),
        };
        save(&p, &v).unwrap();
        assert_eq!(load(&p, &key()), Some(v.clone()));
        let changed = [
            Key {
                host_kernel: "6.1.0-41-amd64".into(),
                ..key()
            },
            Key {
                qemu: "QEMU emulator version 10.0.2".into(),
                ..key()
            },
            Key {
                cpu: "AMD EPYC 7B13".into(),
                ..key()
            },
            Key {
                injected: true,
                ..key()
            },
        ];
        for k in changed {
            assert_eq!(load(&p, &k), None, "{k:?} decides again");
        }
        fs::write(&p, "{ not json").unwrap();
        assert_eq!(load(&p, &key()), None, "a damaged file is no verdict");
    }

    #[test]
    fn the_cpu_model_is_read_from_cpuinfo() {
        let x86 =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) \
                   Xeon(R) CPU\nflags\t\t: fpu\n";
        assert_eq!(cpu_model(x86), "Intel(R) Xeon(R) CPU");
        assert_eq!(
            cpu_model("processor\t: 0\ncpu\t\t: POWER9 (raw)\n"),
            "POWER9 (raw)"
        );
        assert_eq!(cpu_model("processor\t: 0\nCPU part\t: 0xd0c\n"), "0xd0c");
        assert_eq!(cpu_model(""), "");
    }

    #[test]
    fn this_host_has_a_key() {
        let k = Key::of_host(crate::qemu::binary(crate::arch::Arch::host()).0, false);
        assert!(!k.host_kernel.is_empty(), "{k:?}");
    }
}
