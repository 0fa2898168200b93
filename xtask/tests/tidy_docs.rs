//! Tidy tests of the documentation, after rust-analyzer's: they read files only, boot nothing,
//! and fail with what to fix. The README stays a five-minute read, its commands stay the ones CI
//! runs, and no link in README.md or docs/ points at a file or heading that is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SETUP_MATRIX: &str = "cargo xtask setup && cargo xtask test-matrix";
const SETUP_TESTS: &str = "cargo xtask setup && cargo test --workspace";

fn root() -> PathBuf {
    xtask::workspace_root()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every Markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines outside fenced code blocks (a link or heading inside one is an example).
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor for a heading: lowercase, spaces to hyphens, punctuation but `-` and `_`
/// dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// The targets of inline links and images, `[text](target)`, outside code spans and blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        // Code spans can hold `](`; drop them first.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn readme_is_a_five_minute_read() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines (at most 200): move the detail into docs/ and link it"
    );
}

#[test]
fn readme_gives_the_two_set_up_commands_and_ci_runs_the_test_one() {
    let readme = read(&root().join("README.md"));
    for command in [SETUP_MATRIX, SETUP_TESTS] {
        assert!(
            readme.lines().any(|l| l.trim() == command),
            "README.md no longer gives `{command}` on a line of its own"
        );
    }
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == SETUP_TESTS),
        ".ci/run must run the README's test command, `{SETUP_TESTS}`, as written"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        let dir = doc.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", doc.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                if target.extension().is_some_and(|e| e == "md")
                    && !anchors(&read(&target)).contains(fragment)
                {
                    broken.push(format!("{}: {link} (no such heading)", doc.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_reader_reads_what_github_does() {
    assert_eq!(
        anchor(" Judging a kernel by another's rules"),
        "judging-a-kernel-by-anothers-rules"
    );
    assert_eq!(anchor(" What `auto` does"), "what-auto-does");
    assert_eq!(
        links("see [a](docs/a.md#b) and ![c](c.png), not `[d](e)`\n```\n[f](g)\n```"),
        ["docs/a.md#b", "c.png"]
    );
}
