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
use zcmatrix_protocol::RESULT_PORT_NAME;

use crate::arch::Arch;

/// The x86_64 emulator, the one every default run needs.
pub const QEMU: &str = "qemu-system-x86_64";

/// The emulator of an architecture, and the Debian package that has it.
pub fn binary(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => (QEMU, "qemu-system-x86"),
        Arch::Arm64 => ("qemu-system-aarch64", "qemu-system-arm"),
        Arch::Ppc64le => ("qemu-system-ppc64", "qemu-system-ppc"),
    }
}

/// The machine: q35 on x86_64; `virt` on arm64 (PCIe, so the same virtio-pci devices as
/// x86_64); `pseries` on ppc64le (a PCI host bridge, and an hvc console from its spapr-vty).
fn machine(arch: Arch, accel: Accel) -> String {
    let accel = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    let m = match arch {
        Arch::X86_64 => "q35",
        Arch::Arm64 => "virt",
        // TCG emulates none of the speculation-barrier capabilities pseries asks for by
        // default; saying so up front keeps QEMU's stderr for real errors.
        Arch::Ppc64le if accel == "tcg" => {
            "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"
        }
        Arch::Ppc64le => "pseries",
    };
    format!("{m},accel={accel}")
}

/// The CPU: KVM passes the host's through; under TCG `max` has every feature QEMU emulates (on
/// arm64 that includes the 16 KiB and 64 KiB translation granules the page-size flavours need);
/// pseries has no `max`, and POWER9 runs every ppc64le kernel Debian builds.
fn cpu(arch: Arch, accel: Accel) -> &'static str {
    match (arch, accel) {
        (_, Accel::Kvm) => "host",
        (Arch::Ppc64le, Accel::Tcg) => "power9",
        (_, Accel::Tcg) => "max",
    }
}

/// The guest's name of the first serial port, where kernel messages go: the 8250 on x86_64, the
/// PL011 of `virt`, the hypervisor console of `pseries`.
pub fn console_device(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ttyS0",
        Arch::Arm64 => "ttyAMA0",
        Arch::Ppc64le => "hvc0",
    }
}

/// The result channel. x86_64 has a second 8250 (ttyS1); `virt` has a single UART, so on arm64
/// the records go through a named virtio-serial port that the harness finds by its name
/// ([`RESULT_PORT_NAME`]), and ppc64le uses the same port rather than a second spapr-vty, so
/// that one mechanism serves both. Its drivers are [`result_port_modules`].
fn result_channel(arch: Arch, results: &Path) -> Vec<String> {
    let chardev = format!("file,id=results,path={}", path(results));
    let port = format!("virtserialport,bus=zcserial.0,chardev=results,name={RESULT_PORT_NAME}");
    let v: Vec<&str> = match arch {
        Arch::X86_64 => vec!["-chardev", &chardev, "-serial", "chardev:results"],
        Arch::Arm64 | Arch::Ppc64le => vec![
            "-chardev",
            &chardev,
            "-device",
            "virtio-serial-pci,id=zcserial",
            "-device",
            &port,
        ],
    };
    v.into_iter().map(str::to_string).collect()
}

/// The kernel code the result channel needs in the guest: on arm64 and ppc64le the
/// virtio-serial port's driver (`virtio_console`) and its PCI transport (`virtio_pci`), which a
/// kernel may build in or as modules (Debian's 6.1 cloud-arm64 has both as modules: the guest
/// must load them before it can send a record); x86_64's second 8250 is built into every kernel
/// that boots with its console on the first.
pub fn result_port_modules(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &[],
        Arch::Arm64 | Arch::Ppc64le => &["virtio_pci", "virtio_console"],
    }
}

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
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub memory_mb: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// Start with the vCPU stopped (`-S`): a guest that never speaks, the injected fault of
    /// `crate::accel::FAULT_KVM_SILENT`.
    pub paused: bool,
    pub disks: Vec<DiskSpec>,
    /// The first serial port ([`console_device`]): kernel messages and the harness's progress
    /// lines.
    pub console: PathBuf,
    /// The record stream ([`result_channel`]).
    pub results: PathBuf,
    /// The guest's RAM as a file holding the DAX targets' persistent memory, when it has any
    /// (see [`crate::pmem`]); `memory_mb` is then the file's size.
    pub ram_file: Option<PathBuf>,
    /// Persistent-memory regions the device tree must declare (arm64: see [`crate::dtb`]),
    /// by guest-physical start.
    pub dt_pmem: Vec<crate::pmem::Region>,
    /// The device tree the guest boots with instead of the one QEMU makes (`-dtb`): the
    /// machine's own with [`GuestSpec::dt_pmem`] added, made per attempt by [`crate::dtb`].
    pub dtb: Option<PathBuf>,
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
pub fn kernel_cmdline(arch: Arch, memory_mb: u32) -> String {
    let mut c = format!(
        "console={} panic=-1 oops=panic rdinit=/init",
        console_device(arch)
    );
    // 1 GiB pages are an x86_64 (and 4 KiB arm64) size; 16 KiB and 64 KiB kernels have none.
    if memory_mb >= GIGANTIC_PAGE_MIN_MB && arch == Arch::X86_64 {
        c.push_str(" hugepagesz=1G hugepages=2");
    }
    c
}

/// The options that make the machine itself: no default devices, the machine and its
/// accelerator, the CPU, the RAM size and the CPU count. On arm64 `virt` they are what its
/// device tree describes; the PCI devices, character devices and the RAM's backend leave it
/// unchanged (measured with QEMU 7.2: dumps with and without them differ only in
/// /chosen's `bootargs` and random seeds), so [`crate::dtb`] dumps it from these alone.
pub fn machine_args(spec: &GuestSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    push(&[
        "-machine",
        &machine(spec.arch, spec.accel),
        "-cpu",
        cpu(spec.arch, spec.accel),
    ]);
    push(&[
        "-m",
        &spec.memory_mb.to_string(),
        "-smp",
        &spec.cpus.to_string(),
    ]);
    a
}

/// QEMU writes the machine's device tree to `out` and exits (`-machine dumpdtb=`) instead of
/// starting it: the tree a `virt` guest with these options gets.
pub fn dump_dtb_args(spec: &GuestSpec, out: &Path) -> Vec<String> {
    let mut a = machine_args(spec);
    a.extend(["-machine".into(), format!("dumpdtb={}", path(out))]);
    a
}

/// Boots with a given device tree (`-dtb`): QEMU still writes its `/memory` node, `/chosen`'s
/// `bootargs` and the initrd's place into it (hw/arm/boot.c, arm_load_dtb), so the file needs
/// only what the machine's own tree lacks.
pub fn dtb_args(dtb: &Path) -> Vec<String> {
    vec!["-dtb".into(), path(dtb)]
}

pub fn argv(spec: &GuestSpec) -> Vec<String> {
    let mut a: Vec<String> = machine_args(spec);
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "-kernel",
        &path(&spec.kernel),
        "-initrd",
        &path(&spec.initrd),
    ]);
    push(&["-append", &spec.cmdline]);
    if let Some(d) = &spec.dtb {
        a.extend(dtb_args(d));
    }
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "-chardev",
        &format!("file,id=console,path={}", path(&spec.console)),
    ]);
    push(&["-serial", "chardev:console"]);
    a.extend(result_channel(spec.arch, &spec.results));
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
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
    if spec.paused {
        a.push("-S".into());
    }
    a
}

/// The guest's RAM from a file, privately (`share=off`: copy-on-write, the cached file is never
/// written), so that the persistent-memory ranges (declared by `memmap=` on x86_64, by the
/// device tree's pmem-region nodes above `mem=` on arm64) boot holding the filesystems placed
/// there on the host. A second `-machine` merges with the first.
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
    let qemu = binary(spec.arch).0;
    let mut cmd = Command::new(qemu);
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
    let mut child = cmd.spawn().with_context(|| format!("starting {qemu}"))?;
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
            arch: Arch::X86_64,
            kernel: "/k/vmlinuz".into(),
            initrd: "/c/init,1.cpio".into(),
            cmdline: kernel_cmdline(Arch::X86_64, 512),
            memory_mb: 512,
            cpus: 1,
            accel,
            paused: false,
            disks: vec![DiskSpec {
                image: "/d/ext4.img".into(),
                serial: "zc-ext4-4096".into(),
                logical_block_size: 4096,
            }],
            console: "/o/console.log".into(),
            results: "/o/results.jsonl".into(),
            ram_file: None,
            dt_pmem: Vec::new(),
            dtb: None,
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
    fn a_paused_guest_starts_with_its_vcpu_stopped() {
        assert!(!argv(&spec(Accel::Tcg)).iter().any(|x| x == "-S"));
        let paused = GuestSpec {
            paused: true,
            ..spec(Accel::Tcg)
        };
        assert!(argv(&paused).iter().any(|x| x == "-S"));
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let a = argv(&spec(Accel::Tcg));
        assert_eq!(after(&a, "-initrd"), ["/c/init,,1.cpio"]);
        assert_eq!(after(&a, "-kernel"), ["/k/vmlinuz"]);
    }

    #[test]
    fn a_gigantic_page_is_reserved_only_when_memory_allows() {
        assert!(!kernel_cmdline(Arch::X86_64, 512).contains("hugepagesz=1G"));
        assert!(kernel_cmdline(Arch::X86_64, GIGANTIC_PAGE_MIN_MB)
            .contains("hugepagesz=1G hugepages=2"));
    }

    fn arch_spec(arch: Arch) -> GuestSpec {
        GuestSpec {
            arch,
            cmdline: kernel_cmdline(arch, 512),
            ..spec(Accel::Tcg)
        }
    }

    #[test]
    fn arm64_is_virt_with_cpu_max_and_its_pl011_console() {
        let a = argv(&arch_spec(Arch::Arm64));
        assert_eq!(binary(Arch::Arm64).0, "qemu-system-aarch64");
        assert_eq!(after(&a, "-machine"), ["virt,accel=tcg"]);
        assert_eq!(after(&a, "-cpu"), ["max"]);
        assert!(after(&a, "-append")[0].starts_with("console=ttyAMA0 "));
        assert_eq!(after(&a, "-serial"), ["chardev:console"]);
    }

    #[test]
    fn ppc64le_is_pseries_with_an_hvc_console() {
        let a = argv(&arch_spec(Arch::Ppc64le));
        assert_eq!(binary(Arch::Ppc64le).0, "qemu-system-ppc64");
        assert_eq!(
            after(&a, "-machine"),
            ["pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,accel=tcg"]
        );
        assert_eq!(after(&a, "-cpu"), ["power9"]);
        assert!(after(&a, "-append")[0].starts_with("console=hvc0 "));
        assert_eq!(after(&a, "-serial"), ["chardev:console"]);
    }

    #[test]
    fn without_a_second_uart_results_go_to_a_named_virtio_port() {
        for arch in [Arch::Arm64, Arch::Ppc64le] {
            let a = argv(&arch_spec(arch));
            assert_eq!(
                after(&a, "-chardev"),
                [
                    "file,id=console,path=/o/console.log",
                    "file,id=results,path=/o/results.jsonl"
                ]
            );
            let devices = after(&a, "-device");
            assert_eq!(
                devices[..2],
                [
                    "virtio-serial-pci,id=zcserial",
                    "virtserialport,bus=zcserial.0,chardev=results,name=zcmatrix.results"
                ]
            );
            // Disks stay virtio-pci, as on x86_64.
            assert!(devices[2].starts_with("virtio-blk-pci,"), "{devices:?}");
        }
    }

    #[test]
    fn an_arm64_guest_boots_the_given_device_tree_and_dumps_its_machines() {
        assert!(!argv(&arch_spec(Arch::Arm64)).iter().any(|x| x == "-dtb"));
        let mut s = arch_spec(Arch::Arm64);
        s.dtb = Some("/c/dtb/virt,1.dtb".into());
        let a = argv(&s);
        assert_eq!(after(&a, "-dtb"), ["/c/dtb/virt,,1.dtb"]);
        // The dump is the same machine, and only the machine.
        let d = dump_dtb_args(&s, Path::new("/t/out.dtb"));
        assert_eq!(&d[..d.len() - 2], &a[..machine_args(&s).len()]);
        assert_eq!(d[d.len() - 2..], ["-machine", "dumpdtb=/t/out.dtb"]);
        assert!(!d.iter().any(|x| x == "-kernel" || x == "-device"));
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
