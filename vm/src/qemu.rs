//! QEMU: a pure function from a guest description to an argv, and a launcher that enforces a
//! deadline and notices a guest that shows no sign of life.

use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const QEMU: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub image: PathBuf,
    /// How the guest finds the disk (probe order is not stable); at most 20 bytes.
    pub serial: String,
    pub logical_block_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub memory_mb: u32,
    pub cpus: u32,
    pub accel: Accel,
    pub disks: Vec<DiskSpec>,
    /// ttyS0: kernel messages and the harness's progress lines.
    pub console: PathBuf,
    /// ttyS1: the record stream.
    pub results: PathBuf,
    /// The guest's RAM as a file holding the DAX targets' persistent memory, when it has any
    /// (see [`crate::pmem`]); `memory_mb` is then the file's size.
    pub ram_file: Option<PathBuf>,
    /// The virtio-net path to the host end, when the guest has one.
    pub net: Option<NetSpec>,
}

/// A guest's network: a virtio-net device on QEMU's user network whose one reachable address
/// (`peer`) is forwarded to the host end's Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// The host end's socket ([`crate::netsink::NetSink::socket`]).
    pub socket: PathBuf,
    pub mac: String,
    /// `a.b.c.d:port` inside the user network.
    pub peer: String,
}

/// The guest's side of [`NetSpec`]: QEMU's user network is 10.0.2.0/24, private to QEMU (no
/// packet of it is seen by the host's network stack), and the guest takes a fixed address in it,
/// so no DHCP is needed.
pub const GUEST_ADDRESS: &str = "10.0.2.15";
pub const GUEST_PREFIX_LEN: u8 = 24;
/// Where in the user network the host end answers; the forward is the only way out.
pub const NET_PEER: &str = "10.0.2.100:7000";
/// A locally administered MAC (QEMU's own prefix) by which the harness finds the interface.
pub const GUEST_MAC: &str = "52:54:00:7a:63:01";

/// The network: `restrict=on` isolates the guest (user networking would otherwise relay its
/// connections to any address through host sockets), so the only traffic that leaves the guest
/// is the `guestfwd` of one address to the host end's Unix socket; `ipv6=off` keeps router
/// advertisements out of a deterministic guest. virtio-net-pci is the device every cloud guest
/// has; user networking has no vnet header, so QEMU offers it without checksum offload and the
/// guest driver without scatter-gather, which the `net` checks record.
pub fn net_args(n: &NetSpec) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!(
            "user,id=net0,restrict=on,ipv6=off,guestfwd=tcp:{}-unix:{}",
            n.peer,
            path(&n.socket)
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=net0,mac={}", n.mac),
    ]
}

/// Guests with at least this much memory get two 1 GiB hugetlb pages reserved at boot (they
/// cannot be had later: nothing else guarantees 1 GiB of contiguous, aligned memory). Two, because
/// copy-on-write of a huge page needs a second one to copy into.
pub const GIGANTIC_PAGE_MIN_MB: u32 = 5120;

/// The kernel command line every guest gets. `panic=-1` turns a panic into an immediate reboot,
/// which `-no-reboot` turns into QEMU exiting, so a dead guest never waits for its deadline.
pub fn kernel_cmdline(memory_mb: u32) -> String {
    let mut c = "console=ttyS0 panic=-1 oops=panic rdinit=/init".to_string();
    if memory_mb >= GIGANTIC_PAGE_MIN_MB {
        c.push_str(" hugepagesz=1G hugepages=2");
    }
    c
}

pub fn argv(spec: &GuestSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    match spec.accel {
        Accel::Kvm => push(&["-machine", "q35,accel=kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-machine", "q35,accel=tcg", "-cpu", "max"]),
    }
    push(&[
        "-m",
        &spec.memory_mb.to_string(),
        "-smp",
        &spec.cpus.to_string(),
    ]);
    push(&[
        "-kernel",
        &path(&spec.kernel),
        "-initrd",
        &path(&spec.initrd),
    ]);
    push(&["-append", &spec.cmdline]);
    push(&[
        "-chardev",
        &format!("file,id=console,path={}", path(&spec.console)),
    ]);
    push(&["-serial", "chardev:console"]);
    push(&[
        "-chardev",
        &format!("file,id=results,path={}", path(&spec.results)),
    ]);
    push(&["-serial", "chardev:results"]);
    for (i, d) in spec.disks.iter().enumerate() {
        push(&[
            "-drive",
            &format!(
                "file={},if=none,id=disk{i},format=raw,snapshot=on,cache=unsafe",
                path(&d.image)
            ),
        ]);
        push(&[
            "-device",
            &format!(
                "virtio-blk-pci,drive=disk{i},serial={},logical_block_size={lbs},physical_block_size={lbs}",
                d.serial,
                lbs = d.logical_block_size
            ),
        ]);
    }
    if let Some(f) = &spec.ram_file {
        a.extend(ram_file_args(f, spec.memory_mb));
    }
    if let Some(n) = &spec.net {
        a.extend(net_args(n));
    }
    a
}

/// The guest's RAM from a file, privately (`share=off`: copy-on-write, the cached file is never
/// written), so that the ranges the kernel's `memmap=` declares persistent memory boot holding
/// the filesystems placed there on the host. A second `-machine` merges with the first.
pub fn ram_file_args(file: &Path, memory_mb: u32) -> Vec<String> {
    vec![
        "-object".into(),
        format!(
            "memory-backend-file,id=zc-ram,size={memory_mb}M,mem-path={},share=off",
            path(file)
        ),
        "-machine".into(),
        "memory-backend=zc-ram".into(),
    ]
}

/// QEMU's option parser treats ',' as a separator; a path with one would be misread.
fn path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// QEMU exited by itself with this status (a power-off, a reboot after panic, or an error of
    /// its own).
    Exited(i32),
    /// QEMU was killed by this signal, not by us (someone's `kill`, the OOM killer).
    Signalled(i32),
    /// Killed at the run deadline.
    TimedOut,
    /// Killed because the guest sent nothing within the boot deadline.
    BootTimedOut,
    /// Killed because the run was stopped (Ctrl-C, SIGTERM).
    Interrupted,
}

/// How long a guest may take: to its first record, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub boot: Duration,
    pub run: Duration,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub exit: Exit,
    pub elapsed: Duration,
    /// QEMU's own stderr (an abort such as "failed to set MSR" lands here).
    pub stderr: String,
}

/// Runs QEMU until it exits, a deadline passes or `stop` is set. `tick` is called about ten
/// times a second so the caller can follow the results; it says whether the guest has booted
/// (sent its first record), which lifts the boot deadline.
pub fn run(
    spec: &GuestSpec,
    log_dir: &Path,
    deadlines: Deadlines,
    stop: &AtomicBool,
    tick: &mut dyn FnMut() -> bool,
) -> anyhow::Result<Run> {
    let stderr_path = log_dir.join("qemu.stderr");
    let stderr = File::create(&stderr_path)?;
    let started = Instant::now();
    let mut cmd = Command::new(QEMU);
    cmd.args(argv(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Its own process group: a Ctrl-C in the terminal reaches zcmatrix, which stops the
        // guest itself and says so, rather than QEMU dying under it unexplained.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        // Out of the terminal's process group, QEMU would outlive a zcmatrix killed with
        // SIGKILL; the kernel kills it when the thread that started it dies.
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {QEMU}"))?;
    let mut booted = false;
    let exit = loop {
        if let Some(st) = child.try_wait()? {
            break match (st.code(), st.signal()) {
                (Some(c), _) => Exit::Exited(c),
                (None, Some(sig)) => Exit::Signalled(sig),
                (None, None) => Exit::Exited(-1),
            };
        }
        booted |= tick();
        let el = started.elapsed();
        if stop.load(Ordering::SeqCst) {
            break Exit::Interrupted;
        }
        if el >= deadlines.run {
            break Exit::TimedOut;
        }
        if !booted && el >= deadlines.boot {
            break Exit::BootTimedOut;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !matches!(exit, Exit::Exited(_) | Exit::Signalled(_)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    tick();
    Ok(Run {
        exit,
        elapsed: started.elapsed(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel) -> GuestSpec {
        GuestSpec {
            kernel: "/k/vmlinuz".into(),
            initrd: "/c/init,1.cpio".into(),
            cmdline: kernel_cmdline(512),
            memory_mb: 512,
            cpus: 1,
            accel,
            disks: vec![DiskSpec {
                image: "/d/ext4.img".into(),
                serial: "zc-ext4-4096".into(),
                logical_block_size: 4096,
            }],
            console: "/o/console.log".into(),
            results: "/o/results.jsonl".into(),
            ram_file: None,
            net: None,
        }
    }

    fn after<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
        a.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn tcg_uses_cpu_max_and_kvm_cpu_host() {
        let t = argv(&spec(Accel::Tcg));
        assert_eq!(after(&t, "-machine"), ["q35,accel=tcg"]);
        assert_eq!(after(&t, "-cpu"), ["max"]);
        let k = argv(&spec(Accel::Kvm));
        assert_eq!(after(&k, "-machine"), ["q35,accel=kvm"]);
        assert_eq!(after(&k, "-cpu"), ["host"]);
    }

    #[test]
    fn console_is_ttys0_and_results_ttys1() {
        let a = argv(&spec(Accel::Tcg));
        assert_eq!(after(&a, "-serial"), ["chardev:console", "chardev:results"]);
        assert_eq!(
            after(&a, "-chardev"),
            [
                "file,id=console,path=/o/console.log",
                "file,id=results,path=/o/results.jsonl"
            ]
        );
    }

    #[test]
    fn disks_carry_serial_and_geometry_and_never_write_the_image() {
        let a = argv(&spec(Accel::Tcg));
        assert_eq!(
            after(&a, "-drive"),
            ["file=/d/ext4.img,if=none,id=disk0,format=raw,snapshot=on,cache=unsafe"]
        );
        assert_eq!(
            after(&a, "-device"),
            ["virtio-blk-pci,drive=disk0,serial=zc-ext4-4096,logical_block_size=4096,physical_block_size=4096"]
        );
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let a = argv(&spec(Accel::Tcg));
        assert_eq!(after(&a, "-initrd"), ["/c/init,,1.cpio"]);
        assert_eq!(after(&a, "-kernel"), ["/k/vmlinuz"]);
    }

    #[test]
    fn a_gigantic_page_is_reserved_only_when_memory_allows() {
        assert!(!kernel_cmdline(512).contains("hugepagesz=1G"));
        assert!(kernel_cmdline(GIGANTIC_PAGE_MIN_MB).contains("hugepagesz=1G hugepages=2"));
    }

    #[test]
    fn a_ram_file_backs_all_of_memory_privately() {
        assert!(!argv(&spec(Accel::Tcg)).iter().any(|x| x.contains("zc-ram")));
        let mut s = spec(Accel::Tcg);
        s.memory_mb = 1152;
        s.ram_file = Some("/c/pmem,ram.img".into());
        let a = argv(&s);
        assert_eq!(
            after(&a, "-object"),
            ["memory-backend-file,id=zc-ram,size=1152M,mem-path=/c/pmem,,ram.img,share=off"]
        );
        assert_eq!(
            after(&a, "-machine"),
            ["q35,accel=tcg", "memory-backend=zc-ram"]
        );
        assert_eq!(after(&a, "-m"), ["1152"]);
    }

    #[test]
    fn the_network_is_restricted_to_one_forward_to_the_host_ends_socket() {
        assert!(!argv(&spec(Accel::Tcg)).iter().any(|x| x == "-netdev"));
        let mut s = spec(Accel::Tcg);
        s.net = Some(NetSpec {
            socket: "/t/zc,1/sink.sock".into(),
            mac: GUEST_MAC.into(),
            peer: NET_PEER.into(),
        });
        let a = argv(&s);
        assert_eq!(
            after(&a, "-netdev"),
            ["user,id=net0,restrict=on,ipv6=off,guestfwd=tcp:10.0.2.100:7000-unix:/t/zc,,1/sink.sock"]
        );
        assert_eq!(
            after(&a, "-device").last().copied(),
            Some("virtio-net-pci,netdev=net0,mac=52:54:00:7a:63:01")
        );
    }

    #[test]
    fn no_default_devices_and_no_reboot() {
        let a = argv(&spec(Accel::Tcg));
        for f in ["-nodefaults", "-no-reboot", "-no-user-config"] {
            assert!(a.iter().any(|x| x == f), "{f}");
        }
        assert!(after(&a, "-append")[0].contains("panic=-1"));
    }
}
