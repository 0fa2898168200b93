//! What every cache layer shares: a manifest of content hashes written when an entry is made and
//! checked before it is used, and a lock so that runs sharing a cache never build the same entry
//! at once nor see one half-built.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Content hashes of the files of an entry, by path relative to the entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

/// A file of an entry that is not what it was when the entry was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub file: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.why)
    }
}

/// Says on stderr that a cache entry was found damaged and is being rebuilt: rare, and a user
/// whose disk or neighbour corrupts files wants to know.
pub fn log_rebuild(entry: &Path, m: &Mismatch) {
    eprintln!(
        "zcmatrix: cache entry {} does not match its manifest ({m}); rebuilding it",
        entry.display()
    );
}

/// Writes `bytes` to `path` under a temporary name in its folder and renames it there: a run
/// sharing the cache never reads half a file (the folder is made if it is missing).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Blocks of this size that hold only zeros count as holes.
const BLOCK: usize = 4096;

/// sha256 of a file's contents as a reader sees them (holes read as zeros), computed from its
/// data only: a sparse disk image of 512 MiB with a few MiB written hashes in milliseconds.
/// Holes are skipped by `SEEK_DATA`/`SEEK_HOLE`; what is hashed is the length and every block
/// that is not all zeros, with its offset, so the result does not depend on how the filesystem
/// lays the file out (which blocks it allocated, or reports as data before writeback).
pub fn hash_file(path: &Path) -> anyhow::Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    let mut pos: u64 = 0;
    let mut buf = vec![0u8; 256 * BLOCK];
    while pos < len {
        let Some(start) = seek_data(&f, pos, libc::SEEK_DATA)? else {
            break;
        };
        // Block-aligned, so the same bytes always fall in the same blocks.
        let start = start - start % BLOCK as u64;
        let end = seek_data(&f, start, libc::SEEK_HOLE)?.unwrap_or(len);
        f.seek(SeekFrom::Start(start))?;
        let mut at = start;
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            let n = read_full(&mut f, &mut buf[..want])?;
            if n == 0 {
                break;
            }
            for (i, block) in buf[..n].chunks(BLOCK).enumerate() {
                if block.iter().any(|&b| b != 0) {
                    h.update((at + (i * BLOCK) as u64).to_le_bytes());
                    h.update(block);
                }
            }
            at += n as u64;
        }
        pos = end.max(at);
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `lseek(fd, from, whence)` for SEEK_DATA/SEEK_HOLE; `None` past the last data (ENXIO).
fn seek_data(f: &File, from: u64, whence: libc::c_int) -> anyhow::Result<Option<u64>> {
    // SAFETY: lseek on a descriptor `f` owns for the duration of the call; it touches no memory.
    let r = unsafe { libc::lseek(f.as_raw_fd(), from as libc::off_t, whence) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e).context("lseek");
    }
    Ok(Some(r as u64))
}

impl Manifest {
    /// Hashes the files `rel` (relative to `root`).
    pub fn of(root: &Path, rel: &[&str]) -> anyhow::Result<Manifest> {
        let mut files = BTreeMap::new();
        for r in rel {
            files.insert(r.to_string(), hash_file(&root.join(r))?);
        }
        Ok(Manifest { files })
    }

    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        fs::write(path, serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    /// Checks the files `rel` of `root` (all of them with `None`) against the manifest. A file
    /// the manifest does not know is a mismatch too: it was not part of the entry when made.
    pub fn verify(&self, root: &Path, rel: Option<&[&str]>) -> Result<(), Mismatch> {
        let all: Vec<&str> = self.files.keys().map(String::as_str).collect();
        for r in rel.unwrap_or(&all) {
            let file = root.join(r);
            let Some(want) = self.files.get(*r) else {
                return Err(Mismatch {
                    file,
                    why: "not in the manifest".into(),
                });
            };
            match hash_file(&file) {
                Ok(got) if &got == want => {}
                Ok(got) => {
                    return Err(Mismatch {
                        file,
                        why: format!("sha256 {} where {} was written", &got[..12], &want[..12]),
                    })
                }
                Err(e) => {
                    return Err(Mismatch {
                        file,
                        why: format!("{e:#}"),
                    })
                }
            }
        }
        Ok(())
    }
}

/// `<path>.manifest.json`: the manifest of a single-file entry.
fn file_manifest_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// A single-file entry (a disk image): used if it matches the manifest written when it was
/// made; otherwise (missing, no manifest, another hash) logged if it existed, removed, and made
/// again by `make`, which fills a temporary file in the same directory. The file is renamed into
/// place when complete and its manifest written after, so a half-made entry is never taken for a
/// complete one. Runs that share the cache take turns through the entry's lock.
pub fn file_entry(
    path: &Path,
    make: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let _lock = lock_entry(path)?;
    let dir = path.parent().context("a cache entry has a parent")?;
    let name = path
        .file_name()
        .context("a cache entry has a name")?
        .to_string_lossy()
        .into_owned();
    let manifest_path = file_manifest_path(path);
    if path.exists() {
        let checked = Manifest::load(&manifest_path)
            .map_err(|e| Mismatch {
                file: manifest_path.clone(),
                why: format!("no readable manifest: {e:#}"),
            })
            .and_then(|m| m.verify(dir, Some(&[name.as_str()])));
        match checked {
            Ok(()) => return Ok(path.to_path_buf()),
            Err(m) => log_rebuild(path, &m),
        }
        fs::remove_file(path)?;
    }
    let _ = fs::remove_file(&manifest_path);
    let tmp = tempfile::Builder::new()
        .prefix(".making-")
        .tempfile_in(dir)?;
    make(tmp.path())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    let manifest = Manifest::of(dir, &[name.as_str()])?;
    let mtmp = tempfile::Builder::new()
        .prefix(".making-")
        .tempfile_in(dir)?;
    manifest.save(mtmp.path())?;
    mtmp.persist(&manifest_path)?;
    Ok(path.to_path_buf())
}

/// An exclusive lock on `<path>.lock`, held until dropped: whoever holds it may check, build or
/// replace the entry at `path`. It excludes other runs (and other threads of this one).
pub struct EntryLock(#[allow(dead_code)] File);

pub fn lock_entry(path: &Path) -> anyhow::Result<EntryLock> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    if let Some(dir) = lock_path.parent() {
        fs::create_dir_all(dir)?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    f.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    Ok(EntryLock(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn zeros_written_hash_like_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse");
        File::create(&sparse)
            .unwrap()
            .set_len(3 * BLOCK as u64)
            .unwrap();
        let dense = dir.path().join("dense");
        fs::write(&dense, vec![0u8; 3 * BLOCK]).unwrap();
        assert_eq!(hash_file(&sparse).unwrap(), hash_file(&dense).unwrap());
        let mut bytes = vec![0u8; 3 * BLOCK];
        bytes[BLOCK + 7] = 1;
        fs::write(&dense, bytes).unwrap();
        assert_ne!(hash_file(&sparse).unwrap(), hash_file(&dense).unwrap());
    }

    #[test]
    fn a_sparse_file_hashes_by_its_data_and_where_it_lies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        let blank = hash_file(&p).unwrap();
        let mut f = File::options().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"superblock").unwrap();
        f.sync_all().unwrap();
        let written = hash_file(&p).unwrap();
        assert_ne!(blank, written);
        // The same bytes elsewhere are another image.
        let q = dir.path().join("img2");
        let g = File::create(&q).unwrap();
        g.set_len(64 << 20).unwrap();
        let mut g = File::options().write(true).open(&q).unwrap();
        g.seek(SeekFrom::Start(2 << 20)).unwrap();
        g.write_all(b"superblock").unwrap();
        assert_ne!(written, hash_file(&q).unwrap());
    }

    #[test]
    fn verify_names_the_file_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"one").unwrap();
        fs::write(dir.path().join("b"), b"two").unwrap();
        let m = Manifest::of(dir.path(), &["a", "b"]).unwrap();
        assert_eq!(m.verify(dir.path(), None), Ok(()));
        fs::write(dir.path().join("b"), b"tw0").unwrap();
        let e = m.verify(dir.path(), None).unwrap_err();
        assert!(e.file.ends_with("b"), "{e}");
        assert_eq!(m.verify(dir.path(), Some(&["a"])), Ok(()));
        assert!(m.verify(dir.path(), Some(&["c"])).is_err());
        fs::remove_file(dir.path().join("a")).unwrap();
        assert!(m.verify(dir.path(), Some(&["a"])).is_err());
    }

    #[test]
    fn a_file_entry_is_made_once_reused_and_remade_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("x.img");
        let made = std::cell::Cell::new(0);
        let make = |p: &Path| {
            made.set(made.get() + 1);
            fs::write(p, b"blank filesystem")?;
            Ok(())
        };
        file_entry(&entry, make).unwrap();
        file_entry(&entry, make).unwrap();
        assert_eq!(made.get(), 1);
        fs::write(&entry, b"blank filesystEm").unwrap();
        file_entry(&entry, make).unwrap();
        assert_eq!(made.get(), 2);
        assert_eq!(fs::read(&entry).unwrap(), b"blank filesystem");
        // A maker that fails leaves nothing that looks finished.
        fs::remove_file(&entry).unwrap();
        assert!(file_entry(&entry, |_| anyhow::bail!("mkfs failed")).is_err());
        assert!(!entry.exists());
    }

    #[test]
    fn the_entry_lock_excludes_another_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("kernels/x");
        let held = lock_entry(&entry).unwrap();
        let other = File::options()
            .write(true)
            .open(dir.path().join("kernels/x.lock"))
            .unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
