//! Network interface ioctls: bringing an interface up, its IPv4 address, its features.

use super::abi;

/// An `ifreq` naming interface `name`, for the SIOC* ioctls.
fn ifreq(name: &str) -> std::io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // SAFETY: ifreq is plain data; zeroed is a valid starting value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// A datagram socket to hand interface ioctls to.
fn ioctl_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
}

/// Marks interface `name` up and running.
pub fn if_up(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: a valid socket and an ifreq naming the interface, for these two ioctls. The
    // request's C type is unsigned long with glibc and int with musl (the arm64 harness): `as _`.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets an IPv4 address of interface `name` with `request` (SIOCSIFADDR, SIOCSIFNETMASK).
pub fn set_ipv4(
    name: &str,
    request: libc::c_ulong,
    addr: std::net::Ipv4Addr,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits the ifreq union's sockaddr, which the kernel reads as one.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            (&mut req.ifr_ifru as *mut libc::__c_anonymous_ifr_ifru).cast::<u8>(),
            std::mem::size_of::<libc::sockaddr_in>(),
        );
        if libc::ioctl(sock.as_raw_fd(), request as _, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether interface `name` does scatter-gather (ETHTOOL_GSG): the device feature zero-copy
/// transmit builds on.
pub fn if_scatter_gather(name: &str) -> std::io::Result<bool> {
    use abi::{EthtoolValue, ETHTOOL_GSG};
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GSG,
        data: 0,
    };
    req.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    // SAFETY: ifr_data points at an ethtool_value that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v.data != 0)
}
