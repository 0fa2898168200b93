//! sendfile(2) into a loopback socket with kernel TLS, decrypted by a TLS_RX receiver.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};

use libc::{TLS_RX, TLS_TX};
use nix::errno::Errno;

use super::super::{
    broken, common, skip, Check, Ctx, Expect, Measure, Observation, Pred, Rule, Stop,
};
use super::sockets::setsockopt;
use crate::kver::KernelVersion;
use crate::sys;

const EVIDENCE_KTLS: &str = "Documentation/networking/tls.rst: setsockopt(TCP_ULP, \"tls\") \
    then TLS_TX with a tls12_crypto_info (3c4d7559159b \"tls: kernel TLS support\", 4.13) and \
    sendfile(2) into the socket, which the kernel encrypts into TLS records of at most 2^14 \
    plaintext bytes (RFC 5246 6.2.1); the receiver decrypts with TLS_RX (c46234ebb4d1 \"tls: RX \
    path for ktls\", 4.17) and verifies every byte. records and max_record (the largest \
    plaintext per record) are measurements. Debian builds CONFIG_TLS=m from 6.1 (bookworm) on, \
    so from 6.1 a kernel without the \"tls\" ULP or its gcm(aes) cipher is data=absent, a \
    failure naming the missing module; before 6.1 (bullseye's cloud flavour leaves CONFIG_TLS \
    out), or on a kernel Debian did not build, a skip";

pub(super) static CHECKS: &[Check] = &[Check::fs(
    "net.ktls_sendfile",
    "sendfile of a 50000-byte file into a loopback TCP socket with kernel TLS (TLS 1.2, \
         AES-GCM-128, a fixed test key), decrypted by a TLS_RX receiver, data verified",
    Rule::new(
        Expect::Always(Pred::Fields(&[("data", Pred::Is("ok"))])),
        EVIDENCE_KTLS,
    ),
    ktls_sendfile,
)
.needs_net()];

/// A fixed test key: never a secret, only something both ends agree on.
fn test_key() -> libc::tls12_crypto_info_aes_gcm_128 {
    libc::tls12_crypto_info_aes_gcm_128 {
        info: libc::tls_crypto_info {
            version: libc::TLS_1_2_VERSION,
            cipher_type: libc::TLS_CIPHER_AES_GCM_128,
        },
        iv: *b"zcmatrix",
        key: *b"zcmatrix-tls-key",
        salt: *b"salt",
        rec_seq: [0; 8],
    }
}

/// Turns on kernel TLS in `direction` (TLS_TX, TLS_RX) on a connected socket.
fn ktls(s: &TcpStream, direction: libc::c_int) -> Result<(), (Errno, &'static str)> {
    let fd = s.as_raw_fd();
    // SAFETY: "tls" is 3 bytes and lives through the call.
    let r =
        unsafe { libc::setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls".as_ptr().cast(), 3) };
    Errno::result(r).map_err(|e| (e, "setsockopt(TCP_ULP, \"tls\")"))?;
    setsockopt(fd, libc::SOL_TLS, direction, &test_key()).map_err(|e| (e, "setsockopt(SOL_TLS)"))
}

/// TLS records in a raw stream: (count, largest plaintext), or where the framing broke.
fn tls_records(raw: &[u8]) -> Result<(usize, usize), String> {
    let (mut at, mut count, mut largest) = (0, 0, 0);
    while at < raw.len() {
        let h = raw.get(at..at + 5).ok_or("a truncated record header")?;
        if h[0] != 23 || h[1..3] != [3, 3] {
            return Err(format!(
                "a record at {at} of type {} version {:02x}{:02x}",
                h[0], h[1], h[2]
            ));
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        // AES-GCM: an 8-byte explicit nonce before the ciphertext and a 16-byte tag after it.
        largest = largest.max(len.saturating_sub(8 + 16));
        count += 1;
        at += 5 + len;
    }
    Ok((count, largest))
}

/// The first kernel series whose Debian build the matrix runs has kernel TLS (CONFIG_TLS=m in
/// every flavour from bookworm's 6.1 on; bullseye's 5.10 cloud flavour leaves it out): from it
/// on, a kernel without kTLS is missing a piece the rule counts on, a `fail` naming it; before
/// it, a skip.
const KTLS_EXPECTED_SINCE: KernelVersion = KernelVersion::new(6, 1, 0);

/// Whether the running kernel is Debian's build (/proc/version names Debian's kernel team or
/// its package version), whose configuration [`KTLS_EXPECTED_SINCE`] speaks for.
fn debian_build() -> bool {
    std::fs::read_to_string("/proc/version")
        .is_ok_and(|v| v.contains("debian-kernel@lists.debian.org") || v.contains(" Debian "))
}

/// What an ENOENT from setting kTLS up means on `kernel` (`debian`: a Debian build): `what`
/// failed (the ULP, or SOL_TLS when the cipher is missing), `ulps` is tcp_available_ulp,
/// `host_missing` the modules the host asked this kernel for and did not find. A skip where
/// the rule does not count on kTLS (before 6.1, or a kernel Debian did not build), else
/// `data=absent` naming the missing piece, which the rule judges `fail`.
fn no_ktls(
    kernel: KernelVersion,
    debian: bool,
    what: &str,
    ulps: &str,
    host_missing: &[String],
) -> Result<Observation, Stop> {
    let piece = if what.contains("SOL_TLS") {
        "kernel TLS is here but its cipher is not: the kernel found no gcm(aes) implementation \
         to instantiate (gcm, ctr, ghash_generic)"
            .to_string()
    } else {
        format!(
            "no \"tls\" ULP (this kernel has [{}]): tls.ko not loaded or CONFIG_TLS unset",
            ulps.trim()
        )
    };
    let host = if host_missing.is_empty() {
        String::new()
    } else {
        format!(
            "; the host found no {} module for this kernel, nor built in",
            host_missing.join(", ")
        )
    };
    let why = format!("{what} failed with ENOENT: {piece}{host}");
    if kernel < KTLS_EXPECTED_SINCE {
        return Err(skip(format!("no kernel TLS here: {why}")));
    }
    if !debian {
        return Err(skip(format!(
            "no kernel TLS here, and this is not a Debian build, whose configuration the rule \
             speaks for: {why}"
        )));
    }
    Ok(Observation::saw(
        "data=absent",
        format!("kernel TLS is expected from {KTLS_EXPECTED_SINCE} on and missing: {why}"),
    ))
}

fn ktls_sendfile(ctx: &Ctx) -> Result<Observation, Stop> {
    const LEN: usize = 50_000;
    let (src, data) = common::source(ctx, "net.ktls_sendfile", LEN, 0x2e77)?;
    let (tx, raw_rx) = sys::tcp_pair()?;
    if let Err((e, what)) = ktls(&tx, TLS_TX) {
        if e == Errno::ENOENT {
            let ulps =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
            let missing = common::host_missing_modules();
            return no_ktls(ctx.kernel, debian_build(), what, &ulps, &missing);
        }
        return Ok(common::errno(e, what));
    }
    let reader = sys::drain(raw_rx);
    let mut sent = 0;
    while sent < LEN {
        match nix::sys::sendfile::sendfile(tx.as_fd(), src.as_fd(), None, LEN - sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) => return Ok(common::errno_after(sent, e)),
        }
    }
    tx.shutdown(std::net::Shutdown::Write)?;
    let raw = reader.join().map_err(|_| broken("reader thread"))??;
    let (records, largest) = match tls_records(&raw) {
        Ok(r) => r,
        Err(why) => return Ok(Observation::saw("data=unframed", why)),
    };
    // A second pair decrypts: the raw records written into a socket with TLS_RX.
    let (raw_tx, plain_rx) = sys::tcp_pair()?;
    if let Err((e, what)) = ktls(&plain_rx, TLS_RX) {
        return Err(broken(format!("TLS_RX on the receiver: {what}: {e}")));
    }
    let decrypter = sys::drain(plain_rx);
    (&raw_tx).write_all(&raw)?;
    raw_tx.shutdown(std::net::Shutdown::Write)?;
    let plain = match decrypter.join().map_err(|_| broken("decrypting thread"))? {
        Ok(p) => p,
        Err(e) => {
            return Ok(Observation::saw(
                "data=undecryptable",
                format!("the TLS_RX receiver failed: {}", sys::io_error_name(&e)),
            ))
        }
    };
    let word = match sys::first_difference(&plain, &data) {
        None if sent == LEN => "ok",
        None => "short",
        Some(_) => "corrupt",
    };
    let measures = vec![
        Measure::new("records", records as f64, "count"),
        Measure::new("max_record", largest as f64, "bytes"),
    ];
    Ok(Observation::saw(
        format!("data={word} records={records} max_record={largest}"),
        format!(
            "sendfile moved {sent} of {LEN} bytes into {} bytes of TLS records, decrypted by \
             TLS_RX into {} bytes",
            raw.len(),
            plain.len()
        ),
    )
    .measured(measures))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Injected fault: a 6.1 kernel whose "tls" ULP is missing (tls.ko not found by the host)
    /// is a failure naming the module, never a skip; on 5.10, where the rule does not count on
    /// kTLS, a skip; a missing cipher names it too.
    #[test]
    fn missing_ktls_fails_where_the_rule_counts_on_it() {
        let c = CHECKS.iter().find(|c| c.id == "net.ktls_sendfile").unwrap();
        let on = |kernel| crate::checks::Where {
            kernel,
            fs: Some("ext4"),
            logical_block_size: Some(4096),
            page_size: 4096,
        };
        let k6_1 = KernelVersion::new(6, 1, 0);
        let seen = no_ktls(
            k6_1,
            true,
            "setsockopt(TCP_ULP, \"tls\")",
            "espintcp mptcp\n",
            &["tls".into()],
        )
        .expect("an observation, not a skip");
        assert_eq!(seen.value, "data=absent");
        for piece in [
            "tls.ko",
            "CONFIG_TLS",
            "the host found no tls module",
            "[espintcp mptcp]",
        ] {
            assert!(seen.detail.contains(piece), "{piece}: {seen:?}");
        }
        assert_eq!(
            c.rule.judge(&on(k6_1), &seen.value).outcome,
            zcmatrix_protocol::Outcome::Fail
        );
        let cipher = no_ktls(k6_1, true, "setsockopt(SOL_TLS)", "tls", &[]).unwrap();
        assert!(cipher.detail.contains("gcm(aes)"), "{cipher:?}");
        assert!(matches!(
            no_ktls(KernelVersion::new(5, 10, 0), true, "setsockopt(TCP_ULP, \"tls\")", "", &["tls".into()]),
            Err(Stop::Skip(why)) if why.contains("tls.ko")
        ));
        // A kernel Debian did not build (this host's, a bzImage of one's own): its config is
        // its own, so a skip.
        assert!(matches!(
            no_ktls(k6_1, false, "setsockopt(TCP_ULP, \"tls\")", "", &[]),
            Err(Stop::Skip(why)) if why.contains("not a Debian build")
        ));
    }
    #[test]
    fn tls_records_are_counted_and_sized() {
        let mut raw = vec![23, 3, 3, 0, 24 + 100];
        raw.extend(vec![0; 124]);
        raw.extend([23, 3, 3, 0, 24 + 10]);
        raw.extend(vec![0; 34]);
        assert_eq!(tls_records(&raw), Ok((2, 100)));
        assert!(tls_records(&[22, 3, 3, 0, 0]).is_err());
        assert!(tls_records(&[23, 3]).is_err());
    }
}
