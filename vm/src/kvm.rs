//! Whether KVM really runs a vCPU here, decided in milliseconds.
//!
//! /dev/kvm opening is no proof: under nested virtualisation that does not work, the device opens
//! fine and then QEMU aborts ("failed to set MSR") or a guest stays silent. [`probe`] builds a
//! VM with one vCPU, hands it the CPUID and MSRs QEMU would set, and runs what a Linux guest's
//! first instructions need, from real mode as after reset: `lgdt` and protected mode, long mode
//! with paging (four-level page tables identity-mapping the code, CR0/CR4/EFER set by the code as
//! the kernel's `startup_32` does), a far jump into 64-bit code, descriptor tables and segments
//! reloaded as `startup_64` does, `cpuid`, a `wrmsr`, a store through the page tables, a
//! breakpoint (`int3`) handled through the IDT and returned from by `iretq`, a port write and
//! `hlt`; it checks that the vCPU exits where the code says, with the registers and memory the
//! code left. Any failure on the way means TCG. It takes about a millisecond.
//!
//! Passing is necessary, not sufficient: a nested KVM that runs this and still not a whole
//! kernel exists (see `crate::accel`, whose run-time watch is the final proof).

use std::fmt;

use kvm_bindings::{kvm_msr_entry, kvm_userspace_memory_region, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};

/// The guest's memory: 64 KiB from guest-physical 0, holding the GDT, the page tables, the code
/// and a data word.
const MEM_SIZE: usize = 0x10000;
/// The GDT: null, a 64-bit code segment (selector 0x8), a flat data segment (selector 0x10), a
/// flat 32-bit code segment (selector 0x18): the descriptors of the kernel's own boot GDT.
const GDT_AT: u64 = 0x500;
const GDT: [u64; 4] = [
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_9b00_0000_ffff,
];
const CODE64_SEL: u16 = 0x8;
const DATA_SEL: u16 = 0x10;
const CODE32_SEL: u16 = 0x18;
/// The GDT register's image `lgdt` loads: limit, then base.
const GDTR_AT: u64 = 0x600;
/// The IDT register's image, and the IDT: one 64-bit interrupt gate, for the breakpoint (#BP,
/// vector 3) the code raises, to [`HANDLER_AT`].
const IDTR_AT: u64 = 0x610;
const IDT_AT: u64 = 0x700;
const BP_VECTOR: u64 = 3;
/// The breakpoint handler: counts in R8, returns with `iretq`.
const HANDLER_AT: u64 = 0x1200;
#[rustfmt::skip]
const HANDLER: &[u8] = &[
    0x49, 0xff, 0xc0,                               // inc r8
    0x48, 0xcf,                                     // iretq
];
/// Where the real-mode code is loaded (CS base 0), and the 32-bit code it jumps to.
const CODE16_AT: u64 = 0xe00;
/// Where the 32-bit code is loaded, and the 64-bit code it jumps to (their virtual addresses
/// too: the mapping is the identity).
const CODE32_AT: u64 = 0x1000;
const CODE64_AT: u64 = 0x1100;
/// The page tables: PML4 → PDPT → PD, whose first entry maps the first 2 MiB as one large page.
const PML4_AT: u64 = 0x2000;
const PDPT_AT: u64 = 0x3000;
const PD_AT: u64 = 0x4000;
/// The word the code stores through the page tables, and what it stores.
const DATA_AT: u64 = 0x5000;
const DATA: u32 = 0xfeed_face;
/// The port the code writes to, so that an exit proves the instructions were executed.
const PORT: u16 = 0x3f8;
/// The MSR the code writes (IA32_FS_BASE, which every 64-bit kernel writes) and the value.
const MSR_FS_BASE: u32 = 0xc000_0100;
const FS_BASE: u32 = 0x1234;

/// Page table entry flags: present, writable; `PS` makes a PD entry a 2 MiB page.
const PRESENT_RW: u64 = 0b11;
const PS: u64 = 1 << 7;
/// EFER's "long mode active", which the CPU sets when paging is turned on with LME set.
const EFER_LMA: u64 = 1 << 10;

/// Byte `i` (little-endian) of `x`, for the immediates of the code below.
const fn b(x: u64, i: u32) -> u8 {
    (x >> (8 * i)) as u8
}

/// Real-mode code doing what the kernel's setup code does to enter protected mode (after its
/// BIOS calls, where "Probing EDD" is printed): `lgdt`, CR0.PE, a far jump to a 32-bit code
/// segment.
#[rustfmt::skip]
const CODE16: &[u8] = &[
    0xfa,                                           // cli
    0x0f, 0x01, 0x16, b(GDTR_AT, 0), b(GDTR_AT, 1), // lgdt [GDTR_AT]
    0x0f, 0x20, 0xc0,                               // mov eax, cr0
    0x66, 0x83, 0xc8, 0x01,                         // or eax, PE
    0x0f, 0x22, 0xc0,                               // mov cr0, eax
    0x66, 0xea, b(CODE32_AT, 0), b(CODE32_AT, 1), b(CODE32_AT, 2), b(CODE32_AT, 3), // jmp far
    b(CODE32_SEL as u64, 0), b(CODE32_SEL as u64, 1),                              //   CODE32_SEL:CODE32_AT
];

/// 32-bit protected-mode code: flat data segments, then what the kernel's `startup_32` does to reach long mode: CR4.PAE,
/// CR3 to the page tables, EFER.LME by `rdmsr`/`wrmsr`, CR0.PG, and a far jump to the 64-bit
/// code segment.
#[rustfmt::skip]
const CODE32: &[u8] = &[
    0xb8, b(DATA_SEL as u64, 0), b(DATA_SEL as u64, 1), 0x00, 0x00, // mov eax, DATA_SEL
    0x8e, 0xd8,                                     // mov ds, ax
    0x8e, 0xc0,                                     // mov es, ax
    0x8e, 0xd0,                                     // mov ss, ax
    0x0f, 0x20, 0xe0,                               // mov eax, cr4
    0x83, 0xc8, 0x20,                               // or eax, PAE
    0x0f, 0x22, 0xe0,                               // mov cr4, eax
    0xb8, b(PML4_AT, 0), b(PML4_AT, 1), b(PML4_AT, 2), b(PML4_AT, 3), // mov eax, PML4_AT
    0x0f, 0x22, 0xd8,                               // mov cr3, eax
    0xb9, 0x80, 0x00, 0x00, 0xc0,                   // mov ecx, IA32_EFER
    0x0f, 0x32,                                     // rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00,                   // or eax, LME
    0x0f, 0x30,                                     // wrmsr
    0x0f, 0x20, 0xc0,                               // mov eax, cr0
    0x0d, 0x00, 0x00, 0x00, 0x80,                   // or eax, PG
    0x0f, 0x22, 0xc0,                               // mov cr0, eax
    0xea, b(CODE64_AT, 0), b(CODE64_AT, 1), b(CODE64_AT, 2), b(CODE64_AT, 3), // jmp far
    b(CODE64_SEL as u64, 0), b(CODE64_SEL as u64, 1),                        //   CODE64_SEL:CODE64_AT
];

/// 64-bit code: what the kernel's `startup_64` does first (`lgdt`, `lidt`, data segments
/// reloaded, CS reloaded by `lretq`), `cpuid` leaf 0 (the vendor lands in EBX), `wrmsr`
/// IA32_FS_BASE, a store through the page tables, `int3` handled through the IDT and returned
/// from by `iretq` (every x86 kernel does this at boot: `int3_selftest()`, arch/x86/kernel/
/// alternative.c; PVM's nested KVM fails exactly here, "kvm-pvm: INTERNAL_ERROR in batch emul"),
/// `out` to [`PORT`], `hlt`.
#[rustfmt::skip]
const CODE64: &[u8] = &[
    0x0f, 0x01, 0x14, 0x25, b(GDTR_AT, 0), b(GDTR_AT, 1), 0, 0, // lgdt [GDTR_AT]
    0x0f, 0x01, 0x1c, 0x25, b(IDTR_AT, 0), b(IDTR_AT, 1), 0, 0, // lidt [IDTR_AT]
    0xb8, b(DATA_SEL as u64, 0), b(DATA_SEL as u64, 1), 0x00, 0x00, // mov eax, DATA_SEL
    0x8e, 0xd8,                                     // mov ds, ax
    0x8e, 0xc0,                                     // mov es, ax
    0x8e, 0xd0,                                     // mov ss, ax
    0x6a, b(CODE64_SEL as u64, 0),                  // push CODE64_SEL
    0x48, 0x8d, 0x05, 0x03, 0x00, 0x00, 0x00,       // lea rax, [rip + 3]: after lretq
    0x50,                                           // push rax
    0x48, 0xcb,                                     // lretq
    0x4d, 0x31, 0xc0,                               // xor r8, r8
    0x31, 0xc0,                                     // xor eax, eax
    0x31, 0xc9,                                     // xor ecx, ecx
    0x0f, 0xa2,                                     // cpuid
    0xb9, b(MSR_FS_BASE as u64, 0), b(MSR_FS_BASE as u64, 1), // mov ecx, MSR_FS_BASE
    b(MSR_FS_BASE as u64, 2), b(MSR_FS_BASE as u64, 3),
    0xb8, b(FS_BASE as u64, 0), b(FS_BASE as u64, 1), // mov eax, FS_BASE
    b(FS_BASE as u64, 2), b(FS_BASE as u64, 3),
    0x31, 0xd2,                                     // xor edx, edx
    0x0f, 0x30,                                     // wrmsr
    0xc7, 0x04, 0x25, b(DATA_AT, 0), b(DATA_AT, 1), b(DATA_AT, 2), b(DATA_AT, 3), // mov dword
    b(DATA as u64, 0), b(DATA as u64, 1), b(DATA as u64, 2), b(DATA as u64, 3),   //   [DATA_AT], DATA
    0xcc,                                           // int3
    0x66, 0xba, b(PORT as u64, 0), b(PORT as u64, 1), // mov dx, PORT
    0xb0, 0x5a,                                     // mov al, 0x5a
    0xee,                                           // out dx, al
    0xf4,                                           // hlt
];

/// Where the breakpoint is: `int3` comes before the last 8 bytes of [`CODE64`] (`mov dx`, `mov al`,
/// `out`, `hlt`).
const INT3_AT: u64 = CODE64_AT + CODE64.len() as u64 - 9;

/// The step of the probe's code at `rip`, for the reason a probe fails.
fn whereabouts(rip: u64) -> &'static str {
    let within = |at: u64, code: &[u8]| (at..=at + code.len() as u64).contains(&rip);
    if rip == INT3_AT || rip == INT3_AT + 1 {
        "the breakpoint (int3) every kernel raises at boot, delivered through the IDT"
    } else if within(HANDLER_AT, HANDLER) {
        "in the breakpoint handler (iretq)"
    } else if within(CODE64_AT, CODE64) {
        "in the 64-bit code"
    } else if within(CODE32_AT, CODE32) {
        "in the 32-bit code (on the way to long mode)"
    } else if within(CODE16_AT, CODE16) {
        "in the real-mode code (on the way to protected mode)"
    } else {
        "outside the probe's code"
    }
}

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

/// A 64-bit interrupt gate to `handler` in the 64-bit code segment: present, ring 0.
fn gate(handler: u64) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    g[2..4].copy_from_slice(&CODE64_SEL.to_le_bytes());
    g[5] = 0x8e;
    g[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    g
}

/// The guest's memory image: descriptor tables, page tables, code.
fn image() -> Vec<u8> {
    let mut mem = vec![0u8; MEM_SIZE];
    let mut put = |at: u64, bytes: &[u8]| {
        mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    };
    for (i, d) in GDT.iter().enumerate() {
        put(GDT_AT + 8 * i as u64, &d.to_le_bytes());
    }
    put(PML4_AT, &(PDPT_AT | PRESENT_RW).to_le_bytes());
    put(PDPT_AT, &(PD_AT | PRESENT_RW).to_le_bytes());
    put(PD_AT, &(PRESENT_RW | PS).to_le_bytes());
    let limit = (8 * GDT.len() - 1) as u16;
    put(GDTR_AT, &limit.to_le_bytes());
    put(GDTR_AT + 2, &GDT_AT.to_le_bytes());
    put(CODE16_AT, CODE16);
    put(CODE32_AT, CODE32);
    put(CODE64_AT, CODE64);
    put(HANDLER_AT, HANDLER);
    let idt_limit = (16 * (BP_VECTOR + 1) - 1) as u16;
    put(IDTR_AT, &idt_limit.to_le_bytes());
    put(IDTR_AT + 2, &IDT_AT.to_le_bytes());
    put(IDT_AT + 16 * BP_VECTOR, &gate(HANDLER_AT));
    mem
}

/// Runs a tiny 64-bit guest on one vCPU. `Ok` only if it executed the code and halted with the
/// state the code leaves.
pub fn probe() -> Result<(), Unusable> {
    let kvm = step("opening /dev/kvm", Kvm::new())?;
    let vm = step("KVM_CREATE_VM", kvm.create_vm())?;

    // SAFETY: an anonymous private mapping of MEM_SIZE bytes with no address hint; the result
    // is checked against MAP_FAILED before use and unmapped by `Mapping`'s drop.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM_SIZE,
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
    let mapping = Mapping(mem, MEM_SIZE);
    let img = image();
    // SAFETY: the image is exactly MEM_SIZE bytes, the size of the fresh mapping.
    unsafe {
        std::ptr::copy_nonoverlapping(img.as_ptr(), mapping.0 as *mut u8, MEM_SIZE);
    }
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mapping.0 as u64,
        flags: 0,
    };
    // SAFETY: the region is our own mapping of MEM_SIZE bytes, which outlives the VM: the VM
    // (and its vCPU) are dropped explicitly below before the mapping is.
    step("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })?;
    let verdict = (|| {
        let mut vcpu = step("KVM_CREATE_VCPU", vm.create_vcpu(0))?;
        // What QEMU does next, and where nested set-ups break: the host's CPUID and its MSRs.
        let cpuid = step(
            "KVM_GET_SUPPORTED_CPUID",
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES),
        )?;
        step("KVM_SET_CPUID2", vcpu.set_cpuid2(&cpuid))?;
        set_msrs(&kvm, &vcpu)?;
        let vendor = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0)
            .map(|e| e.ebx);

        // Real mode as after reset, with CS at 0: the code goes on to protected mode, then to
        // long mode with paging, itself.
        let mut sregs = step("KVM_GET_SREGS", vcpu.get_sregs())?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        step("KVM_SET_SREGS (real mode)", vcpu.set_sregs(&sregs))?;
        let mut regs = step("KVM_GET_REGS", vcpu.get_regs())?;
        regs.rip = CODE16_AT;
        regs.rsp = MEM_SIZE as u64;
        regs.rflags = 2;
        step("KVM_SET_REGS", vcpu.set_regs(&regs))?;

        let mut wrote = false;
        // A handful of exits at most: the port write, then the halt.
        let mut halted = false;
        for _ in 0..4 {
            match step("KVM_RUN", vcpu.run())? {
                VcpuExit::IoOut(port, data) if port == PORT && data == [0x5a] => wrote = true,
                VcpuExit::Hlt if wrote => {
                    halted = true;
                    break;
                }
                other => {
                    let other = format!("{other:?}");
                    let rip = vcpu.get_regs().map_or(0, |r| r.rip);
                    return Err(Unusable(format!(
                        "the probe's vCPU stopped with {other} at {rip:#x}, {}",
                        whereabouts(rip)
                    )));
                }
            }
        }
        if !halted {
            return Err(Unusable("the vCPU did not halt".into()));
        }
        let regs = step("KVM_GET_REGS", vcpu.get_regs())?;
        let sregs = step("KVM_GET_SREGS", vcpu.get_sregs())?;
        let end = CODE64_AT + CODE64.len() as u64;
        if regs.rip != end {
            return Err(Unusable(format!(
                "the vCPU halted at {:#x}, not at {end:#x}",
                regs.rip
            )));
        }
        if vendor.is_some_and(|v| v != regs.rbx as u32) {
            return Err(Unusable(format!(
                "cpuid in the guest gave vendor {:#x}, not {:#x}",
                regs.rbx as u32,
                vendor.unwrap_or_default()
            )));
        }
        if regs.r8 != 1 {
            return Err(Unusable(format!(
                "the breakpoint handler ran {} times, not once",
                regs.r8
            )));
        }
        if sregs.efer & EFER_LMA == 0 || sregs.cs.l != 1 {
            return Err(Unusable(format!(
                "the vCPU halted outside 64-bit mode (EFER {:#x}, CS.L {})",
                sregs.efer, sregs.cs.l
            )));
        }
        if sregs.fs.base != u64::from(FS_BASE) {
            return Err(Unusable(format!(
                "wrmsr IA32_FS_BASE left FS base {:#x}, not {FS_BASE:#x}",
                sregs.fs.base
            )));
        }
        Ok(())
    })();
    // SAFETY: DATA_AT + 4 is within the MEM_SIZE-byte mapping; the vCPU has stopped (run
    // returned), so nothing writes the word while it is read.
    let stored = unsafe {
        std::ptr::read_unaligned((mapping.0 as *const u8).add(DATA_AT as usize) as *const u32)
    };
    drop(vm);
    drop(mapping);
    verdict?;
    if stored != DATA {
        return Err(Unusable(format!(
            "the store through the page tables left {stored:#x}, not {DATA:#x}"
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_segment;

    /// A segment of the GDT above, decoded from its descriptor.
    fn segment(selector: u16) -> kvm_segment {
        let d = GDT[usize::from(selector) / 8];
        kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector,
            type_: ((d >> 40) & 0xf) as u8,
            present: ((d >> 47) & 1) as u8,
            dpl: ((d >> 45) & 3) as u8,
            db: ((d >> 54) & 1) as u8,
            s: ((d >> 44) & 1) as u8,
            l: ((d >> 53) & 1) as u8,
            g: ((d >> 55) & 1) as u8,
            ..Default::default()
        }
    }

    #[test]
    fn the_image_maps_the_code_and_the_data_word_through_the_page_tables() {
        let mem = image();
        let word =
            |at: u64| u64::from_le_bytes(mem[at as usize..at as usize + 8].try_into().unwrap());
        // Walk the tables as the MMU would for the code's and the data word's addresses.
        for va in [CODE16_AT, CODE32_AT, CODE64_AT, HANDLER_AT, DATA_AT] {
            let pml4e = word(PML4_AT + 8 * ((va >> 39) & 511));
            let pdpte = word((pml4e & !0xfff) + 8 * ((va >> 30) & 511));
            let pde = word((pdpte & !0xfff) + 8 * ((va >> 21) & 511));
            assert_eq!(pml4e & PRESENT_RW, PRESENT_RW);
            assert_eq!(pdpte & PRESENT_RW, PRESENT_RW);
            assert_eq!(pde & (PRESENT_RW | PS), PRESENT_RW | PS);
            let pa = (pde & !0x1f_ffff) + (va & 0x1f_ffff);
            assert_eq!(pa, va, "identity mapping");
        }
        assert_eq!(&mem[CODE16_AT as usize..][..CODE16.len()], CODE16);
        assert!(CODE16_AT + (CODE16.len() as u64) <= CODE32_AT);
        assert_eq!(&mem[CODE32_AT as usize..][..CODE32.len()], CODE32);
        assert!(CODE64_AT + (CODE64.len() as u64) <= HANDLER_AT);
        assert_eq!(mem[INT3_AT as usize], 0xcc, "INT3_AT is the int3");
        assert!(whereabouts(INT3_AT + 1).contains("int3"));
        assert!(whereabouts(CODE32_AT + 1).contains("32-bit"));
        assert_eq!(&mem[HANDLER_AT as usize..][..HANDLER.len()], HANDLER);
        // The breakpoint's gate leads to the handler in the 64-bit code segment.
        let idtr = &mem[IDTR_AT as usize..][..10];
        let idt = u64::from_le_bytes(idtr[2..10].try_into().unwrap());
        assert_eq!(idt, IDT_AT);
        assert!(u64::from(u16::from_le_bytes([idtr[0], idtr[1]])) >= 16 * BP_VECTOR + 15);
        let g = &mem[(IDT_AT + 16 * BP_VECTOR) as usize..][..16];
        let target = u64::from(u16::from_le_bytes([g[0], g[1]]))
            | u64::from(u16::from_le_bytes([g[6], g[7]])) << 16
            | u64::from(u32::from_le_bytes(g[8..12].try_into().unwrap())) << 32;
        assert_eq!(target, HANDLER_AT);
        assert_eq!(u16::from_le_bytes([g[2], g[3]]), CODE64_SEL);
        assert_eq!(g[5], 0x8e, "present, ring 0, 64-bit interrupt gate");
        assert_eq!(&mem[CODE64_AT as usize..][..CODE64.len()], CODE64);
        assert!(
            CODE32_AT + (CODE32.len() as u64) <= CODE64_AT,
            "the codes do not overlap"
        );
        // The codes' immediates are the constants the probe and its checks use.
        let code = [CODE32, CODE64].concat();
        let find = |needle: &[u8]| code.windows(needle.len()).any(|w| w == needle);
        assert!(find(&MSR_FS_BASE.to_le_bytes()));
        assert!(find(&DATA.to_le_bytes()));
        assert!(find(&(DATA_AT as u32).to_le_bytes()));
        assert!(find(&PORT.to_le_bytes()));
        assert!(find(&[0xb8, FS_BASE as u8, (FS_BASE >> 8) as u8, 0, 0]));
        assert!(find(
            &[0xb8]
                .iter()
                .chain(&(PML4_AT as u32).to_le_bytes())
                .copied()
                .collect::<Vec<_>>()
        ));
        let far = [
            &[0xea][..],
            &(CODE64_AT as u32).to_le_bytes(),
            &CODE64_SEL.to_le_bytes(),
        ]
        .concat();
        assert!(
            CODE32.ends_with(&far),
            "the far jump lands on the 64-bit code"
        );
        // The segments: a 64-bit (L) code segment, a 32-bit one (D), both present ring-0
        // execute/read.
        let (cs64, cs32) = (segment(CODE64_SEL), segment(CODE32_SEL));
        assert_eq!(
            (cs64.l, cs64.db, cs64.type_, cs64.present, cs64.dpl),
            (1, 0, 0xb, 1, 0)
        );
        assert_eq!(
            (cs32.l, cs32.db, cs32.type_, cs32.present, cs32.dpl),
            (0, 1, 0xb, 1, 0)
        );
        let ds = segment(DATA_SEL);
        assert_eq!((ds.type_, ds.db, ds.s, ds.g), (0x3, 1, 1, 1));
    }
}
