//! copy_file_range(2): within a filesystem (whole file, a range, past end of file, an
//! overlapping range of one file), across the guest's filesystems, from /proc and /sys, into an
//! O_APPEND file, and whether the copy shares extents (FIEMAP), observed rather than guessed.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::LazyLock;

use nix::errno::Errno;

use super::{common, skip, Check, Ctx, Expect, Measure, Observation, OrSkip, Pred, Rule, Stop};
use crate::sys;

/// Small, block-multiple fixtures: enough for a few extents, cheap under TCG.
const LEN: usize = 64 << 10;

/// The four filesystems a guest can hold; `cfr.cross_fs` runs over every ordered pair, and
/// between the two disks of one disk filesystem.
const CROSS_PAIRS: &[&str] = &[
    "ext4_to_xfs",
    "ext4_to_btrfs",
    "ext4_to_tmpfs",
    "xfs_to_ext4",
    "xfs_to_btrfs",
    "xfs_to_tmpfs",
    "btrfs_to_ext4",
    "btrfs_to_xfs",
    "btrfs_to_tmpfs",
    "tmpfs_to_ext4",
    "tmpfs_to_xfs",
    "tmpfs_to_btrfs",
    // Two superblocks of one filesystem type: the 512- and 4096-byte disks of --geometry all.
    "ext4_to_ext4",
    "xfs_to_xfs",
    "btrfs_to_btrfs",
];

/// What a copy between two superblocks (neither with a shared ->copy_file_range) does:
/// `old` where the kernel falls back to a splice copy, `new` where it refuses with EXDEV.
/// 5.3 allowed cross-device copies (5dae222a5ff0 "vfs: allow copy_file_range to copy across
/// devices"); 5.19 restricted them again to filesystems that share a ->copy_file_range
/// (868f9f2f8e00 "vfs: fix copy_file_range() regression in cross-fs copies"), and that change
/// went to the 5.15.y and 5.10.y stable lines (bugzilla 216800): from 5.15.53 (ChangeLog-5.15.53)
/// and 5.10.160 (ChangeLog-5.10.160, listed so in Debian's linux 5.10.162-1 changelog) those
/// behave as 5.19, their earlier point releases as 5.3 to 5.18 did (the real point release of a
/// Debian kernel is read from /proc/version). Before 5.3 copies never crossed superblocks
/// (EXDEV).
macro_rules! cross_sb {
    ($old:expr, $new:expr) => {
        Expect::since(
            5,
            19,
            &Expect::since(
                5,
                16,
                &Expect::since_release(
                    5,
                    15,
                    53,
                    &Expect::since(
                        5,
                        11,
                        &Expect::since_release(
                            5,
                            10,
                            160,
                            &Expect::since(5, 3, &$new, &$old),
                            &$new,
                        ),
                        &$old,
                    ),
                    &$new,
                ),
                &$old,
            ),
            &$new,
        )
    };
}

const EVIDENCE_CROSS: &str = "copy_file_range(2) ERRORS: EXDEV, the files are not on the same \
    filesystem (before 5.3 and again since 5.19). 5dae222a5ff0 \"vfs: allow copy_file_range to \
    copy across devices\" (5.3) let any pair copy through a splice fallback; 868f9f2f8e00 \"vfs: \
    fix copy_file_range() regression in cross-fs copies\" (5.19) returns EXDEV unless both files \
    share one ->copy_file_range (nfs, cifs), and was backported to stable 5.15.53 and 5.10.160 \
    (ChangeLog-5.15.53, ChangeLog-5.10.160; bugzilla.kernel.org 216800): EXDEV from 5.10.160 \
    and 5.15.53, a splice copy (`ok`) on 5.3 to 5.10.159, 5.11 to 5.15.52 and 5.16-5.18";

const CHECKS: &[Check] = &[
    Check::fs(
        "cfr.same_fs",
        "copy_file_range within the filesystem: 64 KiB whole file with offset pointers, then a \
         12 KiB range at unaligned offsets from the file position, data verified",
        Rule::new(
            Expect::Always(Pred::Fields(&[
                ("whole", Pred::Is("ok")),
                ("range", Pred::Is("ok")),
            ])),
            "copy_file_range(2): copies up to len bytes from fd_in to fd_out, at *off_in and \
             *off_out or at the file positions when the pointers are NULL; any filesystem \
             copies within itself (a splice fallback where it has no ->copy_file_range or \
             ->remap_file_range)",
        ),
        same_fs,
    ),
    Check::fs(
        "cfr.past_eof",
        "copy_file_range asking for twice a 64 KiB file (`to_eof`: what it copied), then at its \
         end (`at_eof`)",
        Rule::new(
            Expect::Always(Pred::Fields(&[
                ("to_eof", Pred::Is("65536")),
                ("at_eof", Pred::Is("0")),
            ])),
            "copy_file_range(2) RETURN VALUE: the number of bytes copied, which may be less \
             than requested; if the file offset of fd_in is at or past the end of file, no \
             bytes are copied and it returns zero",
        ),
        past_eof,
    ),
    Check::fs(
        "cfr.overlap",
        "copy_file_range within one file, source and target ranges overlapping",
        Rule::new(
            Expect::is("EINVAL"),
            "copy_file_range(2) ERRORS: EINVAL, fd_in and fd_out refer to the same file and \
             the source and target ranges overlap (96e6e8f4a68d \"vfs: add missing checks to \
             copy_file_range\", 5.3)",
        ),
        overlap,
    ),
    Check::fs(
        "cfr.append_out",
        "copy_file_range into a file opened O_APPEND",
        Rule::new(
            Expect::is("EBADF"),
            "copy_file_range(2) ERRORS: EBADF, fd_out is opened with the O_APPEND flag \
             (generic_file_rw_checks, 96e6e8f4a68d \"vfs: add missing checks to \
             copy_file_range\", 5.3)",
        ),
        append_out,
    ),
    Check::fs(
        "cfr.dio_ends",
        "copy_file_range from and to files opened O_DIRECT, 64 KiB, data verified",
        Rule::new(
            Expect::is("ok"),
            "copy_file_range(2) takes any regular files; O_DIRECT changes only how the \
             fallback reads and writes (do_splice_direct through ->read_iter/->write_iter with \
             page-aligned pipe buffers), or nothing when the filesystem clones. Where O_DIRECT \
             does not open (tmpfs before 6.6) the check is a skip and dio.open records it",
        ),
        dio_ends,
    )
    .per_block_size(),
    Check::fs(
        "cfr.procfs_source",
        "copy_file_range from /proc/version and from /sys/kernel/uevent_seqnum into a file on \
         the filesystem",
        Rule::new(
            cross_sb!(
                Expect::is("proc=empty sys=empty"),
                Expect::is("proc=EXDEV sys=EXDEV")
            ),
            "pseudo files report size 0, and while a cross-filesystem copy fell back to a \
             splice (5.3 to 5.18) generic_copy_file_checks cut the count to that size: 0 bytes \
             and no error, a silent empty copy (`empty`, a hazard: Go's io.Copy wrote empty files, \
             golang/go#44272 on 5.7.17; lwn.net/Articles/846403). 868f9f2f8e00 \"vfs: fix \
             copy_file_range() regression in cross-fs copies\" (5.19, stable 5.15.53 and \
             5.10.160, bugzilla.kernel.org 216800) refuses with EXDEV, on which callers fall \
             back to read/write",
        )
        .hazards(&["proc=empty sys=empty"]),
        procfs_source,
    ),
    Check::fs(
        "cfr.shares_extents",
        "after copy_file_range of a 64 KiB file, FIEMAP's FIEMAP_EXTENT_SHARED on the copy's \
         extents: `shared`, `copied`, or the errno of FIEMAP",
        Rule::new(
            Expect::ByFs {
                cases: &[
                    ("xfs", Expect::is("shared")),
                    ("btrfs", Expect::is("shared")),
                    ("ext4", Expect::is("copied")),
                    ("tmpfs", Expect::is("EOPNOTSUPP")),
                    ("overlay", Expect::is("copied")),
                    ("ext4-dax", Expect::is("copied")),
                    ("xfs-dax", Expect::is("copied")),
                ],
                otherwise: &Expect::Measure,
            },
            "vfs_copy_file_range tries ->remap_file_range first on one superblock (a reflink: \
             a76b5b04375f \"fs: try to clone files first in vfs_copy_file_range\", 4.10), so on xfs (reflink=1, \
             mkfs.xfs's default since xfsprogs 5.1) and btrfs the copy shares the source's \
             blocks and FIEMAP flags them FIEMAP_EXTENT_SHARED (fiemap.txt); ext4 has no \
             ->remap_file_range and copies; tmpfs has no ->fiemap, so FS_IOC_FIEMAP is \
             EOPNOTSUPP (ioctl_fiemap). overlay copies between its real files \
             (8ede205541ff \"ovl: add reflink/copyfile/dedup support\", 4.19), ext4 ones: \
             `copied`; xfs-dax is made without reflink (mkfs.xfs -m reflink=0: until 6.0 DAX \
             refused it), so it copies too. Other filesystems: a measurement",
        ),
        shares_extents,
    ),
];

const CROSS_RULE: Rule = Rule::new(
    cross_sb!(Expect::is("ok"), Expect::is("EXDEV")),
    EVIDENCE_CROSS,
);

/// The family: the fs-scope checks above, then `cfr.cross_fs[<from>_to_<to>]` once per ordered
/// pair of the guest's filesystems (kernel scope: it needs two mounted targets, not one; a pair
/// this guest lacks is a skip that says so).
pub fn checks() -> &'static [Check] {
    static ALL: LazyLock<Vec<Check>> = LazyLock::new(|| {
        let cross = CROSS_PAIRS.iter().map(|pair| {
            Check::kernel(
                "cfr.cross_fs",
                "copy_file_range of a 64 KiB file from one of the guest's filesystems to \
                 another (<from>_to_<to>; ext4_to_ext4 and the like between the 512- and \
                 4096-byte disks), data verified",
                CROSS_RULE,
                cross_fs,
            )
            .variant(pair)
        });
        CHECKS.iter().copied().chain(cross).collect()
    });
    &ALL
}

fn fixture(ctx: &Ctx, name: &str) -> Result<(File, Vec<u8>), Stop> {
    common::source(ctx, name, LEN, 0xcf4)
}

fn same_fs(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = fixture(ctx, "cfr.same_fs.in")?;
    let out = ctx.dir.join("cfr.same_fs.out");
    let dst = common::create(&out)?;
    let whole = common::moved(
        sys::copy_all(&src, 0, &dst, 0, LEN),
        &std::fs::read(&out)?,
        &data,
    );
    // A range from the file positions (NULL offset pointers), at offsets no block aligns.
    let (off_in, off_out, len) = (1000_i64, 333_i64, 12 << 10);
    let dst2 = common::create(&ctx.dir.join("cfr.same_fs.range"))?;
    nix::unistd::lseek(&src, off_in, nix::unistd::Whence::SeekSet)?;
    nix::unistd::lseek(&dst2, off_out, nix::unistd::Whence::SeekSet)?;
    let mut done = 0;
    let res = loop {
        if done == len {
            break Ok(done);
        }
        match sys::copy_range(&src, None, &dst2, None, len - done) {
            Ok(0) => break Ok(done),
            Ok(n) => done += n,
            Err(e) => break Err((done, e)),
        }
    };
    let got = sys::read_at(&dst2, off_out as u64, done)?;
    let range = common::moved(res, &got, &data[off_in as usize..off_in as usize + len]);
    Ok(Observation::saw(
        format!("whole={} range={}", whole.value, range.value),
        format!("whole: {}; range: {}", whole.detail, range.detail),
    ))
}

fn past_eof(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, _) = fixture(ctx, "cfr.past_eof.in")?;
    let dst = common::create(&ctx.dir.join("cfr.past_eof.out"))?;
    let to_eof = sys::copy_range(&src, Some(0), &dst, Some(0), 2 * LEN);
    let at_eof = sys::copy_range(&src, Some(LEN as i64), &dst, Some(0), LEN);
    // The bytes each call copied are measures; an errno is only words.
    let measures = [("to_eof", to_eof), ("at_eof", at_eof)]
        .into_iter()
        .filter_map(|(name, r)| r.ok().map(|n| Measure::new(name, n as f64, "bytes")))
        .collect();
    let name = |r: Result<usize, Errno>| r.map_or_else(sys::errno_name, |n| n.to_string());
    let (to_eof, at_eof) = (name(to_eof), name(at_eof));
    Ok(Observation::saw(
        format!("to_eof={to_eof} at_eof={at_eof}"),
        format!(
            "asked {} bytes of a {LEN}-byte file, then {LEN} at its end",
            2 * LEN
        ),
    )
    .measured(measures))
}

fn overlap(ctx: &Ctx) -> Result<Observation, Stop> {
    let (f, _) = common::fixture(ctx, "cfr.overlap", LEN, 0xcf5)?;
    Ok(
        match sys::copy_range(&f, Some(0), &f, Some(4096), 16 << 10) {
            Ok(n) => Observation::saw("ok", format!("copied {n} bytes onto an overlapping range")),
            Err(e) => common::errno(e, "0..16K onto 4K..20K of one file"),
        },
    )
}

fn append_out(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, _) = fixture(ctx, "cfr.append_out.in")?;
    let path = ctx.dir.join("cfr.append_out.out");
    std::fs::write(&path, b"head")?;
    let dst = OpenOptions::new().append(true).open(&path)?;
    Ok(match sys::copy_range(&src, Some(0), &dst, None, 4096) {
        Ok(n) => Observation::saw("ok", format!("copied {n} bytes into an O_APPEND file")),
        Err(e) => common::errno(e, "into an O_APPEND file"),
    })
}

fn dio_ends(ctx: &Ctx) -> Result<Observation, Stop> {
    let (_, data) = fixture(ctx, "cfr.dio_ends.in")?;
    let src = common::direct_or_skip(&ctx.dir.join("cfr.dio_ends.in"), false, 0)?;
    let out = ctx.dir.join("cfr.dio_ends.out");
    let _ = std::fs::remove_file(&out);
    let dst = common::direct_or_skip(&out, true, 0)?;
    let res = sys::copy_all(&src, 0, &dst, 0, LEN);
    drop(dst);
    Ok(common::moved(res, &std::fs::read(&out)?, &data))
}

/// `proc=… sys=…`: what copy_file_range did from each pseudo file: `ok` (bytes arrived),
/// `empty` (0 returned, nothing copied), or the errno.
fn procfs_source(ctx: &Ctx) -> Result<Observation, Stop> {
    let one = |path: &str, name: &str| -> Result<String, Stop> {
        let Ok(src) = File::open(path) else {
            return Ok("missing".into());
        };
        let dst = common::create(&ctx.dir.join(name))?;
        Ok(match sys::copy_range(&src, Some(0), &dst, Some(0), 4096) {
            Ok(0) => "empty".into(),
            Ok(_) => "ok".into(),
            Err(e) => sys::errno_name(e),
        })
    };
    let proc = one("/proc/version", "cfr.procfs_source.proc")?;
    let sys_ = one("/sys/kernel/uevent_seqnum", "cfr.procfs_source.sys")?;
    Ok(Observation::saw(
        format!("proc={proc} sys={sys_}"),
        "4096 bytes asked from each; `empty` is a return of 0 with nothing copied",
    ))
}

fn shares_extents(ctx: &Ctx) -> Result<Observation, Stop> {
    let (src, data) = fixture(ctx, "cfr.shares_extents.in")?;
    let out = ctx.dir.join("cfr.shares_extents.out");
    let dst = common::create(&out)?;
    let res = sys::copy_all(&src, 0, &dst, 0, LEN);
    let copy = common::moved(res, &std::fs::read(&out)?, &data);
    if copy.value != "ok" {
        return Err(skip(format!(
            "the copy itself did not succeed ({}: {}); cfr.same_fs records it",
            copy.value, copy.detail
        )));
    }
    let extents = match sys::fiemap(&dst) {
        Ok(x) => x,
        Err(e) => return Ok(common::errno(e, "FS_IOC_FIEMAP on the copy")),
    };
    let shared = extents
        .iter()
        .filter(|e| e.flags & sys::FIEMAP_EXTENT_SHARED != 0)
        .map(|e| e.length)
        .sum::<u64>();
    let total = extents.iter().map(|e| e.length).sum::<u64>();
    let detail = format!(
        "{} extents, {total} bytes mapped, {shared} of them shared (FIEMAP_EXTENT_SHARED)",
        extents.len()
    );
    Ok(match (shared, total) {
        (_, 0) => Observation::saw("unmapped", detail),
        (s, t) if s >= t => Observation::saw("shared", detail),
        (0, _) => Observation::saw("copied", detail),
        _ => Observation::saw("partly_shared", detail),
    })
}

/// The `nth` mounted target of filesystem `fs`, in the order this guest listed them.
fn mount_of<'a>(ctx: &'a Ctx, fs: &str, nth: usize) -> Result<&'a Path, Stop> {
    let mounted = || {
        ctx.mounts
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
    };
    ctx.mounts
        .iter()
        .filter(|(f, _)| f == fs)
        .nth(nth)
        .map(|(_, d)| d.as_path())
        .ok_or_else(|| match nth {
            0 => skip(format!(
                "no {fs} target mounted here (mounted: {:?})",
                mounted()
            )),
            _ => skip(format!(
                "one {fs} target mounted here, a second superblock needs both disk geometries \
                 (mounted: {:?})",
                mounted()
            )),
        })
}

fn cross_fs(ctx: &Ctx) -> Result<Observation, Stop> {
    let pair = ctx
        .variant
        .or_skip("cfr.cross_fs needs its pair as the variant")?;
    let (from, to) = pair
        .split_once("_to_")
        .or_skip("a variant of the form <from>_to_<to>")?;
    let from_dir = mount_of(ctx, from, 0)?;
    // The same filesystem type on both ends means its other disk: another superblock.
    let to_dir = mount_of(ctx, to, usize::from(from == to))?;
    let data = sys::pattern(LEN, 0xc2055);
    let src_path = from_dir.join(format!("cfr.cross_fs.{pair}.in"));
    sys::write_file_synced(&src_path, &data)?;
    let src = File::open(&src_path)?;
    let out = to_dir.join(format!("cfr.cross_fs.{pair}.out"));
    let dst = common::create(&out)?;
    let res = sys::copy_all(&src, 0, &dst, 0, LEN);
    let got = std::fs::read(&out)?;
    let _ = std::fs::remove_file(&src_path);
    let _ = std::fs::remove_file(&out);
    Ok(common::moved(res, &got, &data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kver::KernelVersion;

    /// The stable point releases that carry 868f9f2f8e00 (5.10.160, 5.15.53) behave as 5.19;
    /// those before them, and the releases between, as 5.3 to 5.18 did.
    #[test]
    fn cross_superblock_copies_follow_mainline_and_the_stable_backports() {
        let at = |(minor, patch)| {
            CROSS_RULE
                .expect
                .resolve(KernelVersion::new(5, minor, patch), None)
                .unwrap()
                .describe(crate::checks::rule::Geom::new(None, 4096))
        };
        let seen: Vec<_> = [
            (2, 0),
            (3, 0),
            (9, 0),
            (10, 0),
            (10, 159),
            (10, 160),
            (10, 262),
            (11, 0),
            (14, 0),
            (15, 52),
            (15, 53),
            (16, 0),
            (18, 0),
            (19, 0),
        ]
        .map(at)
        .into();
        assert_eq!(
            seen,
            [
                "EXDEV", "ok", "ok", "ok", "ok", "EXDEV", "EXDEV", "ok", "ok", "ok", "EXDEV", "ok",
                "ok", "EXDEV"
            ]
        );
        let six = CROSS_RULE
            .expect
            .resolve(KernelVersion::new(6, 1, 0), None)
            .unwrap();
        assert_eq!(
            six.describe(crate::checks::rule::Geom::new(None, 4096)),
            "EXDEV"
        );
    }
}
