//! zcmatrix host side. Knows kernels, modules, images, QEMU and the record stream; knows nothing
//! about individual checks (those live in the harness).

pub mod accel;
pub mod apt;
pub mod arch;
pub mod cache;
pub mod declared;
pub mod disk;
pub mod dtb;
pub mod guest;
pub mod guest_times;
pub mod initramfs;
pub mod kernel;
pub mod kvm;
pub mod kvm_verdict;
pub mod matrix;
pub mod modules;
pub mod netsink;
pub mod plan;
pub mod pmem;
pub mod qemu;
pub mod report;
pub mod shard;
pub mod stream;
pub mod tools;
pub mod user;
