//! PID 1 in a zcmatrix guest: prepare the machine, run the manifest's checks, stream records on
//! the result port, power off. Whatever happens, the guest powers off: a PID 1 that returns
//! panics the kernel, and the host would learn nothing about why.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::mount::{mount, MsFlags};
use zcmatrix_protocol::catalogue::{self, Placement};
use zcmatrix_protocol::target::{self, Backing};
use zcmatrix_protocol::{
    FsTarget, Manifest, MountReport, Record, Scope, MANIFEST_PATH, RESULT_PORT, RESULT_PORT_NAME,
    SCHEMA_VERSION,
};

use crate::kver::KernelVersion;
use crate::runner::{self, Tally, Target};

/// The result port, shared with the panic hook so a panic still reaches the host.
static PORT: Mutex<Option<File>> = Mutex::new(None);

fn emit(record: &Record) {
    let line = record.to_line();
    if let Ok(mut guard) = PORT.lock() {
        if let Some(port) = guard.as_mut() {
            let _ = port.write_all(line.as_bytes());
            let _ = port.flush();
        }
    }
}

/// Console lines for a human reading console.log; records go to the port.
fn say(msg: &str) {
    println!("zcmatrix: {msg}");
}

pub fn main() -> ! {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("harness panicked: {info}");
        say(&message);
        emit(&Record::Error { message });
    }));
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| run(started));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let message = format!("{e:#}");
            say(&message);
            emit(&Record::Error { message });
        }
        Err(_) => {} // the hook already reported it
    }
    power_off()
}

fn run(started: Instant) -> anyhow::Result<()> {
    mount_basics()?;
    attach_console();
    // The manifest names the modules the result port needs (virtio_console where a kernel
    // builds it as a module): they are loaded before the port is opened, and their records
    // sent once it is, after `hello`.
    let manifest = read_manifest();
    let port_modules = manifest
        .as_ref()
        .map_or(&[][..], |m| m.port_modules.as_slice());
    let port_loads = load_modules(port_modules);
    open_port(port_modules)?;
    let (release, kernel) = KernelVersion::running()?;
    emit(&crate::hello(&release));
    say(&format!("kernel {release}"));
    for r in &port_loads {
        emit(r);
    }

    let manifest = manifest?;
    if manifest.schema_version != SCHEMA_VERSION {
        bail!(
            "manifest schema {} but harness speaks {SCHEMA_VERSION}",
            manifest.schema_version
        );
    }
    if let Some(series) = &manifest.judge_as {
        let v = runner::judge_as(series)?;
        say(&format!("judging by the rules of {v} (--judge-as)"));
    }
    for r in &load_modules(&manifest.modules) {
        emit(r);
    }
    let checks = runner::select(&manifest.checks, manifest.profile)?;
    runner::set_accel(zcmatrix_protocol::CpuAccel::from_cmdline(
        &fs::read_to_string("/proc/cmdline").unwrap_or_default(),
    ));
    prepare_memory(
        manifest.swap_serial.as_deref(),
        checks.iter().any(|c| c.needs_hugetlb),
    );
    if let Err(e) = loopback_up() {
        // Socket checks will say what failed; the rest of the run does not need the network.
        say(&format!("loopback: {e:#}"));
        emit(&Record::Error {
            message: format!("bringing up lo: {e:#}"),
        });
    }
    if let Some(net) = &manifest.net {
        match nic_up(net) {
            Ok(nic) => {
                say(&format!(
                    "{}: {} up, host end at {}",
                    nic.name, net.address, nic.peer
                ));
                crate::checks::common::set_nic(nic);
            }
            Err(e) => {
                // The checks through the NIC skip saying it is missing; the host hears why.
                say(&format!("network: {e:#}"));
                emit(&Record::Error {
                    message: format!("bringing up the virtio-net interface: {e:#}"),
                });
            }
        }
    }

    // Every target is mounted before any check runs, so that checks moving data between
    // filesystems (cfr.cross_fs, kernel scope) find all of them; each check still runs on one.
    let mut mounted: Vec<Target> = Vec::new();
    let mut unavailable: Vec<(&FsTarget, &str)> = Vec::new();
    for t in &manifest.targets {
        if let Some(why) = &t.unavailable {
            say(&format!("{}: not prepared: {why}", t.fs));
            unavailable.push((t, why));
            continue;
        }
        let report = prepare_target(t);
        let ok = report.is_ok();
        let (device, detail, dir) = match report {
            Ok((dev, dir)) => (dev, "mounted".to_string(), Some(dir)),
            Err(e) => (None, format!("{e:#}"), None),
        };
        let device_path = device.as_ref().map(PathBuf::from);
        say(&format!(
            "{} (lbs {:?}): {detail}",
            t.fs, t.logical_block_size
        ));
        emit(&Record::Mount(MountReport {
            fs: t.fs.clone(),
            logical_block_size: t.logical_block_size,
            device,
            ok,
            detail,
        }));
        if let Some(dir) = dir {
            mounted.push(Target {
                fs: Some(t.fs.clone()),
                logical_block_size: t.logical_block_size,
                dir,
                device: device_path,
                owns_machine: true,
                mounts: Vec::new(),
                profile: manifest.profile,
            });
        }
    }
    let mounts: Vec<(String, PathBuf)> = mounted
        .iter()
        .filter_map(|t| Some((t.fs.clone()?, t.dir.clone())))
        .collect();

    let mut tally = Tally::default();
    let scratch = Target {
        fs: None,
        logical_block_size: None,
        dir: PathBuf::from("/tmp/kernel-scope"),
        device: None,
        owns_machine: true,
        mounts: mounts.clone(),
        profile: manifest.profile,
    };
    fs::create_dir_all(&scratch.dir)?;
    say("running kernel-scope checks");
    run_each(&checks, false, kernel, &scratch, &mut tally);

    let geometries: Vec<(String, Option<u32>)> = mounted
        .iter()
        .filter_map(|t| Some((t.fs.clone()?, t.logical_block_size)))
        .collect();
    let geometries: Vec<(&str, Option<u32>)> =
        geometries.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    for mut target in mounted {
        target.mounts = mounts.clone();
        let fs = target.fs.clone().unwrap_or_default();
        let only_block_size = catalogue::only_block_size(
            manifest.profile,
            &fs,
            target.logical_block_size,
            &geometries,
        );
        if only_block_size {
            say(&format!(
                "{fs} (lbs {:?}): quick profile, only the checks the block size can change",
                target.logical_block_size
            ));
        }
        run_each(&checks, only_block_size, kernel, &target, &mut tally);
        run_user_checks(&manifest.user_checks, &target, &mut tally);
    }
    // A target this kernel cannot hold is a cell of skips that says why, not an error.
    for (t, why) in unavailable {
        let target = Target {
            fs: Some(t.fs.clone()),
            logical_block_size: t.logical_block_size,
            dir: PathBuf::from("/nonexistent"),
            device: None,
            owns_machine: true,
            mounts: Vec::new(),
            profile: manifest.profile,
        };
        let here = Placement {
            scope: Scope::Fs,
            fs: Some(&t.fs),
            profile: manifest.profile,
            page_size: None,
            only_block_size: false,
        };
        for check in runner::placed(&checks, &here) {
            let ctx = runner::ctx_of(check, kernel, &target);
            let r = runner::judge(
                check,
                &ctx,
                runner::Answer::Skip(why.to_string()),
                Duration::ZERO,
            );
            tally.0.add(r.outcome);
            emit(&Record::Result(r));
        }
    }
    say(&format!("done: {}", tally.0.describe()));
    emit(&tally.summary(started.elapsed()));
    Ok(())
}

/// The user's KTAP programs on one target, after its built-in checks, announced like checks.
fn run_user_checks(programs: &[zcmatrix_protocol::UserCheck], target: &Target, tally: &mut Tally) {
    for p in programs {
        println!(
            "{}{}.{} on {}",
            zcmatrix_protocol::CONSOLE_CHECK_START,
            crate::user::FAMILY,
            p.name,
            target.fs.as_deref().unwrap_or("kernel")
        );
        for r in crate::user::run(
            p,
            &target.dir,
            target.fs.as_deref(),
            target.logical_block_size,
        ) {
            tally.0.add(r.outcome);
            emit(&Record::Result(r));
        }
    }
}

/// The checks of one target (kernel scope on the scratch directory, which has no filesystem),
/// one at a time, each announced on the console first
/// ([`zcmatrix_protocol::CONSOLE_CHECK_START`]); with `only_block_size`, those the block size can
/// change (see [`catalogue::only_block_size`]).
fn run_each(
    checks: &[&'static crate::checks::Check],
    only_block_size: bool,
    kernel: KernelVersion,
    target: &Target,
    tally: &mut Tally,
) {
    let scope = if target.fs.is_some() {
        Scope::Fs
    } else {
        Scope::Kernel
    };
    let here = Placement {
        scope,
        fs: target.fs.as_deref(),
        profile: target.profile,
        page_size: None,
        only_block_size,
    };
    for check in runner::placed(checks, &here) {
        println!(
            "{}{} on {}",
            zcmatrix_protocol::CONSOLE_CHECK_START,
            zcmatrix_protocol::full_id(check.id, check.variant),
            target.fs.as_deref().unwrap_or("kernel")
        );
        runner::run_scope(&[check], scope, kernel, target, tally, &mut emit);
    }
}

fn mount_fs(src: &str, dst: &str, fstype: &str, data: Option<&str>) -> anyhow::Result<()> {
    fs::create_dir_all(dst)?;
    mount(Some(src), dst, Some(fstype), MsFlags::empty(), data)
        .with_context(|| format!("mounting {fstype} on {dst}"))
}

/// The kernel mounts nothing for us in an initramfs, not even devtmpfs.
fn mount_basics() -> anyhow::Result<()> {
    mount_fs("proc", "/proc", "proc", None)?;
    mount_fs("sysfs", "/sys", "sysfs", None)?;
    mount_fs("devtmpfs", "/dev", "devtmpfs", None)?;
    mount_fs("tmpfs", "/tmp", "tmpfs", Some("size=64m"))?;
    Ok(())
}

/// Without /dev/console in the initramfs, init starts with no stdio: attach it now.
fn attach_console() {
    if let Ok(c) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which we own as PID 1.
            unsafe { libc::dup2(c.as_raw_fd(), fd) };
        }
    }
}

fn read_manifest() -> anyhow::Result<Manifest> {
    serde_json::from_slice(
        &fs::read(MANIFEST_PATH).with_context(|| format!("reading {MANIFEST_PATH}"))?,
    )
    .context("parsing the manifest")
}

/// The device of the virtio-serial port named [`RESULT_PORT_NAME`], if the machine has one
/// (arm64 `virt` and ppc64le `pseries` have no second serial port; x86_64 uses ttyS1). The
/// port exists once virtio_console and its PCI transport are there: built in, or loaded from
/// the manifest's `port_modules`.
fn named_virtio_port() -> Option<PathBuf> {
    let ports = fs::read_dir("/sys/class/virtio-ports").ok()?;
    ports.flatten().find_map(|e| {
        let name = fs::read_to_string(e.path().join("name")).ok()?;
        let dev = Path::new("/dev").join(e.file_name());
        (name.trim() == RESULT_PORT_NAME && dev.exists()).then_some(dev)
    })
}

/// How long the named port may take to appear: virtio_console adds a port, and then names it,
/// when the device's control messages arrive, after its driver is loaded; devtmpfs makes the
/// node after that.
const PORT_WAIT: Duration = Duration::from_secs(10);

/// [`named_virtio_port`], waiting up to [`PORT_WAIT`] for it.
fn wait_for_virtio_port() -> Option<PathBuf> {
    let end = Instant::now() + PORT_WAIT;
    loop {
        let port = named_virtio_port();
        if port.is_some() || Instant::now() >= end {
            return port;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Raw mode, so the tty layer neither rewrites newlines nor echoes (a virtio port is no tty and
/// needs none). Only x86_64 has a second UART: elsewhere a missing virtio port is an error
/// that says why (this reaches the console only, which the host quotes).
fn open_port(port_modules: &[String]) -> anyhow::Result<()> {
    let named = if cfg!(target_arch = "x86_64") {
        named_virtio_port()
    } else {
        wait_for_virtio_port()
    };
    let (path, tty) = match named {
        Some(p) => (p, false),
        None if cfg!(target_arch = "x86_64") => (PathBuf::from(RESULT_PORT), true),
        None => bail!(
            "no virtio-serial port named {RESULT_PORT_NAME} under /sys/class/virtio-ports \
             within {PORT_WAIT:?}: \
             the result port needs virtio_console and virtio_pci, built in or loaded before it \
             (the manifest's port modules: {})",
            if port_modules.is_empty() {
                "none".to_string()
            } else {
                port_modules.join(", ")
            }
        ),
    };
    let port = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .with_context(|| format!("opening result port {}", path.display()))?;
    if tty {
        let mut t = nix::sys::termios::tcgetattr(&port)?;
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&port, nix::sys::termios::SetArg::TCSANOW, &t)?;
    }
    *PORT.lock().unwrap() = Some(port);
    Ok(())
}

/// Loads modules in the order the host resolved, and returns a record for each, which the
/// caller sends (the port's own modules are loaded before there is a port). EEXIST means built
/// in or already loaded; any other failure is said on the console and the run goes on: a
/// missing module shows up as a mount failure.
fn load_modules(paths: &[String]) -> Vec<Record> {
    let mut records = Vec::new();
    for p in paths {
        let name = Path::new(p)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone());
        let res = File::open(p).map_err(anyhow::Error::from).and_then(|f| {
            nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty())
                .map_err(anyhow::Error::from)
        });
        let (ok, detail) = match res {
            Ok(()) => (true, "loaded".to_string()),
            Err(e) if e.downcast_ref() == Some(&nix::errno::Errno::EEXIST) => {
                (true, "already present".to_string())
            }
            Err(e) => (false, format!("{e:#}")),
        };
        if !ok {
            say(&format!("module {name}: {detail}"));
        }
        records.push(Record::Module { name, ok, detail });
    }
    records
}

/// What the copy-on-write checks need of the machine: swap to page out to, THP on request,
/// a few 2 MiB hugetlb pages. Failures are reported and the checks that need them skip.
fn prepare_memory(swap_serial: Option<&str>, hugetlb: bool) {
    if let Some(serial) = swap_serial {
        let res = find_disk(serial, Duration::from_secs(10)).and_then(|dev| {
            let c = std::ffi::CString::new(dev.clone())?;
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::swapon(c.as_ptr(), 0) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("swapon {dev}"));
            }
            Ok(())
        });
        if let Err(e) = res {
            say(&format!("swap: {e:#}"));
            emit(&Record::Error {
                message: format!("swap: {e:#}"),
            });
        }
    }
    // THP on request (MADV_HUGEPAGE) and a few 2 MiB hugetlb pages; a kernel without THP or
    // hugetlb has no such file, and its checks skip saying so. A write that fails where the
    // file exists is reported: the skips that follow are the harness's doing, not the kernel's.
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    if fs::read_to_string(thp).is_ok_and(|s| s.contains("[never]")) {
        setup_write(thp, "madvise");
    }
    // Reserving takes tens of milliseconds of a TCG guest: only for a check that maps them.
    if !hugetlb {
        return;
    }
    // The 2 MiB pool by its size: the default hugetlb size is the PMD's, 2 MiB with 4 KiB
    // pages but 32 MiB on arm64 with 16 KiB pages (which has 2 MiB pages too, of contiguous
    // PTEs), and four of those would take a quarter of a small guest.
    let two_mib = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    if Path::new(two_mib).exists() {
        setup_write(two_mib, "4");
    } else {
        setup_write("/proc/sys/vm/nr_hugepages", "4");
    }
}

/// Writes a machine setting during set-up; a refusal reaches the host as an error record.
fn setup_write(path: &str, value: &str) {
    if !Path::new(path).exists() {
        return;
    }
    if let Err(e) = fs::write(path, value) {
        let message = format!("set-up: writing {value} to {path}: {e}");
        say(&message);
        emit(&Record::Error { message });
    }
}

/// Nothing else configures the network in a guest whose init is the harness; TCP checks need
/// 127.0.0.1.
fn loopback_up() -> anyhow::Result<()> {
    crate::sys::if_up("lo").context("bringing lo up")
}

/// The virtio-net interface with the manifest's MAC address, given its static address and
/// brought up: the kernel adds the route to its subnet, in which the host end answers. Probing
/// is asynchronous after virtio_net loads, as for disks.
fn nic_up(net: &zcmatrix_protocol::net::NetPath) -> anyhow::Result<crate::checks::common::Nic> {
    let address: std::net::Ipv4Addr = net.address.parse().context("the guest's address")?;
    let peer: std::net::SocketAddrV4 = net.peer.parse().context("the host end's address")?;
    let wait = Duration::from_secs(10);
    let end = Instant::now() + wait;
    let name = loop {
        let found = fs::read_dir("/sys/class/net").ok().and_then(|entries| {
            entries.flatten().find_map(|e| {
                let mac = fs::read_to_string(e.path().join("address")).unwrap_or_default();
                mac.trim()
                    .eq_ignore_ascii_case(&net.mac)
                    .then(|| e.file_name().to_string_lossy().into_owned())
            })
        });
        if let Some(n) = found {
            break n;
        }
        if Instant::now() >= end {
            bail!("no interface with MAC {} appeared within {wait:?}", net.mac);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix_len))
        .unwrap_or(0);
    crate::sys::set_ipv4(&name, libc::SIOCSIFADDR, address)
        .with_context(|| format!("SIOCSIFADDR {name}"))?;
    crate::sys::set_ipv4(&name, libc::SIOCSIFNETMASK, std::net::Ipv4Addr::from(mask))
        .with_context(|| format!("SIOCSIFNETMASK {name}"))?;
    crate::sys::if_up(&name).with_context(|| format!("bringing {name} up"))?;
    Ok(crate::checks::common::Nic { name, peer })
}

/// Mounts a target: finds its disk by virtio serial (probe order is not stable), its pmem
/// region by address, or makes a tmpfs.
fn prepare_target(t: &FsTarget) -> anyhow::Result<(Option<String>, PathBuf)> {
    let dir = PathBuf::from(format!(
        "/mnt/{}{}",
        t.fs,
        t.logical_block_size
            .map(|b| format!("-{b}"))
            .unwrap_or_default()
    ));
    fs::create_dir_all(&dir)?;
    if target::backing(&t.fs) == Backing::Overlay {
        let serial = t.disk_serial.as_deref().context("overlay needs its disk")?;
        let dev = find_disk(serial, Duration::from_secs(10))?;
        mount_overlay(&dev, &dir)?;
        return Ok((Some(dev), dir));
    }
    if let Some(start) = t.pmem_start {
        let dev = find_pmem(start, Duration::from_secs(10))?;
        mount_dax(&dev, &dir, &t.fs)?;
        return Ok((Some(dev), dir));
    }
    match &t.disk_serial {
        None => {
            mount(
                Some("tmpfs"),
                &dir,
                Some(t.fs.as_str()),
                MsFlags::empty(),
                Some("size=256m"),
            )
            .with_context(|| format!("mounting {}", t.fs))?;
            Ok((None, dir))
        }
        Some(serial) => {
            let dev = find_disk(serial, Duration::from_secs(10))?;
            mount(
                Some(dev.as_str()),
                &dir,
                Some(t.fs.as_str()),
                MsFlags::empty(),
                None::<&str>,
            )
            .with_context(|| format!("mounting {dev} as {}", t.fs))?;
            Ok((Some(dev), dir))
        }
    }
}

/// overlayfs as containers use it: lower and upper layers are directories of one ext4 disk
/// (mounted beside), and the lower layer holds the files the copy-up checks open through the
/// merged directory, written before the mount (changing a layer under a mounted overlay is
/// undefined, overlayfs.rst).
fn mount_overlay(dev: &str, merged: &Path) -> anyhow::Result<()> {
    let layers = PathBuf::from("/mnt/overlay-layers");
    fs::create_dir_all(&layers)?;
    mount(
        Some(dev),
        &layers,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting {dev} as ext4 for the overlay's layers"))?;
    let (lower, upper, work) = (
        layers.join("lower"),
        layers.join("upper"),
        layers.join("work"),
    );
    for d in [&lower, &upper, &work] {
        fs::create_dir_all(d)?;
    }
    for name in crate::checks::common::LOWER_FILES {
        crate::sys::write_file_synced(
            &lower.join(name),
            &crate::checks::common::lower_content(name),
        )
        .with_context(|| format!("writing {name} into the lower layer"))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .with_context(|| format!("mounting overlay ({opts})"))
}

/// Mounts a filesystem on persistent memory with DAX on: `dax=always` (02beb2686ff9 and
/// 9cb20f94afcd, xfs and ext4, 5.8-5.9), else the older `dax`. Whether DAX really is on is for `dax.mounted` to check.
fn mount_dax(dev: &str, dir: &Path, name: &str) -> anyhow::Result<()> {
    let fs_type = target::image_fs(name);
    let mut errors = Vec::new();
    for opts in ["dax=always", "dax"] {
        match mount(Some(dev), dir, Some(fs_type), MsFlags::empty(), Some(opts)) {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(format!("-o {opts}: {e}")),
        }
    }
    bail!(
        "mounting {dev} as {fs_type} with DAX: {}",
        errors.join("; ")
    )
}

/// The pmem block device of the region starting at `start` (declared by `memmap=` on x86_64,
/// by a device-tree `pmem-region` node on arm64): its namespace's `resource` names the start.
/// Probing is asynchronous after nd_pmem loads.
fn find_pmem(start: u64, wait: Duration) -> anyhow::Result<String> {
    let end = Instant::now() + wait;
    loop {
        if let Ok(entries) = fs::read_dir("/sys/block") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with("pmem") {
                    continue;
                }
                let res = fs::read_to_string(e.path().join("device/resource")).unwrap_or_default();
                let at = u64::from_str_radix(res.trim().trim_start_matches("0x"), 16).ok();
                let dev = format!("/dev/{name}");
                if at == Some(start) && Path::new(&dev).exists() {
                    return Ok(dev);
                }
            }
        }
        if Instant::now() >= end {
            bail!(
                "no pmem device of the region at {start:#x} appeared within {wait:?} (the \
                 region declared, its module and nd_pmem loaded)"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Disk probing is asynchronous after virtio_blk loads: poll sysfs until the serial shows up.
fn find_disk(serial: &str, wait: Duration) -> anyhow::Result<String> {
    let end = Instant::now() + wait;
    loop {
        if let Ok(entries) = fs::read_dir("/sys/block") {
            for e in entries.flatten() {
                let s = fs::read_to_string(e.path().join("serial")).unwrap_or_default();
                if s.trim() == serial {
                    let dev = format!("/dev/{}", e.file_name().to_string_lossy());
                    if Path::new(&dev).exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() >= end {
            bail!("no disk with serial {serial:?} appeared within {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Only reached if power-off failed; returning from PID 1 would panic the kernel.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
