//! Whether the harness has root, and the skip reasons when it lacks it.

use nix::errno::Errno;

use super::errno_name;

/// Whether the harness runs as root: in a guest, as PID 1, it always does; a host-native run
/// (the tests) may be a normal user's.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The phrase every skip for want of privilege carries, which the host-native tests accept as
/// explained.
pub const NEEDS_ROOT: &str = "needs root";

/// The skip reason when `what` was refused with `errno` for want of privilege: EPERM or EACCES
/// to a normal user (mount(2) and /proc/sys writes need CAP_SYS_ADMIN, a block device is the
/// disk group's). `None` as root, where the same errno has another cause the caller reports.
pub fn needs_root(what: &str, errno: Errno) -> Option<String> {
    (!is_root() && matches!(errno, Errno::EPERM | Errno::EACCES))
        .then(|| format!("{what} refused ({}): {NEEDS_ROOT}", errno_name(errno)))
}

/// The skip reason when pinning pages for `what` (io_uring registered buffers, MSG_ZEROCOPY,
/// IORING_OP_SEND_ZC) was refused with `errno` by the locked-memory limit: without
/// CAP_IPC_LOCK the kernel charges pinned pages to the user's RLIMIT_MEMLOCK
/// (mm_account_pinned_pages, io_account_mem) and refuses past it with ENOMEM (io_uring) or
/// ENOBUFS (MSG_ZEROCOPY). `None` as root, who is not charged.
pub fn needs_memlock(what: &str, errno: Errno) -> Option<String> {
    if is_root() || !matches!(errno, Errno::ENOMEM | Errno::ENOBUFS) {
        return None;
    }
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
        .map(|(soft, _)| format!("{} KiB", soft / 1024))
        .unwrap_or_else(|_| "unknown".into());
    Some(format!(
        "{what} refused ({}): a normal user's pinned pages count against RLIMIT_MEMLOCK \
         ({limit}): {NEEDS_ROOT} (or a higher `ulimit -l`)",
        errno_name(errno)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_normal_users_refusal_is_a_needs_root_skip() {
        // As root the same errno has another cause: the caller reports it as it is.
        let user = !is_root();
        for e in [Errno::EPERM, Errno::EACCES] {
            let why = needs_root("mounting a tmpfs", e);
            assert_eq!(why.is_some(), user, "{e:?}");
            if let Some(w) = why {
                assert!(w.contains(NEEDS_ROOT) && w.contains(&errno_name(e)), "{w}");
            }
        }
        assert_eq!(needs_root("opening", Errno::ENOENT), None);
        for e in [Errno::ENOMEM, Errno::ENOBUFS] {
            let why = needs_memlock("IORING_OP_SEND_ZC", e);
            assert_eq!(why.is_some(), user, "{e:?}");
            if let Some(w) = why {
                assert!(
                    w.contains("RLIMIT_MEMLOCK") && w.contains(NEEDS_ROOT),
                    "{w}"
                );
            }
        }
        assert_eq!(needs_memlock("send", Errno::EINVAL), None);
    }
}
