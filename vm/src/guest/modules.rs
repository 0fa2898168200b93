//! Which kernel modules a guest loads: those its targets, its disks and its network need,
//! in load order, and the optional ones it asked for and the kernel lacks.

use anyhow::Context;
use zcmatrix_protocol::FsTarget;

use crate::arch::Arch;
use crate::disk;
use crate::initramfs::ModuleFile;
use crate::kernel::Kernel;
use crate::modules::ModuleIndex;

/// Kernel modules a guest with disks needs for them.
const DISK_MODULES: &[&str] = &["virtio_pci", "virtio_blk"];

/// The network device of a guest's path to the host end.
const NET_MODULES: &[&str] = &["virtio_pci", "virtio_net"];

/// Kernel TLS (`tls`, CONFIG_TLS, which Debian's 5.10 cloud kernel leaves out), loaded where the
/// kernel has it (its check skips, saying so, where it does not), with the AES-GCM its TLS_TX
/// instantiates (`gcm(aes)`: gcm with ctr and ghash, those of them that are modules; the
/// generic aes is built in, and the AES-NI one is left out, since it refuses to load on a CPU
/// without AES-NI). The guest has no modprobe to load them on demand: the kernel's
/// request_module would fail and TLS_TX answer ENOENT.
const TLS_MODULES: &[&str] = &["tls", "gcm", "ctr", "ghash_generic"];

/// What a guest loads, each part in load order: the result port's drivers, which the harness
/// loads before it opens the port (where the kernel builds them as modules), then the rest;
/// and the optional modules asked for and not found (kernel TLS where the kernel has none),
/// which the manifest names.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Chosen<T> {
    pub(super) port: Vec<T>,
    pub(super) rest: Vec<T>,
    pub(super) missing: Vec<String>,
}

/// Resolves modules for the result port, the targets (the swap disk, with `swap`; the
/// network, with `net`) and returns them uncompressed (see [`choose`]).
pub(super) fn modules_for(
    kernel: &Kernel,
    targets: &mut [FsTarget],
    swap: bool,
    net: bool,
) -> anyhow::Result<Chosen<ModuleFile>> {
    let Some(tree) = &kernel.modules else {
        // A kernel without a modules tree (an image given by path) has built in what it has.
        return Ok(Chosen {
            port: Vec::new(),
            rest: Vec::new(),
            missing: Vec::new(),
        });
    };
    let ix = ModuleIndex::load(tree).with_context(|| format!("indexing {}", tree.display()))?;
    let config = kernel.config_text();
    let chosen = choose(&ix, kernel.arch, targets, swap, net, config.as_deref())?;
    let read = |names: Vec<String>| {
        names
            .into_iter()
            .map(|name| {
                let p = ix
                    .path_of(tree, &name)
                    .expect("load_order names indexed modules");
                Ok(ModuleFile {
                    bytes: crate::modules::read_module(&p)?,
                    name,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    Ok(Chosen {
        port: read(chosen.port)?,
        rest: read(chosen.rest)?,
        missing: chosen.missing,
    })
}

/// The modules a guest of `arch` loads, by name. A guest with no disk loads no disk driver, one
/// with no network check no network modules: under TCG each module costs boot time. A target
/// the kernel's modules cannot hold (an overlay or a DAX target on a kernel built without them)
/// is marked unavailable, with the reason, and the rest of the guest goes on; a plain disk
/// filesystem whose module is missing fails the guest, and so does a kernel with no driver for
/// the result port, saying so: no record could reach the host.
fn choose(
    ix: &ModuleIndex,
    arch: Arch,
    targets: &mut [FsTarget],
    swap: bool,
    net: bool,
    config: Option<&str>,
) -> anyhow::Result<Chosen<String>> {
    let port = port_order(ix, arch)?;
    let mut wanted = wanted_modules(ix, targets, swap, arch, config);
    let mut missing = Vec::new();
    if net {
        wanted.extend(NET_MODULES);
        let (tls, absent) = optional_modules(ix, TLS_MODULES);
        wanted.extend(tls);
        missing.extend(absent);
    }
    // The port's modules (and what they need) are loaded first: the rest need not name them.
    let rest = ix
        .load_order(&wanted)?
        .into_iter()
        .filter(|m| !port.contains(m))
        .collect();
    Ok(Chosen {
        port,
        rest,
        missing,
    })
}

/// The modules the result port needs on a kernel of `arch`, in load order: none where its
/// drivers are built in (or it is a built-in UART), and an error saying why where the kernel
/// has no driver for it at all.
fn port_order(ix: &ModuleIndex, arch: Arch) -> anyhow::Result<Vec<String>> {
    let needs = crate::qemu::result_port_modules(arch);
    ix.load_order(needs).map_err(|e| {
        anyhow::anyhow!(
            "{e}: the result port of an {} guest is a virtio-serial port, which needs {} \
             (built in or as modules); without them no record could reach the host",
            arch.name(),
            needs.join(" and ")
        )
    })
}

/// A group of optional modules whose first is the feature (`tls`) and the rest what it uses:
/// those of them the kernel has (as a module or built in) when it has the first, and those it
/// was asked for and lacks.
fn optional_modules(
    ix: &ModuleIndex,
    group: &'static [&'static str],
) -> (Vec<&'static str>, Vec<String>) {
    let has = |m: &str| ix.modules.contains_key(m) || ix.builtin.contains(m);
    if !has(group[0]) {
        return (Vec::new(), vec![group[0].to_string()]);
    }
    let (present, absent): (Vec<&str>, Vec<&str>) = group.iter().partition(|m| has(m));
    (present, absent.into_iter().map(str::to_string).collect())
}

/// The modules to load for `targets` on a kernel of `arch` built with `config`, with the disk
/// drivers when there is a disk (the swap disk with `swap`); an overlay or DAX target this
/// kernel cannot hold (its config or its modules lack what it needs) is marked unavailable
/// instead.
fn wanted_modules<'t>(
    ix: &ModuleIndex,
    targets: &'t mut [FsTarget],
    swap: bool,
    arch: Arch,
    config: Option<&str>,
) -> Vec<&'t str> {
    let mut wanted: Vec<&str> = Vec::new();
    let mut disks = swap;
    for t in targets.iter_mut() {
        if let Some(why) = crate::pmem::unavailable(&t.fs, arch, config) {
            t.unavailable = Some(why);
            continue;
        }
        let optional = matches!(
            disk::backing(&t.fs),
            disk::Backing::Overlay | disk::Backing::Pmem
        );
        // `None` only for a DAX target on an architecture without a region, ruled out above.
        let modules = disk::target_modules(&t.fs, arch).unwrap_or_default();
        if optional {
            if let Err(e) = ix.load_order(&modules) {
                t.unavailable = Some(format!("{e}: this kernel cannot hold a {} target", t.fs));
                continue;
            }
        }
        disks |= disk::needs_disk(&t.fs);
        wanted.extend(modules);
    }
    if disks {
        wanted.splice(0..0, DISK_MODULES.iter().copied());
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with ext4 built in, virtio and xfs as modules, and no overlay or pmem modules.
    fn index_without_overlay_or_pmem() -> ModuleIndex {
        let mut ix = ModuleIndex::default();
        for m in ["virtio_pci", "virtio_blk", "xfs"] {
            ix.modules.insert(m.into(), Default::default());
        }
        ix.builtin.insert("ext4".into());
        ix
    }

    /// The host says which modules it asked for and did not find: kernel TLS on a kernel
    /// without it is named (the manifest carries it to the check), and a kernel with it loads
    /// what it has of the cipher.
    #[test]
    fn missing_optional_modules_are_named() {
        let mut ix = index_without_overlay_or_pmem();
        assert_eq!(
            optional_modules(&ix, TLS_MODULES),
            (vec![], vec!["tls".to_string()])
        );
        ix.modules.insert("tls".into(), Default::default());
        ix.modules.insert("gcm".into(), Default::default());
        ix.builtin.insert("ctr".into());
        assert_eq!(
            optional_modules(&ix, TLS_MODULES),
            (vec!["tls", "gcm", "ctr"], vec!["ghash_generic".to_string()])
        );
    }

    #[test]
    fn a_target_the_kernel_cannot_hold_is_unavailable_and_the_rest_goes_on() {
        let ix = index_without_overlay_or_pmem();
        let mut targets: Vec<FsTarget> = ["ext4", "overlay", "xfs-dax"]
            .iter()
            .map(|f| FsTarget {
                fs: f.to_string(),
                ..FsTarget::default()
            })
            .collect();
        let wanted: Vec<String> =
            wanted_modules(&ix, &mut targets, false, crate::arch::Arch::X86_64, None)
                .into_iter()
                .map(String::from)
                .collect();
        assert_eq!(wanted, ["virtio_pci", "virtio_blk", "ext4"]);
        assert!(targets[0].unavailable.is_none());
        let why = targets[1].unavailable.as_deref().unwrap();
        assert!(
            why.contains("\"overlay\"") && why.contains("overlay target"),
            "{why}"
        );
        assert!(targets[2]
            .unavailable
            .as_deref()
            .unwrap()
            .contains("nd_e820"));
    }

    /// A DAX target on a kernel whose config has no pmem driver says so, in the config's words,
    /// before any module is looked up; on arm64 it loads the device-tree region's module.
    #[test]
    fn a_dax_target_is_held_or_refused_by_what_the_kernel_is_built_with() {
        use crate::arch::Arch;
        let mut ix = index_without_overlay_or_pmem();
        for m in ["of_pmem", "nd_pmem"] {
            ix.modules.insert(m.into(), Default::default());
        }
        let target = || {
            vec![FsTarget {
                fs: "ext4-dax".into(),
                ..FsTarget::default()
            }]
        };
        let mut t = target();
        let config = "# CONFIG_LIBNVDIMM is not set\nCONFIG_FS_DAX=y\n";
        assert!(wanted_modules(&ix, &mut t, false, Arch::Ppc64le, Some(config)).is_empty());
        assert!(
            t[0].unavailable
                .as_deref()
                .unwrap()
                .starts_with("this kernel is built without CONFIG_LIBNVDIMM"),
            "{t:?}"
        );
        let mut t = target();
        let config = "CONFIG_LIBNVDIMM=m\nCONFIG_OF_PMEM=m\nCONFIG_FS_DAX=y\n";
        let wanted: Vec<String> = wanted_modules(&ix, &mut t, false, Arch::Arm64, Some(config))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(wanted, ["ext4", "of_pmem", "nd_pmem"]);
        assert!(t[0].unavailable.is_none());
    }

    /// Debian 6.1 cloud-arm64's virtio: the core, the PCI transport and the console driver all
    /// modules (CONFIG_VIRTIO=m, CONFIG_VIRTIO_PCI=m, CONFIG_VIRTIO_CONSOLE=m), with the
    /// dependencies their `.modinfo` names, and ext4 built in.
    fn index_with_a_modular_console() -> ModuleIndex {
        let mut ix = ModuleIndex::default();
        let mut add = |name: &str, depends: &[&str]| {
            ix.modules.insert(
                name.into(),
                crate::modules::ModInfo {
                    depends: depends.iter().map(|d| d.to_string()).collect(),
                    ..Default::default()
                },
            );
        };
        add("virtio", &[]);
        add("virtio_ring", &["virtio"]);
        add("virtio_pci_modern_dev", &[]);
        add(
            "virtio_pci",
            &["virtio", "virtio_ring", "virtio_pci_modern_dev"],
        );
        add("virtio_console", &["virtio", "virtio_ring"]);
        add("virtio_blk", &["virtio", "virtio_ring"]);
        add("xfs", &[]);
        ix.builtin.insert("ext4".into());
        ix
    }

    /// What a guest of `arch` with one target `fs` (and the swap disk, with `swap`) loads.
    fn chosen(
        ix: &ModuleIndex,
        arch: Arch,
        fs: &str,
        swap: bool,
    ) -> anyhow::Result<Chosen<String>> {
        let mut targets = [FsTarget {
            fs: fs.into(),
            ..FsTarget::default()
        }];
        choose(ix, arch, &mut targets, swap, false, None)
    }

    /// virtio_pci and what it needs, in load order, in [`index_with_a_modular_console`].
    const VIRTIO_PCI: [&str; 4] = [
        "virtio",
        "virtio_ring",
        "virtio_pci_modern_dev",
        "virtio_pci",
    ];

    /// Where the kernel builds the port's drivers as modules, an arm64 guest loads them (and
    /// what they need) first, even with no disk, and the disk drivers after them name none of
    /// them again; an x86_64 guest's port is a built-in UART and loads nothing for it.
    #[test]
    fn the_result_ports_modules_come_first_where_the_kernel_has_them_as_modules() {
        let ix = index_with_a_modular_console();
        let c = chosen(&ix, Arch::Arm64, "tmpfs", false).unwrap();
        assert_eq!(c.port, [&VIRTIO_PCI[..], &["virtio_console"]].concat());
        assert!(c.rest.is_empty(), "{c:?}");
        let c = chosen(&ix, Arch::Arm64, "xfs", true).unwrap();
        assert_eq!(c.port.last().map(String::as_str), Some("virtio_console"));
        assert_eq!(c.rest, ["virtio_blk", "xfs"]);
        let c = chosen(&ix, Arch::X86_64, "xfs", false).unwrap();
        assert!(c.port.is_empty(), "{c:?}");
        assert_eq!(c.rest, [&VIRTIO_PCI[..], &["virtio_blk", "xfs"]].concat());
    }

    /// A kernel that builds the port's drivers in loads nothing for it; one with no console
    /// driver at all fails the guest before it boots, saying why.
    #[test]
    fn a_built_in_port_loads_nothing_and_a_missing_one_says_why() {
        let mut ix = index_without_overlay_or_pmem();
        ix.modules.remove("virtio_pci");
        ix.builtin
            .extend(["virtio_pci".into(), "virtio_console".into()]);
        let c = chosen(&ix, Arch::Ppc64le, "tmpfs", false).unwrap();
        assert!(c.port.is_empty() && c.rest.is_empty(), "{c:?}");
        let ix = index_without_overlay_or_pmem();
        let e = chosen(&ix, Arch::Arm64, "tmpfs", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"virtio_console\" is neither built in")
                && e.contains("virtio-serial port")
                && e.contains("no record could reach the host"),
            "{e}"
        );
    }
}
