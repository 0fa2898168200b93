//! Reflinks: FICLONE, FICLONERANGE and FIDEDUPERANGE, where the filesystem shares blocks
//! between files instead of copying them; block alignment, clones across two mounts of one
//! filesystem, dedupe of identical and different ranges, and copy-on-write isolation of a clone
//! (written through write() and through a shared mapping).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{common, skip, Check, Ctx, Expect, Observation, Pred, Rule, Stop};
use crate::sys;

/// Small, block-multiple fixtures: a few extents, cheap under TCG.
const LEN: usize = 64 << 10;
/// Every disk target's filesystem block size (mkfs.ext4 -b 4096, mkfs.xfs's and mkfs.btrfs's
/// defaults): the alignment FICLONERANGE needs.
const BLOCK: u64 = 4096;

/// ext4 and tmpfs have no ->remap_file_range: every reflink ioctl is refused.
const UNSUPPORTED: &str = "EOPNOTSUPP";

const EVIDENCE_CLONE: &str = "ioctl_ficlone(2): the two files share storage blocks; ERRORS: \
    EOPNOTSUPP, the filesystem does not support reflinking. xfs (reflink=1, mkfs.xfs's default \
    since xfsprogs 5.1) and btrfs implement ->remap_file_range; ext4 and tmpfs do not, and \
    vfs_clone_file_range returns EOPNOTSUPP for them";

const CHECKS: &[Check] = &[
    Check::fs(
        "reflink.clone",
        "FICLONE of a 64 KiB file into an empty one, data verified",
        Rule::new(
            Expect::ByFs {
                cases: &[("xfs", Expect::is("ok")), ("btrfs", Expect::is("ok"))],
                otherwise: &Expect::is(UNSUPPORTED),
            },
            EVIDENCE_CLONE,
        ),
        clone,
    ),
    Check::fs(
        "reflink.clone_range",
        "FICLONERANGE of 8 KiB at block-aligned offsets (`aligned`, data and the rest of the \
         target verified), then at a 512-byte source offset (`unaligned`)",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    (
                        "xfs",
                        Expect::Always(Pred::Fields(&[
                            ("aligned", Pred::Is("ok")),
                            ("unaligned", Pred::Is("EINVAL")),
                        ])),
                    ),
                    (
                        "btrfs",
                        Expect::Always(Pred::Fields(&[
                            ("aligned", Pred::Is("ok")),
                            ("unaligned", Pred::Is("EINVAL")),
                        ])),
                    ),
                ],
                otherwise: &Expect::Always(Pred::Fields(&[
                    ("aligned", Pred::Is(UNSUPPORTED)),
                    ("unaligned", Pred::Is(UNSUPPORTED)),
                ])),
            },
            "ioctl_ficlonerange(2) ERRORS: EINVAL, the filesystem does not support cloning \
             unaligned ranges (generic_remap_checks: offsets must be multiples of the \
             filesystem block size, the length too unless it reaches end of file); \
             EOPNOTSUPP where the filesystem cannot reflink at all (ext4, tmpfs: no \
             ->remap_file_range), checked before any alignment",
        ),
        clone_range,
    ),
    Check::fs(
        "reflink.cross_mount",
        "FICLONE from a file opened through a bind mount of the filesystem to a file opened \
         through its own mount point",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    (
                        "xfs",
                        Expect::since(5, 18, &Expect::is("EXDEV"), &Expect::is("ok")),
                    ),
                    (
                        "btrfs",
                        Expect::since(5, 18, &Expect::is("EXDEV"), &Expect::is("ok")),
                    ),
                ],
                otherwise: &Expect::since(5, 18, &Expect::is("EXDEV"), &Expect::is(UNSUPPORTED)),
            },
            "ioctl_ficlone(2) ERRORS: EXDEV, src_fd and dest_fd are not on the same mounted \
             filesystem. Until 5.17 ioctl_file_clone compared the vfsmounts and refused two \
             mounts of one filesystem with EXDEV before asking the filesystem; 9f5710bbfd30 \
             \"fs: allow cross-vfsmount reflink/dedupe\" (5.18) compares superblocks instead (with \
             ae460f058e9f \"btrfs: remove the cross file system checks from remap\"), so \
             xfs and btrfs clone across mounts and ext4 and tmpfs say EOPNOTSUPP as on one \
             mount. Guests only: the probe bind-mounts the target",
        ),
        cross_mount,
    ),
    Check::fs(
        "reflink.dedupe",
        "FIDEDUPERANGE of 64 KiB against an identical file (`identical`) and against one that \
         differs in its last block (`different`): the per-range status, or the ioctl's errno",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("xfs", Expect::is("identical=same different=differs")),
                    ("btrfs", Expect::is("identical=same different=differs")),
                    ("overlay", Expect::is("identical=EINVAL different=EINVAL")),
                    (
                        "xfs-dax",
                        Expect::is("identical=EOPNOTSUPP different=EOPNOTSUPP"),
                    ),
                ],
                otherwise: &Expect::is(UNSUPPORTED),
            },
            "ioctl_fideduperange(2): status FILE_DEDUPE_RANGE_SAME (0) with bytes_deduped \
             set when the ranges were identical and are now shared, FILE_DEDUPE_RANGE_DIFFERS \
             when they differ (nothing is shared); ERRORS: EOPNOTSUPP, the filesystem does not \
             support deduplication (ext4, tmpfs: no ->remap_file_range, vfs_dedupe_file_range). \
             A filesystem that has ->remap_file_range passes that check and each range gets \
             its own status: overlay hands the ranges to its ext4 files, whose missing \
             ->remap_file_range vfs_dedupe_file_range_one answers with EINVAL (8ede205541ff \
             \"ovl: add reflink/copyfile/dedup support\"); xfs-dax, made without reflink, \
             answers EOPNOTSUPP from xfs_file_remap_range",
        ),
        dedupe,
    ),
    Check::fs(
        "reflink.cow_isolation",
        "after FICLONE, 4 KiB written into the clone with pwrite (`write`) and a byte stored \
         through a MAP_SHARED mapping of the clone, msync'd (`mmap`): is the original unchanged",
        Rule::new(
            Expect::Always(Pred::Fields(&[
                ("write", Pred::Is("isolated")),
                ("mmap", Pred::Is("isolated")),
            ])),
            "ioctl_ficlone(2): if a file write should occur to a shared region, the filesystem \
             must ensure that the changes remain private to the file being written (copy on \
             write), whether the write comes from write(2) or a shared mapping's writeback \
             (xfs_reflink_allocate_cow, btrfs COW). Where FICLONE is refused (ext4, tmpfs) the \
             check is a skip and reflink.clone records it",
        ),
        cow_isolation,
    ),
];

/// The family's checks.
pub fn checks() -> &'static [Check] {
    CHECKS
}

fn clone(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = common::fixture(ctx, "reflink.clone.in", LEN, 0xc10)?;
    let out = ctx.dir.join("reflink.clone.out");
    let dst = common::create(&out)?;
    Ok(match sys::ficlone(&dst, &src) {
        Ok(()) => common::moved(Ok(data.len()), &std::fs::read(&out)?, &data),
        Err(e) => common::errno(e, "FICLONE into an empty file"),
    })
}

fn clone_range(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = common::fixture(ctx, "reflink.clone_range.in", LEN, 0xc11)?;
    let (dst, before) = common::fixture(ctx, "reflink.clone_range.out", LEN, 0xc12)?;
    let (src_off, dst_off, len) = (BLOCK, 2 * BLOCK, 2 * BLOCK);
    let (aligned, detail) = match sys::ficlonerange(&dst, &src, src_off, len, dst_off) {
        Err(e) => (sys::errno_name(e), format!("aligned: {e}")),
        Ok(()) => {
            let got = sys::read_all(File::open(ctx.dir.join("reflink.clone_range.out"))?)?;
            let mut want = before.clone();
            let (s, d, n) = (src_off as usize, dst_off as usize, len as usize);
            want[d..d + n].copy_from_slice(&data[s..s + n]);
            match sys::first_difference(&got, &want) {
                None => (
                    "ok".to_string(),
                    format!("{n} bytes cloned, target verified"),
                ),
                Some(at) => (
                    "corrupt".to_string(),
                    format!("target differs from the expected bytes at {at}"),
                ),
            }
        }
    };
    let unaligned = match sys::ficlonerange(&dst, &src, 512, len, dst_off) {
        Ok(()) => "ok".to_string(),
        Err(e) => sys::errno_name(e),
    };
    Ok(Observation::saw(
        format!("aligned={aligned} unaligned={unaligned}"),
        format!("{detail}; unaligned: source offset 512, length {len}"),
    ))
}

/// Bind-mounts `dir` on a fresh directory under /tmp, and unmounts it when dropped.
struct BindMount(PathBuf);

impl BindMount {
    fn new(dir: &Path, name: &str) -> Result<Self, Stop> {
        let at = PathBuf::from(format!("/tmp/zcmatrix-bind-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&at)?;
        nix::mount::mount(
            Some(dir),
            &at,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| skip(format!("bind mount of {} refused: {e}", dir.display())))?;
        Ok(BindMount(at))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn cross_mount(ctx: &Ctx) -> Result<Observation, Stop> {
    if !ctx.owns_machine {
        return Err(skip(
            "needs a bind mount of the target, which changes the mount table: guest only",
        ));
    }
    let (_, data) = common::fixture(ctx, "reflink.cross_mount.in", LEN, 0xc13)?;
    let name = format!(
        "{}{}",
        ctx.fs.as_deref().unwrap_or("fs"),
        ctx.logical_block_size
            .map(|b| format!("-{b}"))
            .unwrap_or_default()
    );
    let bind = BindMount::new(&ctx.dir, &name)?;
    let src = File::open(bind.0.join("reflink.cross_mount.in"))?;
    let out = ctx.dir.join("reflink.cross_mount.out");
    let dst = common::create(&out)?;
    let obs = match sys::ficlone(&dst, &src) {
        Ok(()) => common::moved(Ok(data.len()), &std::fs::read(&out)?, &data),
        Err(e) => common::errno(e, "FICLONE from the bind mount to the target's own mount"),
    };
    drop(src);
    drop(bind);
    Ok(obs)
}

fn dedupe(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = common::fixture(ctx, "reflink.dedupe.in", LEN, 0xc14)?;
    let same = sys::write_file_synced(&ctx.dir.join("reflink.dedupe.same"), &data)?;
    let mut other = data.clone();
    other[LEN - 1] ^= 0xff;
    let differs = sys::write_file_synced(&ctx.dir.join("reflink.dedupe.differs"), &other)?;
    let status = |dst: &File| -> Result<String, nix::errno::Errno> {
        Ok(match sys::fidedupe(&src, dst, 0, LEN as u64)? {
            Ok(n) if n == LEN as u64 => "same".into(),
            Ok(n) => format!("same_short_{n}"),
            Err(sys::FILE_DEDUPE_RANGE_DIFFERS) => "differs".into(),
            Err(s) if s < 0 => sys::errno_name(nix::errno::Errno::from_raw(-s)),
            Err(s) => format!("status_{s}"),
        })
    };
    let identical = match status(&same) {
        Ok(s) => s,
        Err(e) => return Ok(common::errno(e, "FIDEDUPERANGE against an identical file")),
    };
    let different = match status(&differs) {
        Ok(s) => s,
        Err(e) => return Ok(common::errno(e, "FIDEDUPERANGE against a different file")),
    };
    // After a dedupe the identical copy must still read the same bytes.
    let still = sys::read_all(File::open(ctx.dir.join("reflink.dedupe.same"))?)?;
    if still != data {
        return Ok(Observation::saw(
            "corrupt",
            "the identical file reads other bytes after FIDEDUPERANGE",
        ));
    }
    Ok(Observation::saw(
        format!("identical={identical} different={different}"),
        format!("{LEN} bytes at offset 0; the other file differs in its last byte"),
    ))
}

fn cow_isolation(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = common::fixture(ctx, "reflink.cow_isolation.in", LEN, 0xc15)?;
    let out = ctx.dir.join("reflink.cow_isolation.out");
    let dst = common::create(&out)?;
    sys::ficlone(&dst, &src).map_err(|e| {
        skip(format!(
            "FICLONE refused with {} (reflink.clone records this)",
            sys::errno_name(e)
        ))
    })?;
    let original = |f: &File| -> std::io::Result<bool> { Ok(sys::read_at(f, 0, LEN)? == data) };
    // write(): 4 KiB of new bytes into the clone's first block, synced.
    let fresh = sys::pattern(BLOCK as usize, 0xfe11);
    dst.write_all_at(&fresh, 0)?;
    dst.sync_all()?;
    let clone_has_it = sys::read_at(&dst, 0, fresh.len())? == fresh;
    let write = match (original(&src)?, clone_has_it) {
        (true, true) => "isolated",
        (false, _) => "leak",
        (true, false) => "lost",
    };
    // mmap: a byte stored through a shared mapping of the clone, in a block write() left shared.
    let at = 5 * BLOCK as usize + 7;
    let map = sys::Mapping::shared(&dst, LEN)?;
    let before = map.read(at);
    map.write(at, !data[at]);
    map.sync(libc::MS_SYNC)?;
    drop(map);
    let mapped = sys::read_at(&dst, at as u64, 1)?[0] == !data[at];
    let mmap = match (original(&src)?, mapped) {
        (true, true) => "isolated",
        (false, _) => "leak",
        (true, false) => "lost",
    };
    Ok(Observation::saw(
        format!("write={write} mmap={mmap}"),
        format!(
            "the clone's mapping read {} before the store ({} expected)",
            before, data[at]
        ),
    ))
}
