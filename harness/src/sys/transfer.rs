//! The ends data moves between: pipes, vmsplice, a loopback TCP pair, draining threads.

use std::fs::File;
use std::io::Write;

use nix::errno::Errno;

/// A connected loopback TCP pair: (the end to send on, the end to read from).
pub fn tcp_pair() -> std::io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let sender = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (receiver, _) = listener.accept()?;
    Ok((sender, receiver))
}

/// Reads `r` to end of file on a thread, so a sender can block on a full buffer meanwhile.
pub fn drain<R: std::io::Read + Send + 'static>(
    mut r: R,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    })
}

/// What a transfer loop returns: bytes moved, or the errno that stopped it after some bytes.
pub type Moved = Result<usize, (usize, nix::errno::Errno)>;

/// A pipe as (read end, write end).
pub fn pipe() -> nix::Result<(File, File)> {
    let (rx, tx) = nix::unistd::pipe()?;
    Ok((File::from(rx), File::from(tx)))
}

/// Raw vmsplice: nix's wrapper only takes immutable slices, and reading a pipe into user memory
/// writes it.
pub fn vmsplice_raw(
    fd: std::os::fd::RawFd,
    iov: &[libc::iovec],
    flags: u32,
) -> Result<usize, Errno> {
    // SAFETY: iov points to `iov.len()` valid iovecs describing memory the caller owns.
    let r = unsafe { libc::vmsplice(fd, iov.as_ptr(), iov.len(), flags) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// Fills a fresh pipe with `fill` (given the write end), closes the write end, and returns what
/// `fill` returned with everything the pipe held. `fill` must not write more than a pipe holds.
pub fn collect_pipe<T>(fill: impl FnOnce(&File) -> T) -> std::io::Result<(T, Vec<u8>)> {
    use std::io::Read;
    let (rx, tx) = nix::unistd::pipe()?;
    let tx = File::from(tx);
    let out = fill(&tx);
    drop(tx);
    let mut got = Vec::new();
    File::from(rx).read_to_end(&mut got)?;
    Ok((out, got))
}

/// The read end of a fresh pipe holding `data`, its write end closed. `data` must fit in the
/// pipe (64 KiB by default, pipe(7)), or the write blocks forever.
pub fn filled_pipe(data: &[u8]) -> std::io::Result<File> {
    let (rx, mut tx) = pipe()?;
    tx.write_all(data)?;
    Ok(rx)
}

/// Everything `r` yields until end of file.
pub fn read_all(mut r: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::pattern;

    #[test]
    fn a_filled_pipe_gives_back_its_bytes() {
        let data = pattern(10_000, 9);
        assert_eq!(read_all(filled_pipe(&data).unwrap()).unwrap(), data);
    }
}
