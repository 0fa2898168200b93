//! io_uring: the feature word of a fresh ring, with its bits named.

use nix::errno::Errno;

use super::abi;

/// io_uring_setup(2) with a one-entry ring and no flags: the `features` word the kernel
/// returns in `struct io_uring_params` (IORING_FEAT_*), read raw so bits newer than the
/// io-uring crate still show. The ring is closed at once.
pub fn io_uring_features() -> Result<u32, Errno> {
    // struct io_uring_params: sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle,
    // features, ... (include/uapi/linux/io_uring.h; its size and offsets are in `abi`).
    let mut params = [0u32; abi::IO_URING_PARAMS_SIZE / 4];
    // SAFETY: `params` is a zeroed, writable io_uring_params of the size the ABI defines.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    let fd = Errno::result(fd)?;
    // SAFETY: `fd` is the ring descriptor just returned to us and owned by nobody else.
    unsafe { libc::close(fd as i32) };
    Ok(params[abi::IO_URING_PARAMS_FEATURES / 4])
}

/// IORING_FEAT_* bit names in bit order (include/uapi/linux/io_uring.h).
pub const IORING_FEATURES: [&str; 18] = [
    "single_mmap",
    "nodrop",
    "submit_stable",
    "rw_cur_pos",
    "cur_personality",
    "fast_poll",
    "poll_32bits",
    "sqpoll_nonfixed",
    "ext_arg",
    "native_workers",
    "rsrc_tags",
    "cqe_skip",
    "linked_file",
    "reg_reg_ring",
    "recvsend_bundle",
    "min_timeout",
    "rw_attr",
    "no_iowait",
];

/// The names of the set bits of an IORING_FEAT_* word, unknown bits as `bitN`.
pub fn io_uring_feature_names(features: u32) -> Vec<String> {
    (0..32)
        .filter(|b| features & (1 << b) != 0)
        .map(|b| {
            IORING_FEATURES
                .get(b as usize)
                .map_or(format!("bit{b}"), |n| n.to_string())
        })
        .collect()
}
