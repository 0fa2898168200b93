//! A private apt: its own sources list, lists, archive cache and (empty) dpkg status, so fetching
//! a kernel touches nothing of the host's apt state and needs no root. Every index is verified
//! against the Debian archive keyring; nothing is ever marked trusted.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

/// The keyring Debian and Ubuntu ship in `debian-archive-keyring`.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(
        "the Debian archive keyring {DEBIAN_KEYRING} is missing: install the \
         `debian-archive-keyring` package (Debian and Ubuntu both have it)"
    )]
    NoKeyring,
    #[error(
        "no Debian mirror is known: this host's apt sources name none. Set \
         ZCMATRIX_DEBIAN_MIRROR to a Debian archive URL (and ZCMATRIX_DEBIAN_SECURITY_MIRROR to \
         its security archive if it is not at the same place with a -security suffix)"
    )]
    NoMirror,
    #[error("apt has no version {version} of {package}")]
    VersionGone { package: String, version: String },
}

/// Where the archive and its security archive are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub main: String,
    pub security: String,
}

impl Mirror {
    /// From the environment, else from the host's apt sources when the host is Debian.
    pub fn discover() -> anyhow::Result<Mirror> {
        let env_main = std::env::var("ZCMATRIX_DEBIAN_MIRROR")
            .ok()
            .filter(|s| !s.is_empty());
        let env_sec = std::env::var("ZCMATRIX_DEBIAN_SECURITY_MIRROR")
            .ok()
            .filter(|s| !s.is_empty());
        let host = host_source_uris();
        let (host_main, host_sec) = classify_uris(&host);
        let main = env_main.or(host_main).ok_or(AptError::NoMirror)?;
        let security = env_sec
            .or(host_sec)
            .unwrap_or_else(|| format!("{}-security", main.trim_end_matches('/')));
        Ok(Mirror { main, security })
    }
}

/// URIs named by the host's apt sources, in both the one-line and the deb822 formats.
fn host_source_uris() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut extra: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = fs::read_to_string(&f) {
            out.extend(uris_in(&text));
        }
    }
    out
}

fn uris_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("URIs:") {
            out.extend(rest.split_whitespace().map(str::to_string));
        } else if line.starts_with("deb ") {
            // deb [options] URI suite components
            let mut words = line.split_whitespace().skip(1).peekable();
            if words.peek().is_some_and(|w| w.starts_with('[')) {
                for w in words.by_ref() {
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            if let Some(uri) = words.next() {
                out.push(uri.to_string());
            }
        }
    }
    out
}

/// The first URIs whose path ends in `/debian` and `/debian-security`.
fn classify_uris(uris: &[String]) -> (Option<String>, Option<String>) {
    let last = |u: &str| {
        u.trim_end_matches('/')
            .rsplit('/')
            .next()
            .map(str::to_string)
    };
    let main = uris
        .iter()
        .find(|u| last(u).as_deref() == Some("debian"))
        .cloned();
    let sec = uris
        .iter()
        .find(|u| last(u).as_deref() == Some("debian-security"))
        .cloned();
    (main, sec)
}

/// One suite line of a private sources list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    pub security: bool,
}

/// An apt environment rooted in `root`, for one set of suites.
pub struct Apt {
    root: PathBuf,
}

impl Apt {
    /// `arch`: Debian's name of the architecture whose packages this apt sees (`amd64`).
    pub fn new(root: &Path, mirror: &Mirror, suites: &[Suite], arch: &str) -> anyhow::Result<Apt> {
        if !Path::new(DEBIAN_KEYRING).exists() {
            return Err(AptError::NoKeyring.into());
        }
        for d in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            fs::create_dir_all(root.join(d))?;
        }
        let status = root.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        fs::write(root.join("etc/sources.list"), sources_list(mirror, suites))?;
        let mut conf = apt_conf(root, arch);
        conf.push_str(&inherited_host_settings());
        fs::write(root.join("apt.conf"), conf)?;
        Ok(Apt {
            root: root.to_path_buf(),
        })
    }

    fn shell(&self) -> anyhow::Result<Shell> {
        let sh = Shell::new()?;
        sh.set_var("APT_CONFIG", self.root.join("apt.conf"));
        sh.set_var("LC_ALL", "C");
        Ok(sh)
    }

    pub fn has_lists(&self) -> bool {
        fs::read_dir(self.root.join("state/lists"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with("Packages"))
            })
            .unwrap_or(false)
    }

    /// Fetches and verifies the suites' indexes. apt fails (not warns) on a bad signature.
    pub fn update(&self) -> anyhow::Result<()> {
        let sh = self.shell()?;
        let out = cmd!(sh, "apt-get -q update -o APT::Update::Error-Mode=any")
            .ignore_status()
            .output()?;
        if !out.status.success() {
            bail!(
                "apt-get update failed:\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The candidate stanza of a package (`apt-cache show --no-all-versions`), or of one version.
    pub fn show(&self, package: &str, version: Option<&str>) -> anyhow::Result<Stanza> {
        let sh = self.shell()?;
        let spec = match version {
            Some(v) => format!("{package}={v}"),
            None => package.to_string(),
        };
        let out = cmd!(sh, "apt-cache show --no-all-versions {spec}")
            .ignore_status()
            .output()?;
        if !out.status.success() || out.stdout.is_empty() {
            if let Some(v) = version {
                return Err(AptError::VersionGone {
                    package: package.into(),
                    version: v.into(),
                }
                .into());
            }
            bail!(
                "apt-cache show {spec} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Stanza::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Downloads one exact version into `dir` (apt verifies it against the signed index) and
    /// returns its path.
    pub fn download(&self, package: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(dir)?;
        let sh = self.shell()?;
        sh.change_dir(dir);
        let spec = format!("{package}={version}");
        let out = cmd!(sh, "apt-get -q download {spec}")
            .ignore_status()
            .output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("not found") || err.contains("Can't find a source") {
                return Err(AptError::VersionGone {
                    package: package.into(),
                    version: version.into(),
                }
                .into());
            }
            bail!("apt-get download {spec} failed: {}", err.trim());
        }
        // apt names the file package_version_arch.deb with ':' of epochs escaped as %3a.
        let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
        fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .with_context(|| {
                format!(
                    "apt-get download left no {prefix}*.deb in {}",
                    dir.display()
                )
            })
    }
}

/// Settings of the host's apt that describe its network rather than its package state: proxies,
/// and whether Release files are checked for expiry (hosts behind a frozen mirror turn that off;
/// signatures are checked either way).
const INHERITED: &[&str] = &[
    "Acquire::http::Proxy",
    "Acquire::https::Proxy",
    "Acquire::Check-Valid-Until",
    "Acquire::Check-Date",
];

pub fn inherited_host_settings() -> String {
    let Ok(sh) = Shell::new() else {
        return String::new();
    };
    let dump = cmd!(sh, "apt-config dump")
        .env_remove("APT_CONFIG")
        .quiet()
        .ignore_status()
        .read()
        .unwrap_or_default();
    select_inherited(&dump)
}

fn select_inherited(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            INHERITED
                .iter()
                .any(|k| l.split_whitespace().next() == Some(k))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

pub fn sources_list(mirror: &Mirror, suites: &[Suite]) -> String {
    suites
        .iter()
        .map(|s| {
            let uri = if s.security {
                &mirror.security
            } else {
                &mirror.main
            };
            format!("deb [signed-by={DEBIAN_KEYRING}] {uri} {} main\n", s.name)
        })
        .collect()
}

/// Points every apt directory into `root`, and away from the host's configuration parts, so
/// host pins, proxies hooks and index targets (DEP-11, translations) do not leak in.
pub fn apt_conf(root: &Path, arch: &str) -> String {
    let r = root.display();
    format!(
        r#"Dir::Etc "{r}/etc/";
Dir::Etc::Main "{r}/etc/apt.conf";
Dir::Etc::Parts "{r}/etc/apt.conf.d/";
Dir::Etc::SourceList "{r}/etc/sources.list";
Dir::Etc::SourceParts "{r}/etc/sources.list.d/";
Dir::Etc::Preferences "{r}/etc/preferences";
Dir::Etc::PreferencesParts "{r}/etc/preferences.d/";
Dir::Etc::Trusted "{r}/etc/trusted.gpg";
Dir::Etc::TrustedParts "{r}/etc/trusted.gpg.d/";
Dir::State "{r}/state/";
Dir::State::status "{r}/state/status";
Dir::Cache "{r}/cache/";
Dir::Log "{r}/log/";
APT::Architecture "{arch}";
APT::Architectures {{ "{arch}"; }};
Acquire::Languages "none";
APT::Sandbox::User "root";
Debug::NoLocking "true";
"#
    )
}

/// One `apt-cache show` record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    pub fn parse(text: &str) -> Stanza {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                if !fields.is_empty() {
                    break; // first stanza only
                }
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Stanza { fields }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Package names in Depends, first alternative of each, without version constraints.
    pub fn depends(&self) -> Vec<String> {
        self.get("Depends")
            .unwrap_or("")
            .split(',')
            .filter_map(|item| item.split('|').next())
            .map(|alt| alt.split_whitespace().next().unwrap_or("").to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherits_only_network_settings_from_the_host() {
        let dump = "APT::Architecture \"amd64\";\nAcquire::Check-Valid-Until \"false\";\nAcquire::http::Proxy \"http://p:3128\";\nDir::State \"/var/lib/apt\";\n";
        assert_eq!(
            select_inherited(dump),
            "Acquire::Check-Valid-Until \"false\";\nAcquire::http::Proxy \"http://p:3128\";\n"
        );
    }

    #[test]
    fn finds_uris_in_both_source_formats() {
        let deb822 = "Types: deb\n# URIs: http://commented.example/debian\nURIs: http://m.example/debian\nSuites: bookworm\n";
        let oneline = "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian-security bookworm-security main\n# deb http://x.example/debian sid main\n";
        assert_eq!(uris_in(deb822), ["http://m.example/debian"]);
        assert_eq!(uris_in(oneline), ["http://m.example/debian-security"]);
    }

    #[test]
    fn classifies_main_and_security_archives() {
        let uris = vec![
            "https://nodes.example/node_20.x".to_string(),
            "http://m.example/debian-security/".to_string(),
            "http://m.example/debian".to_string(),
        ];
        assert_eq!(
            classify_uris(&uris),
            (
                Some("http://m.example/debian".into()),
                Some("http://m.example/debian-security/".into())
            )
        );
    }

    #[test]
    fn sources_list_is_signed_by_the_archive_keyring() {
        let m = Mirror {
            main: "http://m.example/debian".into(),
            security: "http://m.example/debian-security".into(),
        };
        let s = sources_list(
            &m,
            &[
                Suite {
                    name: "bookworm",
                    security: false,
                },
                Suite {
                    name: "bookworm-security",
                    security: true,
                },
            ],
        );
        assert_eq!(
            s,
            format!(
                "deb [signed-by={DEBIAN_KEYRING}] http://m.example/debian bookworm main\n\
                 deb [signed-by={DEBIAN_KEYRING}] http://m.example/debian-security bookworm-security main\n"
            )
        );
        assert!(!s.contains("trusted"));
    }

    #[test]
    fn stanza_depends_takes_first_alternative_without_versions() {
        let s = Stanza::parse(
            "Package: linux-image-7.2.13+deb14-cloud-amd64\nVersion: 7.2.13-1\nDepends: dracut | initramfs-tools (>= 0.120), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\nDescription: x\n more\n\nPackage: other\n",
        );
        assert_eq!(s.get("version"), Some("7.2.13-1"));
        assert_eq!(
            s.depends(),
            ["dracut", "linux-binary-7.2.13+deb14-cloud-amd64"]
        );
        assert_eq!(s.get("Description"), Some("x\nmore"));
    }
}
