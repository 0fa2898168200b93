//! Where a transfer goes: a fresh file on the filesystem under test, a loopback TCP connection
//! whose receiving end a thread of the probe drains and counts, or a TCP connection through the
//! guest's virtio-net device to zcmatrix's host end, which checks every byte and answers.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::stats::{Cost, Usage};
use crate::checks::{broken, common, Stop};
use crate::sys;
use zcmatrix_protocol::net::{Op, Request, Verdict, FRAME_LEN};

/// How long the host end's verdict may take: QEMU's user network is slow under TCG, and the
/// host end may be shared with other guests' work on a loaded machine.
const NIC_ANSWER: std::time::Duration = std::time::Duration::from_secs(30);

/// The sinks a check's variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A file on the same filesystem as the source.
    File,
    /// A loopback TCP connection.
    Tcp,
    /// A TCP connection through virtio-net to the host end ([`zcmatrix_protocol::net`]).
    Nic,
}

/// What the receiving thread is asked to take: this many bytes, checked against `expect` when
/// given (the first, untimed transfer of each path).
pub(super) struct Job {
    len: usize,
    expect: Option<Arc<Vec<u8>>>,
}

/// What it answers: what the job cost it, or what went wrong.
pub(super) type Done = Result<Cost, String>;

pub enum Sink {
    File {
        file: File,
        path: PathBuf,
    },
    Tcp {
        stream: TcpStream,
        jobs: mpsc::Sender<Job>,
        done: mpsc::Receiver<Done>,
        receiver: Option<JoinHandle<()>>,
    },
    Nic {
        stream: TcpStream,
        /// The pattern seed the source file holds, which the host end checks against.
        seed: u64,
        len: usize,
    },
}

impl Sink {
    /// A fresh sink of `kind`; a file sink is `<dir>/<name>.out`; the host end checks the bytes
    /// against the pattern of `seed` (the source file's).
    pub fn open(
        kind: SinkKind,
        dir: &std::path::Path,
        name: &str,
        seed: u64,
    ) -> Result<Sink, Stop> {
        Ok(match kind {
            SinkKind::File => {
                let path = dir.join(format!("{name}.out"));
                let file = common::create(&path)?;
                Sink::File { file, path }
            }
            SinkKind::Tcp => {
                let (stream, rx) = sys::tcp_pair()?;
                let (jobs, job_rx) = mpsc::channel::<Job>();
                let (done_tx, done) = mpsc::channel::<Done>();
                let receiver = std::thread::spawn(move || receive(rx, job_rx, done_tx));
                Sink::Tcp {
                    stream,
                    jobs,
                    done,
                    receiver: Some(receiver),
                }
            }
            SinkKind::Nic => {
                let nic = common::nic_or_skip()?;
                let stream = common::nic_stream(nic)?;
                stream.set_read_timeout(Some(NIC_ANSWER))?;
                stream.set_nodelay(true)?;
                Sink::Nic {
                    stream,
                    seed,
                    len: 0,
                }
            }
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sink::File { file, .. } => file.as_fd(),
            Sink::Tcp { stream, .. } | Sink::Nic { stream, .. } => stream.as_fd(),
        }
    }

    /// Waits (outside the measured window) until the kernel holds none of the last transfer's
    /// pages: a TCP sender keeps what it sent, page-cache pages by reference for sendfile and
    /// splice, until the receiver's ACK, which may be delayed; POSIX_FADV_DONTNEED cannot drop
    /// a page so held. SIOCOUTQ (tcp(7)) is the bytes sent but not yet acknowledged.
    pub fn settle(&self) -> Result<(), Stop> {
        let (Sink::Tcp { stream, .. } | Sink::Nic { stream, .. }) = self else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: SIOCOUTQ writes one int.
            let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
            if r < 0 {
                return Err(broken(format!(
                    "ioctl(SIOCOUTQ): {}",
                    std::io::Error::last_os_error()
                )));
            }
            if queued == 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(broken(format!(
                    "{queued} bytes still unacknowledged on loopback after 5 s"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Before a transfer of `len` bytes (outside the measured window): an empty file at
    /// position 0, a receiver told what to expect, or the host end sent a request for it.
    pub fn begin(&mut self, len: usize, expect: Option<&Arc<Vec<u8>>>) -> Result<(), Stop> {
        match self {
            Sink::File { file, .. } => {
                file.set_len(0)?;
                file.rewind()?;
            }
            Sink::Tcp { jobs, .. } => jobs
                .send(Job {
                    len,
                    expect: expect.cloned(),
                })
                .map_err(|_| broken("the receiving thread is gone"))?,
            Sink::Nic {
                stream,
                seed,
                len: want,
            } => {
                *want = len;
                let request = Request {
                    op: Op::Sink,
                    seed: *seed,
                    len: len as u64,
                };
                (&*stream).write_all(&request.encode())?;
            }
        }
        Ok(())
    }

    /// After the sender's last call: waits until a socket's receiver has every byte (the
    /// transfer is not over before), and returns what receiving cost.
    pub fn end(&mut self) -> Result<Option<Cost>, Stop> {
        match self {
            Sink::File { .. } => Ok(None),
            Sink::Nic { stream, len, .. } => {
                let mut answer = [0u8; FRAME_LEN];
                (&*stream)
                    .read_exact(&mut answer)
                    .map_err(|e| broken(format!("no verdict from the host end: {e}")))?;
                match Verdict::decode(&answer) {
                    Some(v) if v.verified(*len as u64) => Ok(None),
                    Some(v) => Err(broken(format!(
                        "the host end received {} of {len} bytes, first difference at {:?}",
                        v.received, v.first_difference
                    ))),
                    None => Err(broken("the host end's answer is no verdict")),
                }
            }
            Sink::Tcp { done, .. } => match done.recv() {
                Ok(Ok(cost)) => Ok(Some(cost)),
                Ok(Err(e)) => Err(broken(format!("loopback receiver: {e}"))),
                Err(_) => Err(broken("the receiving thread is gone")),
            },
        }
    }

    /// A file sink holds exactly `want`; a socket's receiver checked its bytes itself.
    pub fn verify(&mut self, want: &[u8]) -> Result<(), Stop> {
        if let Sink::File { path, .. } = self {
            let got = std::fs::read(&*path)?;
            if let Some(at) = sys::first_difference(&got, want) {
                return Err(broken(format!(
                    "the sink file holds {} of {} bytes, first difference at {at}",
                    got.len(),
                    want.len()
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        match self {
            Sink::File { path, .. } => {
                let _ = std::fs::remove_file(&*path);
            }
            Sink::Nic { .. } => {}
            Sink::Tcp {
                stream,
                jobs,
                receiver,
                ..
            } => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                // Dropping the job channel ends the receiver's loop.
                let (closed, _) = mpsc::channel();
                *jobs = closed;
                if let Some(r) = receiver.take() {
                    let _ = r.join();
                }
            }
        }
    }
}

/// The receiving thread: for each job, read exactly its bytes, check them when asked, and
/// answer with what it cost this thread.
fn receive(mut rx: TcpStream, jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
    let mut buf = vec![0u8; 64 << 10];
    for job in jobs {
        let t0 = Usage::thread();
        let mut got = 0;
        let mut wrong = None;
        while got < job.len {
            let want = buf.len().min(job.len - got);
            match rx.read(&mut buf[..want]) {
                Ok(0) => {
                    wrong = Some(format!("end of stream after {got} of {} bytes", job.len));
                    break;
                }
                Ok(n) => {
                    if let Some(e) = &job.expect {
                        if wrong.is_none() && buf[..n] != e[got..got + n] {
                            wrong = Some(format!("wrong bytes within {got}..{}", got + n));
                        }
                    }
                    got += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    wrong = Some(format!("read after {got} bytes: {e}"));
                    break;
                }
            }
        }
        let answer = match wrong {
            None => Ok(Usage::thread().since(&t0).0),
            Some(w) => Err(w),
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}
