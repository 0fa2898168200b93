//! Errno names: the vocabulary of `observed`.

use nix::errno::Errno;

/// `EINVAL`, `ENOSYS`, ...: the vocabulary of `observed`.
pub fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

/// The errno name of an I/O error, or its text when it carries no errno.
pub fn io_error_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_name(Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// The errno of an I/O error (0 when it carries none).
pub fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_are_symbolic() {
        assert_eq!(errno_name(Errno::EINVAL), "EINVAL");
        assert_eq!(
            io_error_name(&std::io::Error::from_raw_os_error(libc::ENOENT)),
            "ENOENT"
        );
    }
}
