//! What several families need and no family owns: fixture files, the O_DIRECT open and its
//! rule, judging a transfer. Families import this module, never each other; the low-level,
//! check-agnostic helpers (mappings, pipes, pagemap) are in [`crate::sys`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zcmatrix_protocol::net::{
    Op, Request, Verdict, CONNECT_ATTEMPTS, FRAME_LEN, HOST_END_UNREACHABLE,
};

use super::{broken, skip, Ctx, Expect, Observation, Stop};
use crate::sys;

/// Whether O_DIRECT opens: everywhere but tmpfs before 6.6 (EINVAL). `dio.open` judges it; every
/// other check that needs O_DIRECT skips where it does not open.
pub const DIRECT_OPEN: Expect = Expect::ByFs {
    cases: &[(
        "tmpfs",
        Expect::since(6, 6, &Expect::is("EINVAL"), &Expect::is("ok")),
    )],
    otherwise: &Expect::is("ok"),
};

/// open(2) with O_DIRECT (and `extra_flags`), creating the file when writing.
pub fn open_direct(path: &Path, write: bool, extra_flags: i32) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | extra_flags)
        .mode(0o644)
        .open(path)
}

/// Opens for direct I/O, or skips: where the filesystem refuses O_DIRECT the check does not
/// apply (`dio.open` carries that fact).
pub fn direct_or_skip(path: &Path, write: bool, extra_flags: i32) -> Result<File, Stop> {
    open_direct(path, write, extra_flags).map_err(|e| {
        skip(format!(
            "O_DIRECT open refused with {} (dio.open records this)",
            sys::io_error_name(&e)
        ))
    })
}

/// A fresh file `name` in the check's directory holding `len` pattern bytes (seeded by `seed`),
/// synced to stable storage; returned open for reading and writing, with its bytes.
pub fn fixture(ctx: &Ctx, name: &str, len: usize, seed: u64) -> Result<(File, Vec<u8>), Stop> {
    let data = sys::pattern(len, seed ^ name.len() as u64);
    let f = sys::write_file_synced(&ctx.dir.join(name), &data)?;
    Ok((f, data))
}

/// [`fixture`] reopened read-only, so its file position is 0: the source of a transfer that
/// reads from the position (sendfile and splice with no offset pointer).
pub fn source(ctx: &Ctx, name: &str, len: usize, seed: u64) -> Result<(File, Vec<u8>), Stop> {
    let (_, data) = fixture(ctx, name, len, seed)?;
    Ok((File::open(ctx.dir.join(name))?, data))
}

/// sendfile.dio_source and splice.dio_in: what a splice read of an O_DIRECT file does.
pub const EVIDENCE_DIO_SPLICE: &str = "splice(2) and sendfile(2) read O_DIRECT files: through \
    the page cache up to 6.4, since 6.5 with direct reads into fresh pages (aa3dbde87896 \"splice: \
    Make splice from an O_DIRECT fd use copy_splice_read()\"); either way every byte arrives. Where O_DIRECT \
    does not open (tmpfs before 6.6) the check is a skip and dio.open records it";

/// Why /proc and /sys files still splice after 5.10 made ->splice_read mandatory.
pub const EVIDENCE_PSEUDO_FILES: &str = "36e2c7421f02 \"fs: don't allow splice read/write without \
    explicit ops\" (5.10) made files without ->splice_read fail with EINVAL; fe33850ff798 \"proc: \
    wire up generic_file_splice_read for iter ops\" and \"kernfs: wire up ->splice_read and \
    ->splice_write\" (5.10 and its stable updates) gave procfs seq files and sysfs one back";

/// /proc/version and /sys/kernel/uevent_seqnum moved into a pipe by `mover` (sendfile or
/// splice): `proc=ok sys=ok` when something arrived from each, else the errno, `empty` or
/// `missing` in its place.
pub fn pseudo_sources(mover: impl Fn(&File, &File) -> nix::Result<usize>) -> Observation {
    let one = |path: &str| {
        let Ok(f) = File::open(path) else {
            return "missing".to_string();
        };
        match sys::collect_pipe(|tx| mover(&f, tx)) {
            Ok((Ok(0), _)) => "empty".into(),
            Ok((Ok(_), _)) => "ok".into(),
            Ok((Err(e), _)) => sys::errno_name(e),
            Err(e) => sys::io_error_name(&e),
        }
    };
    Observation::saw(
        format!(
            "proc={} sys={}",
            one("/proc/version"),
            one("/sys/kernel/uevent_seqnum")
        ),
        "/proc/version and /sys/kernel/uevent_seqnum into a pipe",
    )
}

/// `ok` when every byte of `want` arrived as reported; otherwise what went wrong, or the errno.
pub fn moved(res: sys::Moved, got: &[u8], want: &[u8]) -> Observation {
    let n = match res {
        Ok(n) => n,
        Err((n, e)) => return errno_after(n, e),
    };
    match sys::first_difference(got, want) {
        None if n == want.len() => {
            Observation::saw("ok", format!("{n} bytes moved, data verified"))
        }
        None => Observation::saw("short", format!("reported {n} of {} bytes", want.len())),
        Some(at) => Observation::saw(
            "corrupt",
            format!(
                "reported {n}, received {} of {}, first difference at {at}",
                got.len(),
                want.len()
            ),
        ),
    }
}

/// The errno of a transfer that failed after `n` bytes, as the observation.
pub fn errno_after(n: usize, e: nix::errno::Errno) -> Observation {
    Observation::saw(sys::errno_name(e), format!("failed after {n} bytes: {e}"))
}

/// An errno as the observation, with what failed.
pub fn errno(e: nix::errno::Errno, what: &str) -> Observation {
    Observation::saw(sys::errno_name(e), format!("{what}: {e}"))
}

/// A fresh empty file at `path`, open for reading and writing: the target of a copy or clone.
pub fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Files an overlay target's lower layer holds before it is mounted (the guest writes them
/// there): the checks where copy-up is the point open them through the merged directory, where
/// they are lower-layer files until something opens them for writing.
/// A ring of `entries`, or why there is none: see [`uring_setup_refused`].
pub fn uring_ring(entries: u32) -> Result<io_uring::IoUring, Stop> {
    io_uring::IoUring::new(entries).map_err(|e| uring_setup_refused(io_errno(&e)))
}

/// The errno of an I/O error (0 for one that has none).
pub fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// What io_uring_setup(2) refusing means: ENOSYS, io_uring is not built in (CONFIG_IO_URING
/// unset), and EPERM, it is switched off (`kernel.io_uring_disabled`, 6.6, or a seccomp
/// filter), are preconditions absent, skips saying which; any other errno is the probe's
/// error, never "unavailable".
pub fn uring_setup_refused(e: nix::errno::Errno) -> Stop {
    use nix::errno::Errno;
    match e {
        Errno::ENOSYS => skip(
            "io_uring is not in this kernel: io_uring_setup failed with ENOSYS \
             (CONFIG_IO_URING unset)",
        ),
        Errno::EPERM => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map_or("absent".into(), |v| v.trim().to_string());
            skip(format!(
                "io_uring is disabled here: io_uring_setup failed with EPERM \
                 (kernel.io_uring_disabled = {sysctl}; where that is 0, a seccomp filter)"
            ))
        }
        e => broken(format!("io_uring_setup failed with {}", sys::errno_name(e))),
    }
}

/// The opcodes `ring`'s kernel supports (IORING_REGISTER_PROBE, 5.6). A refused probe is the
/// probe's error: it says nothing about which opcodes the kernel has.
pub fn uring_probe(ring: &io_uring::IoUring) -> Result<io_uring::Probe, Stop> {
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| probe_refused(&e))?;
    Ok(probe)
}

fn probe_refused(e: &std::io::Error) -> Stop {
    broken(format!(
        "IORING_REGISTER_PROBE failed with {}: which opcodes this kernel has is unknown",
        sys::io_error_name(e)
    ))
}

/// The modules the host asked this guest's kernel for and did not find (the manifest's
/// `missing_modules`); none natively, where there is no manifest.
pub fn host_missing_modules() -> Vec<String> {
    std::fs::read(zcmatrix_protocol::MANIFEST_PATH)
        .ok()
        .and_then(|m| serde_json::from_slice::<zcmatrix_protocol::Manifest>(&m).ok())
        .map(|m| m.missing_modules)
        .unwrap_or_default()
}

pub const LOWER_FILES: &[&str] = &[
    "overlay.lower.mmap",
    "overlay.lower.fd",
    "overlay.lower.dio",
    "overlay.lower.splice",
];

/// The content of a lower-layer file: [`LOWER_LEN`] pattern bytes seeded by its name.
pub const LOWER_LEN: usize = 16 << 10;

pub fn lower_content(name: &str) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(0x10e7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    sys::pattern(LOWER_LEN, seed)
}

/// The guest's virtio-net path to zcmatrix's host end (see [`zcmatrix_protocol::net`]).
#[derive(Debug, Clone)]
pub struct Nic {
    /// The interface's name in the guest.
    pub name: String,
    /// The host end, reached through the interface.
    pub peer: std::net::SocketAddrV4,
}

static NIC: std::sync::OnceLock<Nic> = std::sync::OnceLock::new();

/// Records the interface the guest brought up, before any check runs (probes are forked after,
/// and inherit it).
pub fn set_nic(nic: Nic) {
    let _ = NIC.set(nic);
}

/// The virtio-net path, or a skip: a native run (or a guest whose interface did not come up,
/// which the guest reports as a set-up error) has no host end to talk to.
pub fn nic_or_skip() -> Result<&'static Nic, Stop> {
    NIC.get().ok_or_else(|| {
        skip(
            "no virtio-net path to a host end here: only a guest has one (a native run has no \
             NIC of zcmatrix's; a guest whose interface did not come up reports why)",
        )
    })
}

/// How long the host end's answer may take; a TCG guest moves about 1 MiB/s through it.
const NIC_ANSWER: std::time::Duration = std::time::Duration::from_secs(20);

/// A connection to the host end. A connection that fails is tried again, [`CONNECT_ATTEMPTS`]
/// times in all, a second apart; one that never comes is zcmatrix's failure ([`Stop::Infra`]),
/// not the kernel's.
pub fn nic_stream(nic: &Nic) -> Result<TcpStream, Stop> {
    let mut failures = Vec::new();
    loop {
        match TcpStream::connect_timeout(&nic.peer.into(), NIC_ANSWER) {
            Ok(s) => return Ok(s),
            Err(e) => failures.push(e.to_string()),
        }
        if failures.len() as u32 >= CONNECT_ATTEMPTS {
            return Err(Stop::Infra(format!(
                "{HOST_END_UNREACHABLE} at {} through {}: {}",
                nic.peer,
                nic.name,
                failures.join("; ")
            )));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A connection to the host end ([`nic_stream`]) with `request` sent, ready for the transfer.
pub fn nic_connect(nic: &Nic, request: Request) -> Result<TcpStream, Stop> {
    let s = nic_stream(nic)?;
    s.set_read_timeout(Some(NIC_ANSWER))?;
    s.set_write_timeout(Some(NIC_ANSWER))?;
    s.set_nodelay(true)?;
    (&s).write_all(&request.encode())?;
    Ok(s)
}

/// Sends `len` pattern bytes of `seed` to the host end with `send` (which moves the bytes it is
/// given by whatever mechanism the check probes, and answers `None`, or the observation that
/// stopped it early, such as an errno) and reads the host's verdict: `ok` when the host
/// received every byte right, else what it saw. A send that stopped early awaits no verdict.
pub fn nic_sink(
    nic: &Nic,
    seed: u64,
    len: usize,
    send: impl FnOnce(&TcpStream, &[u8]) -> Result<Option<Observation>, Stop>,
) -> Result<Observation, Stop> {
    let data = zcmatrix_protocol::net::pattern(seed, len);
    let s = nic_connect(
        nic,
        Request {
            op: Op::Sink,
            seed,
            len: len as u64,
        },
    )?;
    if let Some(stopped) = send(&s, &data)? {
        return Ok(stopped);
    }
    let mut answer = [0u8; FRAME_LEN];
    (&s).read_exact(&mut answer)
        .map_err(|e| broken(format!("no verdict from the host end: {e}")))?;
    let v =
        Verdict::decode(&answer).ok_or_else(|| broken("the host end's answer is no verdict"))?;
    let o = if v.verified(len as u64) {
        Observation::saw(
            "ok",
            format!("{len} bytes through {}, verified by the host end", nic.name),
        )
    } else if let Some(at) = v.first_difference {
        Observation::saw(
            "corrupt",
            format!(
                "the host end received {} bytes, first difference at {at}",
                v.received
            ),
        )
    } else {
        Observation::saw(
            "short",
            format!("the host end received {} of {len} bytes", v.received),
        )
    };
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// io_uring_setup's errnos: not built and switched off are skips that say which; anything
    /// else (ENOMEM, EFAULT) is an error, and so is a refused IORING_REGISTER_PROBE.
    #[test]
    fn io_uring_refusals_are_told_apart() {
        use nix::errno::Errno;
        assert!(matches!(uring_setup_refused(Errno::ENOSYS),
            Stop::Skip(why) if why.contains("CONFIG_IO_URING")));
        assert!(matches!(uring_setup_refused(Errno::EPERM),
            Stop::Skip(why) if why.contains("io_uring_disabled")));
        for e in [Errno::ENOMEM, Errno::EFAULT, Errno::EINVAL] {
            assert!(matches!(uring_setup_refused(e), Stop::Broken(_)), "{e}");
        }
        let refused = std::io::Error::from_raw_os_error(libc::EFAULT);
        assert!(
            matches!(probe_refused(&refused), Stop::Broken(e) if e.to_string().contains("EFAULT"))
        );
    }
    use crate::kver::KernelVersion;

    #[test]
    fn a_source_reads_from_its_start_and_holds_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            kernel: KernelVersion::new(6, 1, 0),
            dir: dir.path().to_path_buf(),
            fs: None,
            logical_block_size: None,
            device: None,
            owns_machine: false,
            mounts: Vec::new(),
            profile: zcmatrix_protocol::Profile::Full,
            variant: None,
        };
        let (f, data) = source(&ctx, "src", 10_000, 7).unwrap();
        assert_eq!(data.len(), 10_000);
        assert_eq!(sys::read_all(f).unwrap(), data);
    }

    #[test]
    fn pseudo_sources_name_what_each_file_did() {
        // /sys may be missing in a container; /proc is not.
        let o = pseudo_sources(|_, _| Err(nix::errno::Errno::EINVAL));
        assert!(o.value.starts_with("proc=EINVAL sys="), "{}", o.value);
        let o = pseudo_sources(|_, _| Ok(0));
        assert!(o.value.starts_with("proc=empty sys="), "{}", o.value);
    }
}
