//! The host network's certificate authorities. A machine that reaches the registries through a
//! TLS-inspecting proxy trusts the proxy's authority in its system bundle; the fresh root is on
//! the same network, so it gets the same trust, the Debian way: as local certificates that
//! `update-ca-certificates` keeps whenever it rebuilds the bundle.

use std::fs;
use std::path::Path;

const BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The PEM certificates of a bundle, each from its BEGIN to its END line.
fn certificates(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        let end = b + e + END.len();
        out.push(format!("{}\n", &rest[b..end]));
        rest = &rest[end..];
    }
    out
}

/// The host's certificates that the root's bundle lacks.
pub fn extra(host_bundle: &str, root_bundle: &str) -> Vec<String> {
    let root = certificates(root_bundle);
    certificates(host_bundle)
        .into_iter()
        .filter(|c| !root.contains(c))
        .collect()
}

/// Writes the host's extra authorities into the root's /usr/local/share/ca-certificates;
/// returns how many (the caller runs `update-ca-certificates` there).
pub fn install(root: &Path) -> anyhow::Result<usize> {
    let host = fs::read_to_string(Path::new("/").join(BUNDLE)).unwrap_or_default();
    let ours = fs::read_to_string(root.join(BUNDLE)).unwrap_or_default();
    let extra = extra(&host, &ours);
    let dir = root.join("usr/local/share/ca-certificates");
    fs::create_dir_all(&dir)?;
    for (i, c) in extra.iter().enumerate() {
        fs::write(dir.join(format!("host-network-{i}.crt")), c)?;
    }
    Ok(extra.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hosts_own_authorities_are_added() {
        let a = format!("{BEGIN}\nAAAA\n{END}\n");
        let b = format!("{BEGIN}\nBBBB\n{END}\n");
        let host = format!("{a}# a comment\n{b}");
        assert_eq!(extra(&host, &a), std::slice::from_ref(&b));
        assert!(extra(&host, &format!("{b}{a}")).is_empty());
        assert_eq!(extra(&host, ""), [a, b]);
    }
}
