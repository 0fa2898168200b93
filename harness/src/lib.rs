//! zcmatrix harness: the checks and the runner, usable in a guest (as PID 1) or on the host.

pub mod checks;
pub mod fsdetect;
pub mod guest;
pub mod kver;
pub mod runner;
pub mod sys;
pub mod user;

use zcmatrix_protocol::{Record, SCHEMA_VERSION};

/// The first record of every stream: who is answering, on what machine.
pub fn hello(kernel_release: &str) -> Record {
    let proc = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Record::Hello {
        schema_version: SCHEMA_VERSION,
        kernel_release: kernel_release.to_string(),
        cmdline: proc("/proc/cmdline").trim().to_string(),
        mem_total_kb: proc("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        uptime_ms: proc("/proc/uptime")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |s| (s * 1000.0) as u64),
        machine: nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default(),
        page_size: sys::page_size() as u32,
        kernel_build: kver::running_build().unwrap_or_default(),
    }
}
