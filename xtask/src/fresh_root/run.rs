//! Commands in the fresh root, as root or as the normal user, with the environment a login on
//! such a machine has (nothing of this process's), no standard input (as in CI), and stopped
//! with everything they started when this process is asked to stop.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    User(&'static str),
}

/// Set by SIGINT or SIGTERM: the running command's process group is stopped, and the run
/// returns through the mount guard.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration fails only for signals that cannot be caught; these two can.
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
    .clone()
}

/// `chroot ROOT [runuser -u USER --] env -i VAR=… bash -euo pipefail -c SCRIPT`: the PATH of a
/// Debian login (root's has the sbin folders, a user's does not), rustup's ~/.cargo/bin first as
/// its installer sets it, and CI=true as in CI.
pub fn chroot_argv(root: &Path, who: Who, script: &str) -> Vec<OsString> {
    let (home, user, system_path) = match who {
        Who::Root => (
            "/root".to_string(),
            "root",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        Who::User(u) => (
            format!("/home/{u}"),
            u,
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games",
        ),
    };
    let mut v: Vec<OsString> = vec![root.into()];
    if let Who::User(u) = who {
        v.extend(["/usr/sbin/runuser", "-u", u, "--"].map(OsString::from));
    }
    v.extend(
        [
            "/usr/bin/env".to_string(),
            "-i".into(),
            format!("HOME={home}"),
            format!("USER={user}"),
            format!("LOGNAME={user}"),
            format!("PATH={home}/.cargo/bin:{system_path}"),
            "LANG=C.UTF-8".into(),
            "CI=true".into(),
            "CARGO_TERM_COLOR=never".into(),
            "/bin/bash".into(),
            "-euo".into(),
            "pipefail".into(),
            "-c".into(),
            script.into(),
        ]
        .map(OsString::from),
    );
    v
}

fn command(root: &Path, who: Who, script: &str) -> Command {
    let mut c = Command::new("chroot");
    c.args(chroot_argv(root, who, script))
        .stdin(Stdio::null())
        // Its own process group: a stop reaches everything it started (cargo, QEMU).
        .process_group(0);
    c
}

fn describe(who: Who, script: &str) -> String {
    match who {
        Who::Root => format!("as root: {script}"),
        Who::User(u) => format!("as {u}: {script}"),
    }
}

/// Runs `script` in the root; an error unless it exits 0.
pub fn in_root(root: &Path, who: Who, script: &str, stop: &AtomicBool) -> anyhow::Result<()> {
    println!("fresh-root: {}", describe(who, script));
    let mut child = command(root, who, script)
        .spawn()
        .context("starting chroot")?;
    let pgid = child.id() as libc::pid_t;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("{} ended with {status}", describe(who, script));
        }
        if stop.load(Ordering::Relaxed) {
            stop_group(pgid, &mut child);
            bail!("interrupted: {}", describe(who, script));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM to the group (zcmatrix stops its guests and writes its report), SIGKILL after 20 s.
fn stop_group(pgid: libc::pid_t, child: &mut std::process::Child) {
    // SAFETY: kill(2) of the process group this process created for the child.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above; whatever of the group is left.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// What `script` prints in the root (its standard output), whatever its exit status.
pub fn output_in_root(root: &Path, who: Who, script: &str) -> anyhow::Result<String> {
    let out = command(root, who, script)
        .stderr(Stdio::inherit())
        .output()
        .context("starting chroot")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|w| w.to_str().unwrap()).collect()
    }

    #[test]
    fn root_runs_with_a_root_login_environment() {
        let v = chroot_argv(Path::new("/r"), Who::Root, "cargo xtask setup");
        assert_eq!(
            words(&v),
            [
                "/r",
                "/usr/bin/env",
                "-i",
                "HOME=/root",
                "USER=root",
                "LOGNAME=root",
                "PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "CI=true",
                "CARGO_TERM_COLOR=never",
                "/bin/bash",
                "-euo",
                "pipefail",
                "-c",
                "cargo xtask setup"
            ]
        );
    }

    #[test]
    fn the_user_runs_through_runuser_without_the_sbin_folders() {
        let v = chroot_argv(Path::new("/r"), Who::User("runner"), "true");
        let w = words(&v);
        assert_eq!(w[..5], ["/r", "/usr/sbin/runuser", "-u", "runner", "--"]);
        assert!(w.contains(&"HOME=/home/runner"));
        assert!(w.contains(&"USER=runner"));
        let path = w.iter().find(|x| x.starts_with("PATH=")).unwrap();
        assert!(path.starts_with("PATH=/home/runner/.cargo/bin:"), "{path}");
        assert!(!path.contains("sbin"), "{path}");
        assert_eq!(w.last(), Some(&"true"));
    }
}
