//! The guest's initramfs: a newc cpio with the harness as /init, the modules it must load and the
//! manifest. Nothing from the host's root filesystem goes in. Uncompressed: every kernel reads it
//! and the cache directory, not the guest, pays for its size.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use zcmatrix_protocol::{Manifest, MANIFEST_PATH};

/// One file of the archive; `path` without the leading slash.
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry {
            path: path.trim_start_matches('/').to_string(),
            mode: 0o100000 | mode,
            data,
        }
    }
    pub fn dir(path: &str) -> Entry {
        Entry {
            path: path.trim_start_matches('/').to_string(),
            mode: 0o040755,
            data: Vec::new(),
        }
    }
}

/// Writes `entries` as a newc archive.
pub fn write_cpio<W: Write>(entries: &[Entry], mut w: W) -> anyhow::Result<W> {
    for (ino, e) in entries.iter().enumerate() {
        let builder = cpio::newc::Builder::new(&e.path)
            .ino(ino as u32 + 1)
            .mode(e.mode)
            .nlink(if e.mode & 0o040000 != 0 { 2 } else { 1 });
        let mut writer = builder.write(w, e.data.len() as u32);
        writer.write_all(&e.data)?;
        w = writer.finish()?;
    }
    Ok(cpio::newc::trailer(w)?)
}

/// Modules to carry: the name the manifest uses and the uncompressed bytes.
pub struct ModuleFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Builds (or reuses, by content hash) the initramfs for one guest.
pub fn build(
    cache: &Path,
    harness: &Path,
    modules: &[ModuleFile],
    programs: &[(String, Vec<u8>)],
    manifest: &Manifest,
) -> anyhow::Result<PathBuf> {
    let harness_bytes =
        fs::read(harness).with_context(|| format!("reading harness {}", harness.display()))?;
    let mut entries = vec![
        Entry::file("init", 0o755, harness_bytes),
        Entry::dir("modules"),
    ];
    for m in modules {
        entries.push(Entry::file(
            &format!("modules/{}.ko", m.name),
            0o644,
            m.bytes.clone(),
        ));
    }
    // The user's own checks (`--exec`), executable, where the manifest says.
    if !programs.is_empty() {
        entries.push(Entry::dir("user"));
    }
    for (path, bytes) in programs {
        entries.push(Entry::file(
            path.trim_start_matches('/'),
            0o755,
            bytes.clone(),
        ));
    }
    entries.push(Entry::file(
        MANIFEST_PATH,
        0o644,
        serde_json::to_vec_pretty(manifest)?,
    ));
    let mut h = Sha256::new();
    for e in &entries {
        h.update(e.path.as_bytes());
        h.update(e.mode.to_le_bytes());
        h.update((e.data.len() as u64).to_le_bytes());
        h.update(&e.data);
    }
    let dir = cache.join("initramfs");
    fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{}.cpio", &hex::encode(h.finalize())[..24]));
    if !out.exists() {
        let tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let f = write_cpio(&entries, std::io::BufWriter::new(tmp.reopen()?))?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        tmp.persist(&out)?;
    }
    Ok(out)
}

/// The manifest path of a module inside the guest.
pub fn guest_module_path(name: &str) -> String {
    format!("/modules/{name}.ko")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_reads_back_with_modes_and_contents() {
        let entries = vec![
            Entry::file("/init", 0o755, b"#!elf".to_vec()),
            Entry::dir("modules"),
            Entry::file("modules/xfs.ko", 0o644, vec![7u8; 1001]),
        ];
        let bytes = write_cpio(&entries, Vec::new()).unwrap();
        let mut rest = &bytes[..];
        let mut seen = Vec::new();
        loop {
            let mut r = cpio::newc::Reader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let name = r.entry().name().to_string();
            let mode = r.entry().mode();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut data).unwrap();
            seen.push((name, mode, data.len()));
            rest = r.finish().unwrap();
        }
        assert_eq!(
            seen,
            [
                ("init".to_string(), 0o100755, 5),
                ("modules".to_string(), 0o040755, 0),
                ("modules/xfs.ko".to_string(), 0o100644, 1001)
            ]
        );
    }
}
