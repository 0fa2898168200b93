//! What a machine has mounted, inside the fresh root: /proc, /sys, a /dev of its own (with or
//! without /dev/kvm), /dev/pts and /dev/shm. Everything is mounted in a private mount namespace
//! of this process, so nothing shows on the host and nothing outlives the process even if it is
//! killed; and a guard unmounts it all in any case, before the root is ever removed.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

fn cstr(p: &Path) -> anyhow::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("a path with a NUL byte")
}

fn os_err(what: String) -> anyhow::Error {
    anyhow::Error::new(std::io::Error::last_os_error()).context(what)
}

/// Moves this process into a mount namespace of its own whose mounts do not propagate back to
/// the host's.
pub fn private_namespace() -> anyhow::Result<()> {
    // SAFETY: unshare(2) with a constant flag; it changes only this process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(os_err(
            "unshare(CLONE_NEWNS): a fresh root needs root".into(),
        ));
    }
    let root = cstr(Path::new("/"))?;
    // SAFETY: the pointers are valid C strings or null, as mount(2) allows for a propagation
    // change.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(os_err("making / private in the new namespace".into()));
    }
    Ok(())
}

/// The mounts made so far, unmounted in reverse order when dropped (also on an error or an
/// interruption: the caller returns through here).
#[derive(Default)]
pub struct Mounts {
    points: Vec<PathBuf>,
}

impl Mounts {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> anyhow::Result<()> {
        fs::create_dir_all(target)?;
        let src = CString::new(source)?;
        let tgt = cstr(target)?;
        let fst = fstype.map(CString::new).transpose()?;
        let dat = data.map(CString::new).transpose()?;
        // SAFETY: every pointer is a valid C string that outlives the call, or null.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                fst.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags,
                dat.as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr().cast::<libc::c_void>()),
            )
        };
        if rc != 0 {
            return Err(os_err(format!("mounting {source} on {}", target.display())));
        }
        self.points.push(target.to_path_buf());
        Ok(())
    }

    pub fn bind(&mut self, source: &Path, target: &Path) -> anyhow::Result<()> {
        let src = source.to_str().context("a bind source that is not UTF-8")?;
        self.mount(src, target, None, libc::MS_BIND, None)
    }

    /// /proc, /sys (read-only, as in a container), and a /dev of its own.
    pub fn machine(&mut self, root: &Path, kvm: Option<&Kvm>) -> anyhow::Result<()> {
        self.mount("proc", &root.join("proc"), Some("proc"), 0, None)?;
        self.mount(
            "sysfs",
            &root.join("sys"),
            Some("sysfs"),
            libc::MS_RDONLY,
            None,
        )?;
        let dev = root.join("dev");
        self.mount("tmpfs", &dev, Some("tmpfs"), 0, Some("mode=755"))?;
        populate_dev(&dev, kvm)?;
        self.mount(
            "devpts",
            &dev.join("pts"),
            Some("devpts"),
            0,
            Some("newinstance,ptmxmode=0666,mode=620,gid=5"),
        )?;
        self.mount(
            "tmpfs",
            &dev.join("shm"),
            Some("tmpfs"),
            0,
            Some("mode=1777"),
        )?;
        Ok(())
    }

    /// Unmounts everything, the last mounted first; a busy mount is detached.
    pub fn unmount_all(&mut self) {
        while let Some(p) = self.points.pop() {
            let Ok(c) = cstr(&p) else { continue };
            // SAFETY: a valid C string; MNT_DETACH never blocks.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!(
                    "fresh-root: unmounting {}: {}",
                    p.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        self.unmount_all();
    }
}

/// The host's KVM device, as the root's /dev shows it: a Debian machine's udev gives it to the
/// group `kvm` (mode 0660), and the user is in that group.
pub struct Kvm {
    pub rdev: u64,
    pub gid: u32,
}

/// The host's /dev/kvm device number, if it has one.
pub fn host_kvm() -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = fs::metadata("/dev/kvm").ok()?;
    m.file_type().is_char_device().then(|| m.rdev())
}

/// The device nodes of a machine's /dev (not the host's: a tmpfs of the root's own, so that
/// nothing of the host's /dev can be removed through the root).
fn populate_dev(dev: &Path, kvm: Option<&Kvm>) -> anyhow::Result<()> {
    let nodes: [(&str, u32, u32); 6] = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    for (name, major, minor) in nodes {
        mknod(&dev.join(name), libc::makedev(major, minor), 0o666, 0)?;
    }
    if let Some(k) = kvm {
        mknod(&dev.join("kvm"), k.rdev, 0o660, k.gid)?;
    }
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link))?;
    }
    Ok(())
}

fn mknod(path: &Path, rdev: u64, mode: u32, gid: u32) -> anyhow::Result<()> {
    let c = cstr(path)?;
    // SAFETY: a valid C string; mknod(2) creates one character device node.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | mode, rdev as libc::dev_t) } != 0 {
        return Err(os_err(format!("mknod {}", path.display())));
    }
    // The umask took bits off.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(path, Some(0), Some(gid))?;
    Ok(())
}

/// The mount points at or under `dir` in a /proc/self/mountinfo text.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo writes a space, tab, newline and backslash in a path as `\040`, `\011`, `\012`,
/// `\134`.
fn unescape(p: &str) -> String {
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes a root, refusing while anything is mounted under it (a bind mount would otherwise
/// be emptied through it).
pub fn remove_root(root: &Path) -> anyhow::Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let root = fs::canonicalize(root)?;
    let busy = mounts_under(&info, &root);
    if !busy.is_empty() {
        bail!(
            "not removing {}: still mounted there: {}",
            root.display(),
            busy.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_a_root_are_found_with_escaped_names() {
        let info = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
66 22 0:40 / /w/target/fresh-root/root/proc rw,relatime - proc proc rw
67 22 0:41 / /w/target/fresh-root/root/var/cache/my\\040cache rw - ext4 /dev/vda rw
68 22 0:42 / /w/target/fresh-root/rootless rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounts_under(info, Path::new("/w/target/fresh-root/root")),
            [
                PathBuf::from("/w/target/fresh-root/root/proc"),
                PathBuf::from("/w/target/fresh-root/root/var/cache/my cache")
            ]
        );
        assert!(mounts_under(info, Path::new("/elsewhere")).is_empty());
    }

    #[test]
    fn a_root_with_nothing_mounted_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        remove_root(&root).unwrap();
        assert!(!root.exists());
        remove_root(&root).unwrap();
    }
}
