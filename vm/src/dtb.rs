//! The device tree of an arm64 guest with DAX targets: the machine's own, plus their
//! persistent-memory regions.
//!
//! arm64 has no `memmap=`; its kernel learns of persistent memory from a device-tree node
//! `compatible = "pmem-region"` whose `reg` is the range (Documentation/devicetree/bindings/
//! pmem/pmem-region.yaml: one range a node; without `volatile` the region is persistent),
//! which `of_pmem` registers as a pmem region with struct pages ("libnvdimm: Add device-tree
//! based driver", 4.17). QEMU `virt` makes its device tree itself and has no option to add a
//! node, so the guest boots (`-dtb`) a copy of the machine's own tree, dumped by QEMU with the
//! same machine options (`-machine dumpdtb=`), with a `pmem@ADDR` node per region added at the
//! root. QEMU still writes `/memory`, `/chosen`'s `bootargs` and the initrd's place into a
//! given tree, so the copy needs nothing else. Read with the `fdt` crate, written with
//! rust-vmm's `vm-fdt`; cached by what it is made from (the QEMU binary, the machine options,
//! the regions), verified like every cache entry.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, ensure, Context};
use fdt::node::FdtNode;
use sha2::{Digest, Sha256};
use vm_fdt::{FdtReserveEntry, FdtWriter};

use crate::cache;
use crate::pmem::{Region, ARM_VIRT_RAM_BASE};
use crate::qemu::{self, GuestSpec};

/// The device tree `spec` boots with: `None` when it declares no region in one (every guest
/// but an arm64 one with DAX targets), else the cached copy of its machine's tree with the
/// regions (made now when missing).
pub fn for_guest(cache_dir: &Path, spec: &GuestSpec) -> anyhow::Result<Option<PathBuf>> {
    if spec.dt_pmem.is_empty() {
        return Ok(None);
    }
    let program = qemu::binary(spec.arch).0;
    let qemu = crate::tools::which(program).with_context(|| format!("{program} not found"))?;
    let out = cache_dir
        .join("dtb")
        .join(format!("virt-{}.dtb", key(&qemu, spec)?));
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    cache::file_entry(&out, |tmp| {
        let machine = dump(&qemu, spec)?;
        let tree = with_pmem(&machine, &spec.dt_pmem)
            .context("adding the persistent-memory regions to the machine's device tree")?;
        fs::write(tmp, tree)?;
        Ok(())
    })
    .map(Some)
}

/// What the tree is made from: the QEMU binary (a new QEMU may describe the machine
/// differently), its machine options and the regions.
fn key(qemu: &Path, spec: &GuestSpec) -> anyhow::Result<String> {
    let meta = fs::metadata(qemu).with_context(|| format!("reading {}", qemu.display()))?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(qemu.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.as_nanos().to_le_bytes());
    for a in qemu::machine_args(spec) {
        h.update(a.as_bytes());
        h.update([0]);
    }
    for r in &spec.dt_pmem {
        h.update(r.start.to_le_bytes());
        h.update(r.bytes.to_le_bytes());
    }
    Ok(hex::encode(h.finalize())[..16].to_string())
}

/// The machine's own device tree, as QEMU writes it for these options.
fn dump(qemu: &Path, spec: &GuestSpec) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("machine.dtb");
    let run = Command::new(qemu)
        .args(qemu::dump_dtb_args(spec, &out))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", qemu.display()))?;
    ensure!(
        run.status.success() && out.is_file(),
        "{} -machine dumpdtb= wrote no device tree ({}): {}",
        qemu.display(),
        run.status,
        String::from_utf8_lossy(&run.stderr).trim()
    );
    fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// `machine` (a flattened device tree) with one `pmem@ADDR` node a region added at its root,
/// everything else copied as it is (nodes, properties, memory reservations, boot CPU).
/// Refused when the tree's memory does not start at [`ARM_VIRT_RAM_BASE`], where the regions'
/// addresses were computed from.
pub fn with_pmem(machine: &[u8], regions: &[Region]) -> anyhow::Result<Vec<u8>> {
    let tree = fdt::Fdt::new(machine).map_err(|e| anyhow!("not a device tree: {e:?}"))?;
    let root = tree.find_node("/").context("the device tree has no root")?;
    let ram = tree
        .find_node("/memory")
        .and_then(|m| m.reg()?.next())
        .context("the device tree has no /memory")?;
    ensure!(
        ram.starting_address as u64 == ARM_VIRT_RAM_BASE,
        "the machine's RAM starts at {:#x}, not at {ARM_VIRT_RAM_BASE:#x}",
        ram.starting_address as u64
    );
    let reserved = tree
        .memory_reservations()
        .map(|r| FdtReserveEntry::new(r.address() as u64, r.size() as u64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fdt_error)?;
    let mut w = FdtWriter::new_with_mem_reserv(&reserved).map_err(fdt_error)?;
    w.set_boot_cpuid_phys(boot_cpuid(machine));
    let cells = root.cell_sizes();
    let top = w.begin_node("").map_err(fdt_error)?;
    copy_contents(&mut w, root)?;
    for r in regions {
        let node = w
            .begin_node(&format!("pmem@{:x}", r.start))
            .map_err(fdt_error)?;
        w.property_string("compatible", "pmem-region")
            .map_err(fdt_error)?;
        let mut reg = cells_of(r.start, cells.address_cells)?;
        reg.extend(cells_of(r.bytes, cells.size_cells)?);
        w.property_array_u32("reg", &reg).map_err(fdt_error)?;
        w.end_node(node).map_err(fdt_error)?;
    }
    w.end_node(top).map_err(fdt_error)?;
    w.finish().map_err(fdt_error)
}

/// A node's properties and, recursively, its children, into the open node of `w`.
fn copy_contents(w: &mut FdtWriter, node: FdtNode) -> anyhow::Result<()> {
    for p in node.properties() {
        w.property(p.name, p.value).map_err(fdt_error)?;
    }
    for child in node.children() {
        let n = w.begin_node(child.name).map_err(fdt_error)?;
        copy_contents(w, child)?;
        w.end_node(n).map_err(fdt_error)?;
    }
    Ok(())
}

/// The header's `boot_cpuid_phys` (devicetree specification 5.2: the seventh of its big-endian
/// 32-bit fields), which the `fdt` crate does not expose.
fn boot_cpuid(dtb: &[u8]) -> u32 {
    dtb.get(28..32)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `v` as `n` big-endian cells, most significant first (`#address-cells`, `#size-cells`).
fn cells_of(v: u64, n: usize) -> anyhow::Result<Vec<u32>> {
    match n {
        1 if v <= u64::from(u32::MAX) => Ok(vec![v as u32]),
        2 => Ok(vec![(v >> 32) as u32, v as u32]),
        _ => bail!("{v:#x} does not fit {n} cell(s)"),
    }
}

fn fdt_error(e: vm_fdt::Error) -> anyhow::Error {
    anyhow!("writing the device tree: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A small tree shaped like `virt`'s: 2-cell addresses, a memory node at the RAM base, a
    /// nested node, an empty property, a phandle and a memory reservation.
    fn machine() -> Vec<u8> {
        let mut w =
            FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0x1000, 0x2000).unwrap()])
                .unwrap();
        w.set_boot_cpuid_phys(3);
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 1280 * MIB])
            .unwrap();
        w.end_node(mem).unwrap();
        let intc = w.begin_node("intc@8000000").unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_phandle(0x8002).unwrap();
        let its = w.begin_node("v2m@8020000").unwrap();
        w.property_string("compatible", "arm,gic-v2m-frame")
            .unwrap();
        w.end_node(its).unwrap();
        w.end_node(intc).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// A node's path and its properties (name, value).
    type Node = (String, Vec<(String, Vec<u8>)>);

    /// Every node by path with its properties, for comparing trees.
    fn flatten(dtb: &[u8]) -> Vec<Node> {
        fn walk(n: FdtNode, path: String, out: &mut Vec<Node>) {
            let props = n
                .properties()
                .map(|p| (p.name.to_string(), p.value.to_vec()))
                .collect();
            out.push((path.clone(), props));
            for c in n.children() {
                walk(c, format!("{path}/{}", c.name), out);
            }
        }
        let t = fdt::Fdt::new(dtb).unwrap();
        let mut out = Vec::new();
        walk(t.find_node("/").unwrap(), String::new(), &mut out);
        out
    }

    #[test]
    fn each_region_becomes_a_pmem_region_node_and_the_rest_is_copied() {
        let base = machine();
        let regions = [
            Region {
                offset: 512 * MIB,
                start: 0x6000_0000,
                bytes: 320 * MIB,
            },
            Region {
                offset: 960 * MIB,
                start: 0x7c00_0000,
                bytes: 320 * MIB,
            },
        ];
        let out = with_pmem(&base, &regions).unwrap();
        let (before, after) = (flatten(&base), flatten(&out));
        assert_eq!(after[..before.len()], before[..]);
        let added: Vec<_> = after[before.len()..].to_vec();
        let node = |name: &str, reg: [u32; 4]| {
            (
                format!("/{name}"),
                vec![
                    ("compatible".to_string(), b"pmem-region\0".to_vec()),
                    (
                        "reg".to_string(),
                        reg.iter().flat_map(|c| c.to_be_bytes()).collect(),
                    ),
                ],
            )
        };
        assert_eq!(
            added,
            [
                node("pmem@60000000", [0, 0x6000_0000, 0, 0x1400_0000]),
                node("pmem@7c000000", [0, 0x7c00_0000, 0, 0x1400_0000]),
            ]
        );
        let t = fdt::Fdt::new(&out).unwrap();
        let rsv: Vec<_> = t
            .memory_reservations()
            .map(|r| (r.address() as u64, r.size()))
            .collect();
        assert_eq!(rsv, [(0x1000, 0x2000)]);
        assert_eq!(boot_cpuid(&out), 3);
        assert_eq!(
            t.find_compatible(&["pmem-region"]).unwrap().name,
            "pmem@60000000"
        );
    }

    #[test]
    fn a_machine_whose_ram_is_elsewhere_is_refused() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let mem = w.begin_node("memory@80000000").unwrap();
        w.property_array_u64("reg", &[0x8000_0000, 512 * MIB])
            .unwrap();
        w.end_node(mem).unwrap();
        w.end_node(root).unwrap();
        let e = with_pmem(&w.finish().unwrap(), &[]).unwrap_err();
        assert!(e.to_string().contains("0x80000000"), "{e}");
        assert!(with_pmem(b"not a tree", &[]).is_err());
    }

    #[test]
    fn cells_hold_what_fits() {
        assert_eq!(cells_of(0x1_2345_6789, 2).unwrap(), [1, 0x2345_6789]);
        assert_eq!(cells_of(0x1400_0000, 1).unwrap(), [0x1400_0000]);
        assert!(cells_of(1 << 32, 1).is_err());
        assert!(cells_of(1, 3).is_err());
    }
}
