//! Which kernel modules a guest loads: those its targets, its disks and its network need,
//! in load order, and the optional ones it asked for and the kernel lacks.

use anyhow::Context;
use zcmatrix_protocol::FsTarget;

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

/// Resolves modules for the targets (the swap disk, with `swap`; the network, with `net`) and
/// returns them uncompressed, in load order, with the optional ones asked for and not found
/// (kernel TLS where the kernel has none), which the manifest names. A guest with no disk loads no disk driver, one with
/// no network check no network modules: under TCG each module costs boot time. A target the
/// kernel's modules cannot hold (an overlay or a DAX target on a kernel built without them) is
/// marked unavailable, with the reason, and the rest of the guest goes on; a plain disk
/// filesystem whose module is missing fails the guest.
pub(super) fn modules_for(
    kernel: &Kernel,
    targets: &mut [FsTarget],
    swap: bool,
    net: bool,
) -> anyhow::Result<(Vec<ModuleFile>, Vec<String>)> {
    let Some(tree) = &kernel.modules else {
        return Ok((Vec::new(), Vec::new()));
    };
    let ix = ModuleIndex::load(tree).with_context(|| format!("indexing {}", tree.display()))?;
    let config = kernel.config_text();
    let mut wanted = wanted_modules(&ix, targets, swap, kernel.arch, config.as_deref());
    let mut missing = Vec::new();
    if net {
        wanted.extend(NET_MODULES);
        let (tls, absent) = optional_modules(&ix, TLS_MODULES);
        wanted.extend(tls);
        missing.extend(absent);
    }
    if wanted.is_empty() {
        return Ok((Vec::new(), missing));
    }
    let order = ix.load_order(&wanted)?;
    let files = order
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
        .collect::<anyhow::Result<_>>()?;
    Ok((files, missing))
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
    arch: crate::arch::Arch,
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
}
