//! Small helpers the probes share: aligned buffers, test patterns, errno names, and the
//! syscalls and ioctls the probes make, one module per concern. Every helper is re-exported
//! here, so callers name it `sys::foo` whichever module holds it.

pub mod abi;

mod cache;
mod data;
mod errno;
mod files;
mod mem;
mod memstat;
mod net;
mod privilege;
mod transfer;
mod uring;

pub use cache::*;
pub use data::*;
pub use errno::*;
pub use files::*;
pub use mem::*;
pub use memstat::*;
pub use net::*;
pub use privilege::*;
pub use transfer::*;
pub use uring::*;
