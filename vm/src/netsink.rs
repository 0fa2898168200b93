//! The host end of a guest's network path: a Unix socket that QEMU's user network forwards the
//! guest's one permitted TCP address to (see [`crate::qemu::net_args`]), served on a thread for
//! the life of one guest. A sink checks every byte the guest sends against the pattern of the
//! request's seed and answers a verdict; a source sends the pattern. Nothing here opens an IP
//! socket: the guest's traffic never leaves QEMU's process except through this Unix socket, in a
//! private temporary directory only this user can enter.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use zcmatrix_protocol::net::{Op, PatternStream, Request, Verdict, FRAME_LEN};

/// How often the serving thread looks at the stop flag while it waits.
const TICK: Duration = Duration::from_millis(100);
/// A transfer that stalls this long mid-way was abandoned by its guest (a probe killed at its
/// deadline): the host end drops it and looks for the next request, so one broken transfer does
/// not garble the ones after it.
const STALL: Duration = Duration::from_secs(15);
/// Bytes the host end moves per read or write.
const CHUNK: usize = 64 << 10;

/// One transfer as the host end saw it, kept for the guest's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub op: &'static str,
    pub seed: u64,
    pub len: u64,
    /// For a sink: the bytes received and whether all matched; for a source: the bytes sent.
    pub moved: u64,
    pub verified: bool,
    pub note: String,
}

/// A running host end; dropping it stops the thread and removes the socket.
pub struct NetSink {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Transfer>>>,
}

impl NetSink {
    /// Listens on a fresh Unix socket in a private temporary directory (short, so it fits a
    /// socket address however deep the output directory is) and serves it on a thread.
    pub fn start() -> anyhow::Result<NetSink> {
        let dir = tempfile::Builder::new()
            .prefix("zcmatrix-net.")
            .tempdir()
            .context("creating the network sink's directory")?;
        let path = dir.path().join("sink.sock");
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::Builder::new()
                .name("zcmatrix-net-sink".into())
                .spawn(move || accept_loop(&listener, &stop, &log))?
        };
        Ok(NetSink {
            dir,
            stop,
            thread: Some(thread),
            log,
        })
    }

    /// The socket QEMU connects to.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sink.sock")
    }

    /// Every transfer so far, in order.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Writes the transfers, one line each, for a human reading a guest's folder.
    pub fn write_log(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.log_text())
    }

    /// The transfers, one line each.
    pub fn log_text(&self) -> String {
        self.transfers()
            .iter()
            .map(|t| {
                format!(
                    "{} seed={:#x} len={} moved={} verified={} {}\n",
                    t.op, t.seed, t.len, t.moved, t.verified, t.note
                )
            })
            .collect()
    }
}

impl Drop for NetSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, log: &Mutex<Vec<Transfer>>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                // QEMU's forward is one stream for every guest connection; it ends with QEMU.
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(TICK));
                serve(stream, stop, log);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// Why a read stopped early.
enum Cut {
    Stopped,
    Closed,
    Stalled,
}

/// Fills `buf`, waiting for as long as the stream delivers and the run goes on; `fresh` allows
/// an idle wait (between transfers) without counting it as a stall.
fn read_full(
    s: &mut UnixStream,
    buf: &mut [u8],
    stop: &AtomicBool,
    fresh: bool,
) -> Result<(), Cut> {
    let mut got = 0;
    let mut last = Instant::now();
    while got < buf.len() {
        if stop.load(Ordering::SeqCst) {
            return Err(Cut::Stopped);
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(Cut::Closed),
            Ok(n) => {
                got += n;
                last = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !(fresh && got == 0) && last.elapsed() > STALL {
                    return Err(Cut::Stalled);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Cut::Closed),
        }
    }
    Ok(())
}

fn serve(mut s: UnixStream, stop: &AtomicBool, log: &Mutex<Vec<Transfer>>) {
    let mut header = [0u8; FRAME_LEN];
    loop {
        match read_full(&mut s, &mut header, stop, true) {
            Ok(()) => {}
            Err(Cut::Stalled) => continue,
            Err(_) => return,
        }
        // Not a request: the tail of an abandoned transfer. Slide by a byte until one starts.
        let Some(req) = resync(&mut s, &mut header, stop) else {
            return;
        };
        let t = match req.op {
            Op::Sink => sink(&mut s, req, stop),
            Op::Source => source(&mut s, req, stop),
        };
        let Some(t) = t else { return };
        if let Ok(mut l) = log.lock() {
            l.push(t);
        }
    }
}

/// The request in `header`, or the first one found by sliding it a byte at a time.
fn resync(s: &mut UnixStream, header: &mut [u8; FRAME_LEN], stop: &AtomicBool) -> Option<Request> {
    loop {
        if let Some(r) = Request::decode(header) {
            return Some(r);
        }
        header.copy_within(1.., 0);
        let mut one = [0u8; 1];
        match read_full(s, &mut one, stop, true) {
            Ok(()) => header[FRAME_LEN - 1] = one[0],
            Err(Cut::Stalled) => {}
            Err(_) => return None,
        }
    }
}

/// Receives `req.len` bytes, checks them against the pattern and answers the verdict. `None`
/// when the stream ended or the run stopped.
fn sink(s: &mut UnixStream, req: Request, stop: &AtomicBool) -> Option<Transfer> {
    let mut pattern = PatternStream::new(req.seed);
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    let mut first = None;
    let mut note = String::new();
    while received < req.len {
        let n = (req.len - received).min(CHUNK as u64) as usize;
        match read_full(s, &mut buf[..n], stop, false) {
            Ok(()) => {}
            Err(Cut::Stalled) => {
                note = format!("abandoned after {received} bytes");
                break;
            }
            Err(_) => return None,
        }
        let at = pattern.check(&buf[..n]);
        first = first.or(at);
        received += n as u64;
    }
    let verdict = Verdict {
        received,
        first_difference: first,
    };
    if note.is_empty() {
        s.write_all(&verdict.encode()).ok()?;
    }
    Some(Transfer {
        op: "sink",
        seed: req.seed,
        len: req.len,
        moved: received,
        verified: verdict.verified(req.len),
        note: first.map_or(note, |at| format!("first difference at {at}")),
    })
}

/// Sends `req.len` pattern bytes.
fn source(s: &mut UnixStream, req: Request, stop: &AtomicBool) -> Option<Transfer> {
    let mut pattern = PatternStream::new(req.seed);
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < req.len {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        let n = (req.len - sent).min(CHUNK as u64) as usize;
        pattern.fill(&mut buf[..n]);
        s.write_all(&buf[..n]).ok()?;
        sent += n as u64;
    }
    Some(Transfer {
        op: "source",
        seed: req.seed,
        len: req.len,
        moved: sent,
        verified: true,
        note: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcmatrix_protocol::net::pattern;

    fn connect(sink: &NetSink) -> UnixStream {
        let s = UnixStream::connect(sink.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn verdict(s: &mut UnixStream) -> Verdict {
        let mut b = [0u8; FRAME_LEN];
        s.read_exact(&mut b).unwrap();
        Verdict::decode(&b).unwrap()
    }

    #[test]
    fn a_sink_verifies_every_byte_and_a_source_sends_the_pattern() {
        let sink = NetSink::start().unwrap();
        let mut s = connect(&sink);
        let len = 200_000;
        let req = Request {
            op: Op::Sink,
            seed: 42,
            len,
        };
        s.write_all(&req.encode()).unwrap();
        s.write_all(&pattern(42, len as usize)).unwrap();
        assert!(verdict(&mut s).verified(len));

        // A corrupted byte is found where it is.
        let mut bad = pattern(43, 1000);
        bad[777] ^= 0xff;
        s.write_all(
            &Request {
                seed: 43,
                len: 1000,
                ..req
            }
            .encode(),
        )
        .unwrap();
        s.write_all(&bad).unwrap();
        let v = verdict(&mut s);
        assert_eq!((v.received, v.first_difference), (1000, Some(777)));

        s.write_all(
            &Request {
                op: Op::Source,
                seed: 9,
                len: 70_000,
            }
            .encode(),
        )
        .unwrap();
        let mut got = vec![0u8; 70_000];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, pattern(9, 70_000));
        drop(s);
        // The source's entry is logged after its last byte is written.
        let end = Instant::now() + Duration::from_secs(5);
        while sink.transfers().len() < 3 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = sink.transfers();
        assert_eq!(log.len(), 3, "{log:?}");
        assert!(log[0].verified && !log[1].verified && log[2].verified);
    }

    #[test]
    fn garbage_before_a_request_is_skipped() {
        let sink = NetSink::start().unwrap();
        let mut s = connect(&sink);
        s.write_all(b"leftover bytes of a dead transfer").unwrap();
        let req = Request {
            op: Op::Sink,
            seed: 1,
            len: 10,
        };
        s.write_all(&req.encode()).unwrap();
        s.write_all(&pattern(1, 10)).unwrap();
        assert!(verdict(&mut s).verified(10));
    }

    #[test]
    fn stopping_ends_the_thread_and_removes_the_socket() {
        let sink = NetSink::start().unwrap();
        let path = sink.socket();
        let _s = connect(&sink);
        assert!(path.exists());
        let started = Instant::now();
        drop(sink);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!path.exists());
    }
}
