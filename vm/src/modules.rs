//! Which modules a guest needs and in what order, from the modules' own `.modinfo` (depends,
//! softdep, alias) plus `modules.builtin{,.modinfo}`: no host depmod or modprobe involved.
//! The guest has no modprobe either, so soft dependencies that the kernel would request at
//! mount time (crc32c for xfs and btrfs) must be loaded up front.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use object::{Object, ObjectSection};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("module {0:?} is neither built in nor in the modules tree")]
    NotFound(String),
}

/// What `.modinfo` says about one module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModInfo {
    /// Relative to the modules tree.
    pub path: String,
    pub depends: Vec<String>,
    pub pre: Vec<String>,
    pub post: Vec<String>,
    /// Plain aliases only (no wildcards): the names soft dependencies use.
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleIndex {
    pub modules: BTreeMap<String, ModInfo>,
    pub builtin: BTreeSet<String>,
    /// Aliases and soft dependencies of built-in code (ext4 wants crc32c even when built in).
    pub builtin_info: BTreeMap<String, ModInfo>,
}

/// Module names compare with `-` and `_` as the same character, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn module_stem(file_name: &str) -> Option<&str> {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))
}

/// The uncompressed bytes of a module file.
pub fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(BufReader::new(f))
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
    } else if name.ends_with(".zst") {
        ruzstd::decoding::StreamingDecoder::new(f)
            .map_err(|e| anyhow::anyhow!("zstd: {e}"))?
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
    } else {
        BufReader::new(f).read_to_end(&mut out)?;
    }
    Ok(out)
}

/// Parses `key=value` NUL-separated pairs (the `.modinfo` section and `modules.builtin.modinfo`).
fn apply_modinfo_pair(info: &mut ModInfo, key: &str, value: &str) {
    match key {
        "depends" => info
            .depends
            .extend(value.split(',').filter(|s| !s.is_empty()).map(normalize)),
        "softdep" => {
            let mut into_pre = true;
            for word in value.split_whitespace() {
                match word {
                    "pre:" => into_pre = true,
                    "post:" => into_pre = false,
                    w if into_pre => info.pre.push(normalize(w)),
                    w => info.post.push(normalize(w)),
                }
            }
        }
        "alias" if !value.contains(['*', '?', '[']) => info.aliases.push(normalize(value)),
        _ => {}
    }
}

fn modinfo_of(bytes: &[u8]) -> anyhow::Result<ModInfo> {
    let obj = object::File::parse(bytes)?;
    let mut info = ModInfo::default();
    if let Some(sec) = obj.section_by_name(".modinfo") {
        for entry in sec.data()?.split(|&b| b == 0) {
            let s = String::from_utf8_lossy(entry);
            if let Some((k, v)) = s.split_once('=') {
                apply_modinfo_pair(&mut info, k, v);
            }
        }
    }
    Ok(info)
}

/// Where [`ModuleIndex::load`] keeps the index of a modules tree.
pub const INDEX_FILE: &str = "zcmatrix-modindex.json";

impl ModuleIndex {
    /// Reads every module of a `lib/modules/<release>` tree; cached next to the tree.
    pub fn load(tree: &Path) -> anyhow::Result<ModuleIndex> {
        let cache = tree.join(INDEX_FILE);
        if let Ok(text) = fs::read_to_string(&cache) {
            if let Ok(ix) = serde_json::from_str(&text) {
                return Ok(ix);
            }
        }
        let ix = Self::scan(tree)?;
        fs::write(&cache, serde_json::to_string(&ix)?)?;
        Ok(ix)
    }

    fn scan(tree: &Path) -> anyhow::Result<ModuleIndex> {
        let mut ix = ModuleIndex::default();
        for entry in walkdir::WalkDir::new(tree.join("kernel")) {
            let entry = entry?;
            let fname = entry.file_name().to_string_lossy();
            let Some(stem) = module_stem(&fname) else {
                continue;
            };
            let name = normalize(stem);
            let bytes = read_module(entry.path())?;
            let mut info = modinfo_of(&bytes)
                .with_context(|| format!("reading {}", entry.path().display()))?;
            info.path = entry
                .path()
                .strip_prefix(tree)?
                .to_string_lossy()
                .into_owned();
            ix.modules.insert(name, info);
        }
        if let Ok(text) = fs::read_to_string(tree.join("modules.builtin")) {
            for line in text.lines() {
                let file = line.rsplit('/').next().unwrap_or(line);
                if let Some(stem) = module_stem(file) {
                    ix.builtin.insert(normalize(stem));
                }
            }
        }
        if let Ok(bytes) = fs::read(tree.join("modules.builtin.modinfo")) {
            for entry in bytes.split(|&b| b == 0) {
                let s = String::from_utf8_lossy(entry);
                let Some((modkey, value)) = s.split_once('=') else {
                    continue;
                };
                let Some((module, key)) = modkey.split_once('.') else {
                    continue;
                };
                let info = ix.builtin_info.entry(normalize(module)).or_default();
                apply_modinfo_pair(info, key, value);
            }
        }
        Ok(ix)
    }

    /// Loadable modules for `wanted` and everything they need, dependencies first. Names of
    /// built-in code resolve to nothing to load (but their soft dependencies still count).
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<String>, ModuleError> {
        let mut w = Walk {
            ix: self,
            seen: HashSet::new(),
            order: Vec::new(),
        };
        for name in wanted {
            w.visit(&normalize(name), true)?;
        }
        Ok(w.order)
    }

    pub fn path_of(&self, tree: &Path, name: &str) -> Option<PathBuf> {
        self.modules.get(name).map(|m| tree.join(&m.path))
    }
}

struct Walk<'a> {
    ix: &'a ModuleIndex,
    seen: HashSet<String>,
    order: Vec<String>,
}

impl Walk<'_> {
    /// `required`: a missing hard dependency is an error; a soft one may name an alias nobody
    /// provides on this kernel (crc32c-intel on a kernel where crc32c is library code).
    fn visit(&mut self, name: &str, required: bool) -> Result<(), ModuleError> {
        if !self.seen.insert(name.to_string()) {
            return Ok(());
        }
        let ix = self.ix;
        if let Some(m) = ix.modules.get(name) {
            for p in &m.pre {
                self.visit(p, false)?;
            }
            for d in &m.depends {
                self.visit(d, true)?;
            }
            self.order.push(name.to_string());
            for p in &m.post {
                self.visit(p, false)?;
            }
            return Ok(());
        }
        if ix.builtin.contains(name) {
            if let Some(b) = ix.builtin_info.get(name) {
                for p in b.pre.iter().chain(&b.post) {
                    self.visit(p, false)?;
                }
            }
            return Ok(());
        }
        let providers: Vec<&String> = ix
            .modules
            .iter()
            .filter(|(_, m)| m.aliases.iter().any(|a| a == name))
            .map(|(n, _)| n)
            .collect();
        let builtin_provider = ix
            .builtin_info
            .values()
            .any(|b| b.aliases.iter().any(|a| a == name));
        for p in &providers {
            self.visit(p, false)?;
        }
        if providers.is_empty() && !builtin_provider && required {
            return Err(ModuleError::NotFound(name.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(depends: &[&str], pre: &[&str], aliases: &[&str]) -> ModInfo {
        ModInfo {
            path: String::new(),
            depends: depends.iter().map(|s| s.to_string()).collect(),
            pre: pre.iter().map(|s| s.to_string()).collect(),
            post: vec![],
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Shaped like Debian 6.1 cloud: xfs → libcrc32c, which softdeps on `crc32c`, provided both
    /// by built-in crc32c_generic and by the crc32c_intel module.
    fn sample() -> ModuleIndex {
        let mut ix = ModuleIndex::default();
        ix.modules
            .insert("xfs".into(), info(&["libcrc32c"], &[], &[]));
        ix.modules
            .insert("libcrc32c".into(), info(&[], &["crc32c"], &[]));
        ix.modules.insert(
            "crc32c_intel".into(),
            info(&[], &[], &["crc32c", "crypto_crc32c"]),
        );
        ix.modules.insert(
            "virtio_pci".into(),
            info(&["virtio_pci_modern_dev", "virtio"], &[], &[]),
        );
        ix.modules
            .insert("virtio_pci_modern_dev".into(), info(&["virtio"], &[], &[]));
        ix.modules.insert("virtio".into(), info(&[], &[], &[]));
        ix.builtin.insert("ext4".into());
        ix.builtin.insert("crc32c_generic".into());
        ix.builtin_info
            .insert("ext4".into(), info(&[], &["crypto_crc32c"], &[]));
        ix.builtin_info.insert(
            "crc32c_generic".into(),
            info(&[], &[], &["crc32c", "crypto_crc32c"]),
        );
        ix
    }

    #[test]
    fn dependencies_come_before_their_users() {
        let order = sample().load_order(&["virtio_pci", "xfs"]).unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("virtio") < pos("virtio_pci_modern_dev"));
        assert!(pos("virtio_pci_modern_dev") < pos("virtio_pci"));
        assert!(pos("crc32c_intel") < pos("libcrc32c"), "{order:?}");
        assert!(pos("libcrc32c") < pos("xfs"));
        assert_eq!(order.iter().filter(|n| *n == "virtio").count(), 1);
    }

    #[test]
    fn builtin_names_load_nothing_but_pull_their_soft_dependencies() {
        let order = sample().load_order(&["ext4"]).unwrap();
        assert_eq!(order, ["crc32c_intel"]);
    }

    #[test]
    fn a_missing_hard_dependency_is_an_error() {
        let mut ix = sample();
        ix.modules
            .insert("btrfs".into(), info(&["raid6_pq"], &[], &[]));
        let e = ix.load_order(&["btrfs"]).unwrap_err();
        assert!(matches!(e, ModuleError::NotFound(n) if n == "raid6_pq"));
    }

    #[test]
    fn parses_modinfo_pairs() {
        let mut m = ModInfo::default();
        apply_modinfo_pair(&mut m, "depends", "libcrc32c,xor");
        apply_modinfo_pair(&mut m, "softdep", "pre: crc32c post: blake2b-256");
        apply_modinfo_pair(&mut m, "alias", "fs-btrfs");
        apply_modinfo_pair(&mut m, "alias", "devname:btrfs-control");
        apply_modinfo_pair(&mut m, "alias", "pci:v00001AF4d*");
        assert_eq!(m.depends, ["libcrc32c", "xor"]);
        assert_eq!(m.pre, ["crc32c"]);
        assert_eq!(m.post, ["blake2b_256"]);
        assert_eq!(m.aliases, ["fs_btrfs", "devname:btrfs_control"]);
    }

    #[test]
    fn module_file_names_strip_every_compression() {
        assert_eq!(module_stem("xfs.ko"), Some("xfs"));
        assert_eq!(module_stem("xfs.ko.xz"), Some("xfs"));
        assert_eq!(module_stem("crc32c-intel.ko.zst"), Some("crc32c-intel"));
        assert_eq!(module_stem("modules.order"), None);
    }
}
