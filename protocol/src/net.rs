//! The guest's network path and the little protocol its host end speaks.
//!
//! Every guest has a virtio-net device on QEMU's user network, restricted so that nothing
//! reaches the host's network: the one address it may talk to is [`NetPath::peer`], whose TCP
//! port QEMU forwards (`guestfwd`) to a Unix socket that zcmatrix's host side serves for the life
//! of that guest. Through that forward every guest connection shares one host stream, so each
//! transfer frames itself: a [`Request`] header, then the bytes, then (for a sink) a [`Verdict`]
//! from the host. Both ends generate the bytes from the request's seed with [`PatternStream`], so
//! the host verifies every byte it receives without the guest telling it what to expect.

use serde::{Deserialize, Serialize};

/// How a guest reaches the host end: written into the manifest by the host, read by the harness
/// to bring the interface up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPath {
    /// The MAC address of the virtio-net device, by which the guest finds its interface (names
    /// depend on probe order and udev, neither of which a harness as PID 1 has).
    pub mac: String,
    /// The guest's own IPv4 address, with [`NetPath::prefix_len`].
    pub address: String,
    pub prefix_len: u8,
    /// The host end, as `a.b.c.d:port`: QEMU's forward of that one address and port.
    pub peer: String,
}

/// How a guest error about the NIC path begins: a connection to the host end failed after
/// [`CONNECT_ATTEMPTS`] tries. The host appends its end's log (net.log) to such an error.
pub const HOST_END_UNREACHABLE: &str = "the host end could not be reached";
/// How many times a guest tries to connect to the host end before giving up.
pub const CONNECT_ATTEMPTS: u32 = 3;

/// Opens a request: "ZCN1".
pub const REQUEST_MAGIC: [u8; 4] = *b"ZCN1";
/// Opens a verdict: "ZCV1".
pub const VERDICT_MAGIC: [u8; 4] = *b"ZCV1";
/// The size of a request header and of a verdict on the wire.
pub const FRAME_LEN: usize = 24;

/// What the guest asks of the host end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The guest sends `len` pattern bytes; the host checks them and answers a [`Verdict`].
    Sink = 1,
    /// The host sends `len` pattern bytes, for receive checks.
    Source = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub seed: u64,
    pub len: u64,
}

impl Request {
    /// magic, op (u32), seed (u64), len (u64), little-endian.
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[..4].copy_from_slice(&REQUEST_MAGIC);
        b[4..8].copy_from_slice(&(self.op as u32).to_le_bytes());
        b[8..16].copy_from_slice(&self.seed.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; FRAME_LEN]) -> Option<Request> {
        if b[..4] != REQUEST_MAGIC {
            return None;
        }
        let op = match u32::from_le_bytes(b[4..8].try_into().ok()?) {
            1 => Op::Sink,
            2 => Op::Source,
            _ => return None,
        };
        Some(Request {
            op,
            seed: u64::from_le_bytes(b[8..16].try_into().ok()?),
            len: u64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// The host end's answer to a sink request: how many bytes it received, and the offset of the
/// first one that differed from the pattern (`None` when all matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub received: u64,
    pub first_difference: Option<u64>,
}

impl Verdict {
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[..4].copy_from_slice(&VERDICT_MAGIC);
        b[4..8].copy_from_slice(&u32::from(self.first_difference.is_some()).to_le_bytes());
        b[8..16].copy_from_slice(&self.received.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_difference.unwrap_or(u64::MAX).to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; FRAME_LEN]) -> Option<Verdict> {
        if b[..4] != VERDICT_MAGIC {
            return None;
        }
        let differs = u32::from_le_bytes(b[4..8].try_into().ok()?) != 0;
        let at = u64::from_le_bytes(b[16..24].try_into().ok()?);
        Some(Verdict {
            received: u64::from_le_bytes(b[8..16].try_into().ok()?),
            first_difference: differs.then_some(at),
        })
    }

    /// Whether the host saw exactly `len` right bytes.
    pub fn verified(&self, len: u64) -> bool {
        self.received == len && self.first_difference.is_none()
    }
}

/// The transfer's bytes, generated a chunk at a time: the same seed gives the same bytes on both
/// ends, and every 8-byte word differs from its neighbours, so a lost, repeated or reordered
/// segment cannot pass for the right one.
#[derive(Debug, Clone)]
pub struct PatternStream {
    seed: u64,
    /// The next byte's offset.
    at: u64,
}

impl PatternStream {
    pub fn new(seed: u64) -> Self {
        PatternStream { seed, at: 0 }
    }

    fn byte(&self, i: u64) -> u8 {
        let word =
            ((i / 8) ^ self.seed.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.seed;
        word.to_le_bytes()[(i % 8) as usize]
    }

    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = self.byte(self.at);
            self.at += 1;
        }
    }

    /// Compares `buf` with the next bytes: the offset (from the stream's start) of the first
    /// that differs.
    pub fn check(&mut self, buf: &[u8]) -> Option<u64> {
        let mut first = None;
        for b in buf {
            if first.is_none() && *b != self.byte(self.at) {
                first = Some(self.at);
            }
            self.at += 1;
        }
        first
    }
}

/// `len` bytes of the pattern of `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    PatternStream::new(seed).fill(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_other_bytes() {
        let r = Request {
            op: Op::Source,
            seed: 7,
            len: 1 << 40,
        };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        let v = Verdict {
            received: 99,
            first_difference: Some(3),
        };
        assert_eq!(Verdict::decode(&v.encode()), Some(v));
        assert!(!v.verified(99));
        let ok = Verdict {
            received: 99,
            first_difference: None,
        };
        assert_eq!(Verdict::decode(&ok.encode()), Some(ok));
        assert!(ok.verified(99) && !ok.verified(100));
        assert_eq!(Request::decode(&v.encode()), None);
        assert_eq!(Verdict::decode(&r.encode()), None);
    }

    #[test]
    fn the_pattern_is_the_same_in_any_chunking_and_differs_by_seed() {
        let whole = pattern(5, 1000);
        let mut s = PatternStream::new(5);
        let mut parts = vec![0u8; 1000];
        let (a, b) = parts.split_at_mut(333);
        s.fill(a);
        s.fill(b);
        assert_eq!(parts, whole);
        assert_ne!(pattern(6, 1000), whole);
        let mut c = PatternStream::new(5);
        assert_eq!(c.check(&whole[..500]), None);
        let mut bad = whole[500..].to_vec();
        bad[10] ^= 1;
        assert_eq!(c.check(&bad), Some(510));
    }
}
