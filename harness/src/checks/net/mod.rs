//! Zero-copy on sockets: MSG_ZEROCOPY on loopback and through the guest's virtio-net device,
//! TCP receive zero-copy (mmap of a TCP socket), io_uring's zero-copy send, sendfile into a
//! kernel-TLS socket, and sendfile/splice into the virtio-net socket. What goes through the NIC
//! is verified byte for byte by zcmatrix's host end (see [`zcmatrix_protocol::net`]); a native
//! run has no such NIC, and those checks skip saying so.
//!
//! One module per mechanism, each with its checks' declarations next to their probes;
//! [`sockets`] holds the socket helpers more than one of them uses.

use std::sync::LazyLock;

use super::Check;

mod ktls;
mod msg_zerocopy;
mod nic_file;
mod sockets;
mod uring_send_zc;
mod zerocopy_receive;

/// What the MSG_ZEROCOPY, TCP receive zero-copy and io_uring zero-copy sends move: 64 KiB.
const ZC_LEN: usize = 64 << 10;

/// The family's checks, in a stable order: each mechanism's, one after the other.
pub fn checks() -> &'static [Check] {
    static ALL: LazyLock<Vec<Check>> = LazyLock::new(|| {
        [
            msg_zerocopy::CHECKS,
            zerocopy_receive::CHECKS,
            uring_send_zc::CHECKS,
            ktls::CHECKS,
            nic_file::CHECKS,
        ]
        .concat()
    });
    &ALL
}
