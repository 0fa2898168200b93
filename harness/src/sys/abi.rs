//! The kernel ABI the harness hands the kernel: ioctl requests, socket options, flags and the
//! layouts of the structs passed by pointer.
//!
//! A number comes from the target's own definitions where the `libc` crate has them (its
//! `_IOW`/`_IOWR` encode direction and size per architecture: powerpc puts the write bit where
//! x86 and arm64 put the read bit, so a hand-written x86 FICLONE is ENOTTY on ppc64le). What
//! `libc` lacks is declared here from include/uapi, ioctl requests through `libc`'s encoders.
//! [`table`] lists every one of them with the C expression naming it, and how its value follows
//! from the architecture, so `harness/tests/abi.rs` compares them with what each guest
//! architecture's C compiler and kernel headers say.

use std::mem::{offset_of, size_of};

/// Where an architecture's ioctl request numbers put the direction and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IocLayout {
    /// include/uapi/asm-generic/ioctl.h: x86 and arm64.
    Generic,
    /// arch/powerpc/include/uapi/asm/ioctl.h.
    Powerpc,
}

/// A guest architecture, as far as its kernel ABI differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// `uname -m`.
    pub machine: &'static str,
    /// The GNU triple of its C compiler and sysroot (/usr/<triple>/include).
    pub gnu_triple: &'static str,
    pub ioc: IocLayout,
}

pub const X86_64: Arch = Arch {
    machine: "x86_64",
    gnu_triple: "x86_64-linux-gnu",
    ioc: IocLayout::Generic,
};
pub const ARM64: Arch = Arch {
    machine: "aarch64",
    gnu_triple: "aarch64-linux-gnu",
    ioc: IocLayout::Generic,
};
pub const PPC64LE: Arch = Arch {
    machine: "ppc64le",
    gnu_triple: "powerpc64le-linux-gnu",
    ioc: IocLayout::Powerpc,
};
/// Every architecture zcmatrix's guests run.
pub const ARCHES: [Arch; 3] = [X86_64, ARM64, PPC64LE];

/// The architecture this harness is compiled for (`None` on any other).
pub const fn target() -> Option<Arch> {
    if cfg!(target_arch = "x86_64") {
        Some(X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(ARM64)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some(PPC64LE)
    } else {
        None
    }
}

/// An ioctl's data direction, as the `_IO`, `_IOR`, `_IOW` and `_IOWR` macros name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    None,
    Read,
    Write,
    ReadWrite,
}

/// The request number `_IOC(dir, ty, nr, size)` on `arch`: include/uapi/asm-generic/ioctl.h
/// (2 direction bits, 14 size bits, write = 1, read = 2), and arch/powerpc/include/uapi/asm/ioctl.h
/// (3 direction bits, 13 size bits, none = 1, read = 2, write = 4).
pub const fn ioc(arch: Arch, dir: Dir, ty: u8, nr: u8, size: usize) -> u64 {
    let (size_bits, none, read, write) = match arch.ioc {
        IocLayout::Powerpc => (13, 1, 2, 4),
        IocLayout::Generic => (14, 0, 2, 1),
    };
    let d: u64 = match dir {
        Dir::None => none,
        Dir::Read => read,
        Dir::Write => write,
        Dir::ReadWrite => read | write,
    };
    (d << (16 + size_bits)) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}

// --- What libc lacks, from include/uapi ---

/// linux/fs.h: `_IOWR(0x94, 54, struct file_dedupe_range)`.
pub const FIDEDUPERANGE: libc::Ioctl = libc::_IOWR::<FileDedupeRange>(0x94, 54);
/// linux/fs.h: `_IOWR('f', 11, struct fiemap)`.
pub const FS_IOC_FIEMAP: libc::Ioctl = libc::_IOWR::<Fiemap>(b'f' as u32, 11);
/// linux/fiemap.h: flush dirty data before mapping, so delayed allocations have extents.
pub const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// linux/fiemap.h: the extent's blocks are shared with another file (a reflink or a snapshot).
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// linux/fs.h: `file_dedupe_range_info.status` when the ranges held different bytes.
pub const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;
/// linux/kernel-page-flags.h: the first page of a compound page (a THP, mTHP or hugetlb folio).
pub const KPF_COMPOUND_HEAD: u32 = 15;
/// linux/errqueue.h: a MSG_ZEROCOPY completion, and its "the kernel copied" code.
pub const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// linux/io_uring.h (6.2): ask IORING_OP_SEND_ZC to say whether it copied, the answer's bit, and
/// the flag of a notification CQE.
pub const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
pub const IORING_CQE_F_NOTIF: u32 = 1 << 3;
/// linux/io_uring.h: the size of `struct io_uring_params` and where its `features` word is.
pub const IO_URING_PARAMS_SIZE: usize = 120;
pub const IO_URING_PARAMS_FEATURES: usize = 20;
/// linux/ethtool.h: get the scatter-gather setting.
pub const ETHTOOL_GSG: u32 = 0x18;
/// linux/magic.h (nix leaves it out on musl).
pub const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// linux/fs.h `struct file_dedupe_range`, without its flexible `info[]`.
#[repr(C)]
pub struct FileDedupeRange {
    pub src_offset: u64,
    pub src_length: u64,
    pub dest_count: u16,
    pub reserved1: u16,
    pub reserved2: u32,
}

/// linux/fs.h `struct file_dedupe_range_info`.
#[repr(C)]
pub struct FileDedupeRangeInfo {
    pub dest_fd: i64,
    pub dest_offset: u64,
    pub bytes_deduped: u64,
    pub status: i32,
    pub reserved: u32,
}

/// linux/fiemap.h `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FiemapExtent {
    pub fe_logical: u64,
    pub fe_physical: u64,
    pub fe_length: u64,
    pub fe_reserved64: [u64; 2],
    pub fe_flags: u32,
    pub fe_reserved: [u32; 3],
}

/// linux/fiemap.h `struct fiemap`, without its flexible `fm_extents[]`.
#[repr(C)]
pub struct Fiemap {
    pub fm_start: u64,
    pub fm_length: u64,
    pub fm_flags: u32,
    pub fm_mapped_extents: u32,
    pub fm_extent_count: u32,
    pub fm_reserved: u32,
}

/// linux/tcp.h `struct tcp_zerocopy_receive` up to `err` (5.3's layout; 4.18's kernels read a
/// prefix, later ones accept it as a shorter optlen).
#[repr(C)]
#[derive(Default, Debug)]
pub struct TcpZerocopyReceive {
    pub address: u64,
    pub length: u32,
    pub recv_skip_hint: u32,
    pub inq: u32,
    pub err: i32,
}

/// linux/ethtool.h `struct ethtool_value`.
#[repr(C)]
pub struct EthtoolValue {
    pub cmd: u32,
    pub data: u32,
}

/// How a number of [`table`] follows from the architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Portable {
    /// An ioctl request: `_IOC(dir, ty, nr, size)`, encoded per architecture by [`ioc`].
    Ioctl(Dir, u8, u8, usize),
    /// The same number on every architecture (the C comparison holds it to that on each).
    Same,
    /// A `libc` constant that differs by architecture (O_DIRECT): known here only for the
    /// target, so compared on the host's architecture only.
    TargetOnly,
}

/// One number the harness passes to (or reads from) the kernel.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The C expression giving it, with the headers of [`C_HEADERS`].
    pub c: &'static str,
    /// The value the compiled harness uses on its target.
    pub used: u64,
    pub portable: Portable,
}

impl Entry {
    /// Its value on `arch`; `None` for a [`Portable::TargetOnly`] number on another architecture.
    pub fn on(&self, arch: Arch) -> Option<u64> {
        match self.portable {
            Portable::Ioctl(dir, ty, nr, size) => Some(ioc(arch, dir, ty, nr, size)),
            Portable::Same => Some(self.used),
            Portable::TargetOnly => (target() == Some(arch)).then_some(self.used),
        }
    }
}

/// The headers [`table`]'s C expressions need.
pub const C_HEADERS: &[&str] = &[
    "stddef.h",
    "fcntl.h",
    "sys/mman.h",
    "sys/socket.h",
    "net/if.h",
    "sys/ioctl.h",
    "linux/fs.h",
    "linux/fiemap.h",
    "linux/stat.h",
    "linux/magic.h",
    "linux/memfd.h",
    "linux/kernel-page-flags.h",
    "linux/tcp.h",
    "linux/errqueue.h",
    "linux/tls.h",
    "linux/sockios.h",
    "linux/ethtool.h",
    "linux/io_uring.h",
];

const fn same(c: &'static str, used: u64) -> Entry {
    Entry {
        c,
        used,
        portable: Portable::Same,
    }
}

const fn target_only(c: &'static str, used: u64) -> Entry {
    Entry {
        c,
        used,
        portable: Portable::TargetOnly,
    }
}

const fn ioctl(c: &'static str, used: libc::Ioctl, dir: Dir, ty: u8, nr: u8, size: usize) -> Entry {
    Entry {
        c,
        // A request is 32 bits; musl types it as a signed int.
        used: used as u32 as u64,
        portable: Portable::Ioctl(dir, ty, nr, size),
    }
}

/// `sizeof(struct S)` and `offsetof(struct S, field)` entries of a Rust mirror of a C struct.
/// `prefix up to F` compares the size with the end of field `F`: the struct is a prefix of a
/// longer C one the kernel accepts a shorter optlen of.
macro_rules! layout {
    ($c:literal, $t:ty $(, $field:ident)*) => {
        layout!(@ $c, $t, concat!("sizeof(struct ", $c, ")") $(, $field)*)
    };
    ($c:literal prefix up to $last:ident, $t:ty $(, $field:ident)*) => {
        layout!(@ $c, $t, concat!(
            "offsetof(struct ", $c, ", ", stringify!($last), ") + sizeof(((struct ", $c, " *)0)->",
            stringify!($last), ")"
        ) $(, $field)*)
    };
    (@ $c:literal, $t:ty, $size:expr $(, $field:ident)*) => {
        [
            same($size, size_of::<$t>() as u64),
            $(same(
                concat!("offsetof(struct ", $c, ", ", stringify!($field), ")"),
                offset_of!($t, $field) as u64,
            ),)*
        ]
    };
}

/// Every number of the kernel ABI the harness uses, with its C expression.
// The `as u64` casts are of types that differ by target (c_ulong, c_int, u32).
#[allow(clippy::unnecessary_cast)]
pub fn table() -> Vec<Entry> {
    let numbers = [
        // Requests.
        ioctl(
            "FICLONE",
            libc::FICLONE,
            Dir::Write,
            0x94,
            9,
            size_of::<libc::c_int>(),
        ),
        ioctl(
            "FICLONERANGE",
            libc::FICLONERANGE,
            Dir::Write,
            0x94,
            13,
            size_of::<libc::file_clone_range>(),
        ),
        ioctl(
            "FIDEDUPERANGE",
            FIDEDUPERANGE,
            Dir::ReadWrite,
            0x94,
            54,
            size_of::<FileDedupeRange>(),
        ),
        ioctl(
            "FS_IOC_FIEMAP",
            FS_IOC_FIEMAP,
            Dir::ReadWrite,
            b'f',
            11,
            size_of::<Fiemap>(),
        ),
        same("SIOCETHTOOL", libc::SIOCETHTOOL as u64),
        same("SIOCGIFFLAGS", libc::SIOCGIFFLAGS as u64),
        same("SIOCSIFFLAGS", libc::SIOCSIFFLAGS as u64),
        same("SIOCSIFADDR", libc::SIOCSIFADDR as u64),
        same("SIOCSIFNETMASK", libc::SIOCSIFNETMASK as u64),
        target_only("FIONREAD", libc::FIONREAD as u64),
        // Flags and values.
        same("FIEMAP_FLAG_SYNC", FIEMAP_FLAG_SYNC as u64),
        same("FIEMAP_EXTENT_SHARED", FIEMAP_EXTENT_SHARED as u64),
        same(
            "FILE_DEDUPE_RANGE_DIFFERS",
            FILE_DEDUPE_RANGE_DIFFERS as u64,
        ),
        same("KPF_COMPOUND_HEAD", KPF_COMPOUND_HEAD as u64),
        same("STATX_ATTR_DAX", libc::STATX_ATTR_DAX as u64),
        same("STATX_DIOALIGN", libc::STATX_DIOALIGN as u64),
        same("XFS_SUPER_MAGIC", XFS_SUPER_MAGIC as u64),
        same("SO_ZEROCOPY", libc::SO_ZEROCOPY as u64),
        same("MSG_ZEROCOPY", libc::MSG_ZEROCOPY as u64),
        same("MSG_ERRQUEUE", libc::MSG_ERRQUEUE as u64),
        same("SO_EE_ORIGIN_ZEROCOPY", SO_EE_ORIGIN_ZEROCOPY as u64),
        same(
            "SO_EE_CODE_ZEROCOPY_COPIED",
            SO_EE_CODE_ZEROCOPY_COPIED as u64,
        ),
        same("TCP_ZEROCOPY_RECEIVE", libc::TCP_ZEROCOPY_RECEIVE as u64),
        same("TCP_ULP", libc::TCP_ULP as u64),
        same("SOL_TLS", libc::SOL_TLS as u64),
        same("TLS_TX", libc::TLS_TX as u64),
        same("TLS_RX", libc::TLS_RX as u64),
        same("TLS_1_2_VERSION", libc::TLS_1_2_VERSION as u64),
        same(
            "TLS_CIPHER_AES_GCM_128",
            libc::TLS_CIPHER_AES_GCM_128 as u64,
        ),
        same(
            "IORING_SEND_ZC_REPORT_USAGE",
            IORING_SEND_ZC_REPORT_USAGE as u64,
        ),
        same(
            "IORING_NOTIF_USAGE_ZC_COPIED",
            IORING_NOTIF_USAGE_ZC_COPIED as u64,
        ),
        same("IORING_CQE_F_NOTIF", IORING_CQE_F_NOTIF as u64),
        same("ETHTOOL_GSG", ETHTOOL_GSG as u64),
        same("MAP_SYNC", libc::MAP_SYNC as u64),
        same("MAP_SHARED_VALIDATE", libc::MAP_SHARED_VALIDATE as u64),
        same("MAP_HUGETLB", libc::MAP_HUGETLB as u64),
        same("MAP_HUGE_SHIFT", libc::MAP_HUGE_SHIFT as u64),
        same("MFD_HUGETLB", libc::MFD_HUGETLB as u64),
        same("MFD_HUGE_2MB", libc::MFD_HUGE_2MB as u64),
        same("MFD_HUGE_1GB", libc::MFD_HUGE_1GB as u64),
        same("MADV_DONTNEED", libc::MADV_DONTNEED as u64),
        same("MADV_HUGEPAGE", libc::MADV_HUGEPAGE as u64),
        same("MADV_NOHUGEPAGE", libc::MADV_NOHUGEPAGE as u64),
        same("MADV_PAGEOUT", libc::MADV_PAGEOUT as u64),
        same("MADV_DONTFORK", libc::MADV_DONTFORK as u64),
        same("MADV_DOFORK", libc::MADV_DOFORK as u64),
        same("MADV_SEQUENTIAL", libc::MADV_SEQUENTIAL as u64),
        same("MADV_WILLNEED", libc::MADV_WILLNEED as u64),
        target_only("O_DIRECT", libc::O_DIRECT as u64),
        target_only("MAP_NORESERVE", libc::MAP_NORESERVE as u64),
    ];
    let layouts: [&[Entry]; 9] = [
        &layout!(
            "file_clone_range",
            libc::file_clone_range,
            src_fd,
            src_offset,
            src_length,
            dest_offset
        ),
        &layout!(
            "file_dedupe_range",
            FileDedupeRange,
            src_length,
            dest_count,
            reserved2
        ),
        &layout!(
            "file_dedupe_range_info",
            FileDedupeRangeInfo,
            dest_fd,
            dest_offset,
            bytes_deduped,
            status,
            reserved
        ),
        &layout!(
            "fiemap_extent",
            FiemapExtent,
            fe_length,
            fe_flags,
            fe_reserved
        ),
        &layout!(
            "fiemap",
            Fiemap,
            fm_flags,
            fm_mapped_extents,
            fm_extent_count,
            fm_reserved
        ),
        &layout!(
            "tcp_zerocopy_receive" prefix up to err,
            TcpZerocopyReceive,
            length,
            recv_skip_hint,
            inq,
            err
        ),
        &layout!(
            "tls12_crypto_info_aes_gcm_128",
            libc::tls12_crypto_info_aes_gcm_128,
            iv,
            key,
            salt,
            rec_seq
        ),
        &layout!("ethtool_value", EthtoolValue, data),
        &[
            same(
                "sizeof(struct io_uring_params)",
                IO_URING_PARAMS_SIZE as u64,
            ),
            same(
                "offsetof(struct io_uring_params, features)",
                IO_URING_PARAMS_FEATURES as u64,
            ),
        ],
    ];
    numbers.into_iter().chain(layouts.concat()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioc_agrees_with_libc_on_this_target() {
        let arch = target().expect("a guest architecture");
        for e in table() {
            assert_eq!(e.on(arch), Some(e.used), "{}", e.c);
        }
    }

    #[test]
    fn powerpc_encodes_write_in_the_top_bits() {
        // FICLONE: _IOW(0x94, 9, int) per arch/powerpc/include/uapi/asm/ioctl.h.
        assert_eq!(ioc(PPC64LE, Dir::Write, 0x94, 9, 4), 0x8004_9409);
        assert_eq!(ioc(ARM64, Dir::Write, 0x94, 9, 4), 0x4004_9409);
        assert_eq!(ioc(X86_64, Dir::ReadWrite, b'f', 11, 32), 0xc020_660b);
    }
}
