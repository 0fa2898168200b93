//! The scenarios of cow.c's `anon_test_cases` that run without debugfs gup_test, and its
//! non-anonymous "Basic COW". Each probe runs in the runner's forked child and forks again as
//! the scenario needs; every helper process's end is checked, so a child that died before it
//! wrote or compared is an error, never an observation. A child first checks that it holds a copy
//! of what its parent wrote before fork() (see [`copy`]): when it does not, the kernel lost the
//! copy, and that is the observation.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::super::{broken, common, skip, Ctx, Observation, Stop};
use super::backings::{self, all_equal, Region, FILL};
use super::copy::{self, Entries, Seen};
use crate::sys;

/// What the writing process stores (cow.c's `memset(mem, 0xff)`).
const NEW: u8 = 0xff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ForkBasic,
    ForkBasicMprotect,
    VmspliceUnmapChild,
    VmspliceUnmapChildMprotect,
    VmspliceBeforeForkUnmapParent,
    VmspliceUnmapParent,
    IouringFixedRo,
    IouringFixedFork,
}

/// A scenario as a family of checks: id, description, the scenario the probe runs.
pub struct Def {
    pub id: &'static str,
    pub description: &'static str,
    pub scenario: Scenario,
    pub probe: super::super::Probe,
}

/// In cow.c's order.
pub const ANON: &[Def] = &[
    Def {
        id: "cow.fork_basic",
        description: "after fork(), each process's writes stay its own",
        scenario: Scenario::ForkBasic,
        probe: |ctx| anon(ctx, Scenario::ForkBasic),
    },
    Def {
        id: "cow.fork_basic_mprotect",
        description: "the same, with the parent doing mprotect(PROT_READ) then \
                      mprotect(PROT_READ|PROT_WRITE) before writing",
        scenario: Scenario::ForkBasicMprotect,
        probe: |ctx| anon(ctx, Scenario::ForkBasicMprotect),
    },
    Def {
        id: "cow.vmsplice_unmap_child",
        description: "child vmsplices the memory into a pipe and unmaps it; the parent writes; \
                      the child reads the pipe",
        scenario: Scenario::VmspliceUnmapChild,
        probe: |ctx| anon(ctx, Scenario::VmspliceUnmapChild),
    },
    Def {
        id: "cow.vmsplice_unmap_child_mprotect",
        description: "the same, with the parent doing mprotect(PROT_READ) then \
                      mprotect(PROT_READ|PROT_WRITE) before writing",
        scenario: Scenario::VmspliceUnmapChildMprotect,
        probe: |ctx| anon(ctx, Scenario::VmspliceUnmapChildMprotect),
    },
    Def {
        id: "cow.vmsplice_before_fork_unmap_parent",
        description: "parent vmsplices before fork() and unmaps after; the child writes; the \
                      parent reads the pipe",
        scenario: Scenario::VmspliceBeforeForkUnmapParent,
        probe: |ctx| anon(ctx, Scenario::VmspliceBeforeForkUnmapParent),
    },
    Def {
        id: "cow.vmsplice_unmap_parent",
        description: "parent vmsplices after fork() and unmaps; the child writes; the parent \
                      reads the pipe",
        scenario: Scenario::VmspliceUnmapParent,
        probe: |ctx| anon(ctx, Scenario::VmspliceUnmapParent),
    },
    Def {
        id: "cow.iouring_fixed_ro",
        description: "memory registered as an io_uring fixed buffer is mapped R/O and back, \
                      written, and written out through the buffer",
        scenario: Scenario::IouringFixedRo,
        probe: |ctx| anon(ctx, Scenario::IouringFixedRo),
    },
    Def {
        id: "cow.iouring_fixed_fork",
        description: "memory registered as an io_uring fixed buffer; fork(); the parent writes \
                      it and writes it out through the buffer",
        scenario: Scenario::IouringFixedFork,
        probe: |ctx| anon(ctx, Scenario::IouringFixedFork),
    },
];

pub const FILE_BASIC_ID: &str = "cow.file_basic";
pub const FILE_BASIC_DESCRIPTION: &str =
    "a private writable mapping of a file page (or the zeropage) and another mapping of it; \
     fork(); the parent writes the private mapping; neither the child's views nor the other \
     mapping may change";

/// Builds the variant's backing and runs the scenario on it.
fn anon(ctx: &Ctx, scenario: Scenario) -> Result<Observation, Stop> {
    let variant = backings::lookup(&backings::ANON, ctx)?;
    let region = backings::prepare(variant.backing)?;
    let seen = match scenario {
        Scenario::ForkBasic => cow_in_parent(&region, false, false),
        Scenario::ForkBasicMprotect => cow_in_parent(&region, false, true),
        Scenario::VmspliceUnmapChild => cow_in_parent(&region, true, false),
        Scenario::VmspliceUnmapChildMprotect => cow_in_parent(&region, true, true),
        Scenario::VmspliceBeforeForkUnmapParent => vmsplice_in_parent(&region, true),
        Scenario::VmspliceUnmapParent => vmsplice_in_parent(&region, false),
        Scenario::IouringFixedRo => iouring(ctx, &region, false),
        Scenario::IouringFixedFork => iouring(ctx, &region, true),
    }?;
    Ok(Observation::saw(
        seen.value,
        format!("{} ({} bytes): {}", region.what, region.size, seen.detail),
    ))
}

/// One process's end of two one-way pipes: the child says it is ready, the parent says it is
/// done. Each side closes the ends it does not use, so a peer that died is an EOF, not a hang.
struct Side {
    rx: File,
    tx: File,
}

struct Handshake {
    child_ready: (File, File),
    parent_done: (File, File),
}

impl Handshake {
    fn new() -> nix::Result<Handshake> {
        Ok(Handshake {
            child_ready: sys::pipe()?,
            parent_done: sys::pipe()?,
        })
    }

    fn child(self) -> Side {
        Side {
            rx: self.parent_done.0,
            tx: self.child_ready.1,
        }
    }

    fn parent(self) -> Side {
        Side {
            rx: self.child_ready.0,
            tx: self.parent_done.1,
        }
    }
}

/// What a process heard from its peer: ready, or (from a child that stops there) an account of
/// what it found instead of its copy of the memory.
enum Heard {
    Ready,
    Told(String),
}

impl Side {
    fn signal(&self) -> std::io::Result<()> {
        (&self.tx).write_all(b"0")
    }

    /// Instead of [`Side::signal`], for a child that stops: `what` reaches the peer's
    /// [`Side::hear`] whole once the child has exited.
    fn tell(&self, what: &str) -> std::io::Result<()> {
        (&self.tx).write_all(format!("!{what}").as_bytes())
    }

    /// [`Side::wait`] for a peer that may [`Side::tell`] instead.
    fn hear(&self) -> std::io::Result<Heard> {
        let mut b = [0u8; 1];
        (&self.rx).read_exact(&mut b)?;
        if b[0] != b'!' {
            return Ok(Heard::Ready);
        }
        // The teller exits after telling: read to its end of the pipe.
        let mut what = String::new();
        (&self.rx).read_to_string(&mut what)?;
        Ok(Heard::Told(what))
    }

    fn wait(&self) -> std::io::Result<()> {
        let mut b = [0u8; 1];
        (&self.rx).read_exact(&mut b)
    }
}

/// A forked helper, killed and reaped if the probe gives up on it.
struct Child(Option<Pid>);

impl Child {
    /// Waits for the child; its exit code, or why it has none.
    fn exit_code(mut self) -> Result<i32, Stop> {
        let pid = self.0.take().expect("reaped once");
        match waitpid(pid, None)? {
            WaitStatus::Exited(_, code) => Ok(code),
            other => Err(broken(format!("the child ended with {other:?}"))),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Forks; the child runs `f` with its end of the handshake and exits with `f`'s value; the
/// parent gets the child and its own end.
fn spawn(hs: Handshake, f: impl FnOnce(Side) -> i32) -> Result<(Child, Side), Stop> {
    // SAFETY: the child runs `f` and _exits. In a guest or a native run the probe is
    // single-threaded when it forks; under `cargo test` other test threads may hold locks, and
    // the child's allocations (pagemap reads, the words it sends) rely on glibc's malloc being
    // reset in the child by fork(), which it is.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = f(hs.child());
            // SAFETY: leave the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok((Child(Some(child)), hs.parent())),
    }
}

/// The child's exit codes in [`cow_in_parent`] and [`file_basic`]: 0 and 1 are the
/// comparison, 2 that its memory was not a copy of the parent's (told over the handshake), the
/// others say where the child stopped.
const SAME: i32 = 0;
const CHANGED: i32 = 1;
const COPY_DIFFERS: i32 = 2;
const PIPE_FAILED: i32 = 3;
const VMSPLICE_FAILED: i32 = 4;
const UNMAP_FAILED: i32 = 5;
const HANDSHAKE_FAILED: i32 = 6;
const READ_FAILED: i32 = 7;

fn child_failure(code: i32) -> String {
    let what = match code {
        COPY_DIFFERS => "its memory was not the parent's, and its account of it was lost",
        PIPE_FAILED => "pipe() failed",
        VMSPLICE_FAILED => "vmsplice() failed or moved nothing",
        UNMAP_FAILED => "unmapping failed",
        HANDSHAKE_FAILED => "the parent went away",
        READ_FAILED => "reading the pipe failed",
        _ => "unexpected exit code",
    };
    format!("the child could not compare: {what} (exit {code})")
}

/// vmsplice as much of the region as the pipe takes (16 pages by default, as in cow.c); the
/// bytes taken.
fn splice_in(region: &Region, tx: &File) -> Result<usize, nix::errno::Errno> {
    let iov = [libc::iovec {
        iov_base: region.mem.cast(),
        iov_len: region.size,
    }];
    sys::vmsplice_raw(tx.as_raw_fd(), &iov, 0)
}

/// A child that found its copy of the memory wrong said so (`what`) and exits: the observation,
/// with the parent's page table beside the child's.
fn not_copied(child: Child, region: &Region, what: String) -> Result<Observation, Stop> {
    match child.exit_code()? {
        COPY_DIFFERS => Ok(Observation::saw(
            copy::NOT_COPIED,
            format!("{what}{}", copy::parent_view(region)),
        )),
        code => Err(broken(format!(
            "{} (it had said: {what})",
            child_failure(code)
        ))),
    }
}

/// The start of every child: its copy of `region`, looked at before anything touches it, must
/// hold `want`; else it tells the parent what it found and ends with [`COPY_DIFFERS`]. Reading
/// it keeps the old contents, as cow.c's memcpy does. `view` names the region where a child
/// holds more than one; `entries` says whether fork() copies its page table.
fn copied(
    region: &Region,
    want: u8,
    side: &Side,
    view: Option<&str>,
    entries: Entries,
) -> Result<(), i32> {
    match Seen::look(region).check(region, want, entries) {
        None => Ok(()),
        Some(what) => {
            let what = match view {
                Some(v) => format!("{v}: {what}"),
                None => what,
            };
            let _ = side.tell(&what);
            Err(COPY_DIFFERS)
        }
    }
}

fn read_n(mut f: &File, n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    f.read_exact(&mut v)?;
    Ok(v)
}

/// cow.c's `do_test_cow_in_parent`: the child keeps a view of the memory (its mapping, or a
/// pipe it vmsplice'd the memory into before unmapping it), the parent writes, the child
/// compares.
fn cow_in_parent(region: &Region, vmsplice: bool, mprotect: bool) -> Result<Observation, Stop> {
    let hs = Handshake::new()?;
    let (child, side) = spawn(hs, |side| {
        if let Err(code) = copied(region, FILL, &side, None, Entries::Copied) {
            return code;
        }
        if !vmsplice {
            if side.signal().is_err() || side.wait().is_err() {
                return HANDSHAKE_FAILED;
            }
            return if region.all(FILL) { SAME } else { CHANGED };
        }
        let Ok((rx, tx)) = sys::pipe() else {
            return PIPE_FAILED;
        };
        let n = match splice_in(region, &tx) {
            Ok(n) if n > 0 => n,
            _ => return VMSPLICE_FAILED,
        };
        if region.unmap().is_err() {
            return UNMAP_FAILED;
        }
        if side.signal().is_err() || side.wait().is_err() {
            return HANDSHAKE_FAILED;
        }
        match read_n(&rx, n) {
            Ok(got) if all_equal(&got, FILL) => SAME,
            Ok(_) => CHANGED,
            Err(_) => READ_FAILED,
        }
    })?;
    match side.hear() {
        Ok(Heard::Ready) => {}
        Ok(Heard::Told(what)) => return not_copied(child, region, what),
        Err(e) => {
            let code = child.exit_code()?;
            return Err(broken(format!("{} ({e})", child_failure(code))));
        }
    }
    if mprotect {
        // mprotect() optimizations might map the page writable without a write fault.
        region_protect(region, libc::PROT_READ)?;
        region_protect(region, libc::PROT_READ | libc::PROT_WRITE)?;
    }
    region.fill(NEW);
    side.signal()?;
    let view = if vmsplice {
        "the child's pipe"
    } else {
        "the child's mapping"
    };
    match child.exit_code()? {
        SAME => Ok(Observation::saw(
            "isolated",
            format!("{view} kept the old bytes after the parent wrote"),
        )),
        CHANGED => Ok(Observation::saw(
            "leak",
            format!("{view} showed the parent's write"),
        )),
        code => Err(broken(child_failure(code))),
    }
}

fn region_protect(region: &Region, prot: i32) -> Result<(), Stop> {
    // SAFETY: the region's own memory; nothing touches it while it is read-only but reads.
    unsafe { sys::mprotect_range(region.mem, region.size, prot) }
        .map_err(|e| broken(format!("mprotect({prot:#x}) of the region: {e}")))
}

/// cow.c's `do_test_vmsplice_in_parent`: the parent vmsplices (before or after fork()) and
/// unmaps, the child writes, the parent reads the pipe.
fn vmsplice_in_parent(region: &Region, before_fork: bool) -> Result<Observation, Stop> {
    // Keeping the old contents reads the memory, as cow.c's memcpy does (swapping it back in).
    if !region.all(FILL) {
        return Err(broken("the memory did not hold what was written"));
    }
    let hs = Handshake::new()?;
    let (rx, tx) = sys::pipe()?;
    let splice = || match splice_in(region, &tx) {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(broken("vmsplice moved nothing")),
        Err(e) => Err(broken(format!("vmsplice: {e}"))),
    };
    let mut n = if before_fork { splice()? } else { 0 };
    let (child, side) = spawn(hs, |side| {
        // Its write proves something only on a copy of what the parent spliced.
        if let Err(code) = copied(region, FILL, &side, None, Entries::Copied) {
            return code;
        }
        if side.signal().is_err() || side.wait().is_err() {
            return HANDSHAKE_FAILED;
        }
        region.fill(NEW);
        SAME
    })?;
    if !before_fork {
        n = splice()?;
    }
    if let Heard::Told(what) = side.hear()? {
        return not_copied(child, region, what);
    }
    region
        .unmap()
        .map_err(|e| broken(format!("unmapping the parent's view: {e}")))?;
    side.signal()?;
    // The child must have written, else "isolated" would prove nothing.
    match child.exit_code()? {
        SAME => {}
        code => return Err(broken(child_failure(code))),
    }
    let got = read_n(&rx, n)?;
    Ok(if all_equal(&got, FILL) {
        Observation::saw(
            "isolated",
            format!("the pipe kept the old {n} bytes after the child wrote"),
        )
    } else {
        Observation::saw(
            "leak",
            format!("the pipe showed the child's write ({n} bytes)"),
        )
    })
}

/// cow.c's `do_test_iouring`: a long-term R/W pin (io_uring fixed buffer) must keep seeing the
/// memory the process writes, after R/O mapping and back, or across fork().
fn iouring(ctx: &Ctx, region: &Region, use_fork: bool) -> Result<Observation, Stop> {
    use io_uring::{opcode, types};
    // A kernel without io_uring, or with it switched off, is a skip saying which; any other
    // refusal of io_uring_setup is an error (common::uring_setup_refused).
    let mut ring = common::uring_ring(1)?;
    let iov = [libc::iovec {
        iov_base: region.mem.cast(),
        iov_len: region.size,
    }];
    // SAFETY: the buffer stays mapped until the ring is dropped at the end of this function.
    unsafe { ring.submitter().register_buffers(&iov) }.map_err(|e| {
        skip(
            sys::needs_memlock("io_uring_register_buffers", sys::errno_of(&e)).unwrap_or_else(
                || {
                    format!(
                        "io_uring_register_buffers failed ({})",
                        sys::io_error_name(&e)
                    )
                },
            ),
        )
    })?;
    let mut child = None;
    let mut side = None;
    if use_fork {
        // The child only keeps the memory shared until the parent is done.
        let (c, s) = spawn(Handshake::new()?, |side| {
            if side.signal().is_err() || side.wait().is_err() {
                return HANDSHAKE_FAILED;
            }
            SAME
        })?;
        child = Some(c);
        s.wait()?;
        side = Some(s);
    } else {
        // R/O and back, with soft-dirty cleared so mprotect() cannot map the page writable
        // again without a write fault (as cow.c does).
        region_protect(region, libc::PROT_READ)?;
        std::fs::write("/proc/self/clear_refs", "4").map_err(|e| {
            broken(format!(
                "clearing soft-dirty bits (/proc/self/clear_refs): {}",
                sys::io_error_name(&e)
            ))
        })?;
        region_protect(region, libc::PROT_READ | libc::PROT_WRITE)?;
    }
    region.fill(NEW);
    let name = format!("cow.iouring.{}", std::process::id());
    let path = ctx.dir.join(name);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    // The scratch tmpfs holds 64 MiB: write out the first 4 MiB the pin sees (all of a base
    // page or THP, the head of a 1 GiB hugetlb page). One write_fixed may move less than
    // asked, so go on from where it stopped, still through the registered buffer.
    let span = region.size.min(4 << 20);
    let mut done = 0usize;
    while done < span {
        let left = span - done;
        // SAFETY: inside the registered buffer.
        let addr = unsafe { region.mem.add(done) };
        let sqe = opcode::WriteFixed::new(types::Fd(file.as_raw_fd()), addr, left as u32, 0)
            .offset(done as u64)
            .build();
        // SAFETY: the buffer and the file outlive the submission, which we wait for.
        unsafe { ring.submission().push(&sqe) }
            .map_err(|e| broken(format!("io_uring submission queue: {e}")))?;
        ring.submit_and_wait(1)?;
        let res = ring
            .completion()
            .next()
            .map(|c| c.result())
            .ok_or_else(|| broken("io_uring: no completion"))?;
        if res <= 0 {
            return Err(broken(format!(
                "write_fixed returned {res} after {done} bytes"
            )));
        }
        done += res as usize;
    }
    if let (Some(child), Some(side)) = (child, side) {
        side.signal()?;
        match child.exit_code()? {
            SAME => {}
            code => return Err(broken(child_failure(code))),
        }
    }
    let mut written = vec![0u8; span];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut written, 0)?;
    let sampled = if span < region.size {
        format!(
            " (compared the first {} MiB of {} MiB: a sampling choice, the scratch tmpfs holds \
             64 MiB)",
            span >> 20,
            region.size >> 20
        )
    } else {
        String::new()
    };
    Ok(if all_equal(&written, NEW) {
        Observation::saw(
            "reliable",
            format!("the fixed buffer wrote out what the process stored{sampled}"),
        )
    } else {
        Observation::saw(
            "unreliable",
            format!("the fixed buffer wrote out a page the process no longer maps{sampled}"),
        )
    })
}

/// `cow.file_basic`: cow.c's non-anonymous "Basic COW" (`test_cow`), across fork(): the
/// parent writes its private mapping; the child's private mapping and both processes' other
/// mapping must keep the old (zero) bytes.
pub fn file_basic(ctx: &Ctx) -> Result<Observation, Stop> {
    let variant = backings::lookup(&backings::FILE, ctx)?;
    let r = backings::prepare_file(ctx, variant.backing)?;
    let hs = Handshake::new()?;
    // Neither view has anonymous pages at fork(): the child faults both in from the file.
    let views = [
        (&r.private, "the private mapping"),
        (&r.other, r.other.what.as_str()),
    ];
    let (child, side) = spawn(hs, |side| {
        for (view, name) in views {
            if let Err(code) = copied(view, 0, &side, Some(name), Entries::Faulted) {
                return code;
            }
        }
        if side.signal().is_err() || side.wait().is_err() {
            return HANDSHAKE_FAILED;
        }
        if r.private.all(0) && r.other.all(0) {
            SAME
        } else {
            CHANGED
        }
    })?;
    if let Heard::Told(what) = side.hear()? {
        // The parent's page table of the view the child named.
        let (view, _) = views
            .iter()
            .find(|(_, name)| what.starts_with(name))
            .unwrap_or(&views[0]);
        return not_copied(child, view, what);
    }
    r.private.fill(NEW);
    side.signal()?;
    let code = child.exit_code()?;
    if !r.private.all(NEW) {
        return Err(broken(
            "the parent's write to its private mapping did not stick",
        ));
    }
    let what = format!("{} ({} bytes)", r.private.what, r.private.size);
    match (code, r.other.all(0)) {
        (SAME, true) => Ok(Observation::saw(
            "isolated",
            format!(
                "{what}: after the parent wrote its private mapping, {} and the child's views \
                 kept the old bytes",
                r.other.what
            ),
        )),
        (SAME, false) => Ok(Observation::saw(
            "leak",
            format!("{what}: {} showed the private write", r.other.what),
        )),
        (CHANGED, _) => Ok(Observation::saw(
            "leak",
            format!("{what}: the child's views showed the parent's private write"),
        )),
        (code, _) => Err(broken(child_failure(code))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Mapping;

    /// A base page whose child gets what a kernel that loses the copy at fork() gives it: with
    /// MADV_WIPEONFORK (4.14) the child's page table has no entry there, and its first read
    /// maps a zeroed page.
    fn wiped_on_fork() -> Region {
        let page = sys::page_size();
        let m = Mapping::anon(page, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        m.advise(libc::MADV_WIPEONFORK).unwrap();
        let mem = m.as_ptr();
        let r = Region::new(vec![m], mem, page, "base page wiped on fork".into());
        r.fill(FILL);
        r
    }

    #[test]
    fn a_child_without_its_copy_is_an_observation_in_every_scenario() {
        type Run = fn(&Region) -> Result<Observation, Stop>;
        let runs: [(&str, Run); 5] = [
            ("fork_basic", |r| cow_in_parent(r, false, false)),
            ("vmsplice_unmap_child", |r| cow_in_parent(r, true, false)),
            ("vmsplice_unmap_child_mprotect", |r| {
                cow_in_parent(r, true, true)
            }),
            ("vmsplice_before_fork_unmap_parent", |r| {
                vmsplice_in_parent(r, true)
            }),
            ("vmsplice_unmap_parent", |r| vmsplice_in_parent(r, false)),
        ];
        for (name, run) in runs {
            let seen = run(&wiped_on_fork()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(seen.value, copy::NOT_COPIED, "{name}: {}", seen.detail);
            for part in [
                "the child read 4096 of 4096 bytes other than the 0x01",
                "(0x00 x 4096)",
                "the child's page table had 0 of 1 pages present",
                "fork() did not copy the mapping",
                "the parent's page table has 1 of 1 pages present",
            ] {
                let page = sys::page_size().to_string();
                let part = part.replace("4096", &page);
                assert!(
                    seen.detail.contains(&part),
                    "{name}: {part} in {}",
                    seen.detail
                );
            }
        }
    }

    #[test]
    fn a_child_with_its_copy_goes_on_to_the_scenario() {
        let page = sys::page_size();
        let m = Mapping::anon(page, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        let mem = m.as_ptr();
        let r = Region::new(vec![m], mem, page, "base page".into());
        r.fill(FILL);
        // Base pages have been isolated since 5.9 (09854ba94c6a), which this host postdates.
        assert_eq!(cow_in_parent(&r, true, false).unwrap().value, "isolated");
    }
}
