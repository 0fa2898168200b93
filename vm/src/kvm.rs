//! Whether KVM really runs a vCPU here, decided in milliseconds.
//!
//! /dev/kvm opening is no proof: under nested virtualisation that does not work, the device opens
//! fine and then QEMU aborts ("failed to set MSR") or a guest stays silent. Waiting for a whole
//! guest to stay silent cost about 8 s per run. Instead, [`probe`] builds a VM with one vCPU,
//! hands it the CPUID and MSRs QEMU would set, runs two bytes of real-mode code (`out`, `hlt`)
//! and checks that it exits where the code says. Any failure on the way means TCG.

use std::fmt;

use kvm_bindings::{kvm_msr_entry, kvm_userspace_memory_region, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};

/// Guest-physical address the code is loaded at (real mode, CS base 0).
const CODE_AT: u64 = 0x1000;
/// The port the code writes to, so that an exit proves the instructions were executed.
const PORT: u16 = 0x3f8;
/// `mov al, 0x5a; out dx, al; hlt` with DX preset to [`PORT`].
const CODE: [u8; 5] = [0xb0, 0x5a, 0xee, 0xf4, 0xf4];

/// Why KVM cannot be used, in a form for the user's note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn step<T, E: fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, Unusable> {
    r.map_err(|e| Unusable(format!("{what}: {e}")))
}

/// Runs a tiny guest on one vCPU. `Ok` only if it executed the code and halted.
pub fn probe() -> Result<(), Unusable> {
    let kvm = step("opening /dev/kvm", Kvm::new())?;
    let vm = step("KVM_CREATE_VM", kvm.create_vm())?;

    let size = 0x10000usize;
    // SAFETY: an anonymous private mapping of `size` bytes with no address hint; the result is
    // checked against MAP_FAILED before use and unmapped by `Mapping`'s drop.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(Unusable(format!(
            "mmap: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mapping = Mapping(mem, size);
    // SAFETY: `CODE` fits well inside the fresh `size`-byte mapping at offset CODE_AT.
    unsafe {
        std::ptr::copy_nonoverlapping(
            CODE.as_ptr(),
            (mapping.0 as *mut u8).add(CODE_AT as usize),
            CODE.len(),
        );
    }
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: size as u64,
        userspace_addr: mapping.0 as u64,
        flags: 0,
    };
    // SAFETY: the region is our own mapping of `size` bytes, which outlives the VM: the VM (and
    // its vCPU) are dropped explicitly below before the mapping is.
    step("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })?;
    let mut vcpu = step("KVM_CREATE_VCPU", vm.create_vcpu(0))?;

    // What QEMU does next, and where nested set-ups break: the host's CPUID and its MSRs.
    let cpuid = step(
        "KVM_GET_SUPPORTED_CPUID",
        kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES),
    )?;
    step("KVM_SET_CPUID2", vcpu.set_cpuid2(&cpuid))?;
    set_msrs(&kvm, &vcpu)?;

    let mut sregs = step("KVM_GET_SREGS", vcpu.get_sregs())?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    step("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    let mut regs = step("KVM_GET_REGS", vcpu.get_regs())?;
    regs.rip = CODE_AT;
    regs.rdx = PORT as u64;
    regs.rflags = 2;
    step("KVM_SET_REGS", vcpu.set_regs(&regs))?;

    let verdict = (|| {
        let mut wrote = false;
        // A handful of exits at most: the port write, then the halt.
        for _ in 0..4 {
            match step("KVM_RUN", vcpu.run())? {
                VcpuExit::IoOut(port, data) if port == PORT && data == [0x5a] => wrote = true,
                VcpuExit::Hlt if wrote => return Ok(()),
                other => return Err(Unusable(format!("unexpected vCPU exit {other:?}"))),
            }
        }
        Err(Unusable("the vCPU did not halt".into()))
    })();
    drop(vcpu);
    drop(vm);
    drop(mapping);
    verdict
}

/// Gives the vCPU the feature MSRs (IA32_ARCH_CAPABILITIES and the like) with the values KVM
/// itself reports as supported: what QEMU does at start-up for `-cpu host`, and the step that
/// aborts it ("failed to set MSR 0x10a") where nested virtualisation is broken. On a working
/// host KVM accepts its own values.
fn set_msrs(kvm: &Kvm, vcpu: &kvm_ioctls::VcpuFd) -> Result<(), Unusable> {
    let list = step(
        "KVM_GET_MSR_FEATURE_INDEX_LIST",
        kvm.get_msr_feature_index_list(),
    )?;
    let entries: Vec<kvm_msr_entry> = list
        .as_slice()
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let mut msrs = step("building the MSR list", Msrs::from_entries(&entries))?;
    let got = step("KVM_GET_MSRS (features)", kvm.get_msrs(&mut msrs))?;
    let values: Vec<kvm_msr_entry> = msrs.as_slice()[..got].to_vec();
    let back = step("building the MSR list", Msrs::from_entries(&values))?;
    let set = step("KVM_SET_MSRS", vcpu.set_msrs(&back))?;
    if set != values.len() {
        let e = values[set];
        return Err(Unusable(format!(
            "KVM refuses MSR {:#x} = {:#x} it reports as supported (nested virtualisation?)",
            e.index, e.data
        )));
    }
    Ok(())
}

struct Mapping(*mut libc::c_void, usize);

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are exactly what mmap returned and was given; nothing
        // refers to the mapping any more (the VM using it was dropped first).
        unsafe {
            libc::munmap(self.0, self.1);
        }
    }
}
