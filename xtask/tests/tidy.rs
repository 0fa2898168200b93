//! Tidy tests over the workspace's host sources, in the style of rust-analyzer's: rules the
//! compiler cannot enforce, read from the files themselves.

use std::path::{Path, PathBuf};

/// The crates that run on the host and read what guests observed.
const HOST_CRATES: &[&str] = &["report", "vm", "xtask"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (a `//` to the end of a line), so that prose about
/// `observed` is no finding.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is rare enough in these crates to read as code.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What reads text apart: called on `observed`, it means numbers or facts are being parsed back
/// out of what is for people.
const PARSING: &[&str] = &[
    "parse",
    "split",
    "rsplit",
    "splitn",
    "rsplitn",
    "split_once",
    "rsplit_once",
    "split_whitespace",
    "split_terminator",
    "strip_prefix",
    "strip_suffix",
    "trim",
    "trim_start",
    "trim_end",
    "trim_matches",
    "trim_start_matches",
    "trim_end_matches",
    "find",
    "rfind",
    "chars",
    "bytes",
    "lines",
    "char_indices",
    "matches",
    "match_indices",
    "contains",
    "starts_with",
    "ends_with",
    "get",
];

/// Functions `observed` may be handed to: they show the text, they do not read it.
const SHOWING: &[&str] = &[
    "clip", "escape", "code", "Some", "push_str", "from", "format", "write", "writeln",
];

/// The places in `code` where `observed` is parsed: a parsing method called on it, or the text
/// handed to a function that is not known to only show it.
fn parses_observed(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    for (at, _) in code.match_indices("observed") {
        let end = at + "observed".len();
        // The field itself, not `observed_x` or `unobserved`, and not a binding of that name.
        if (end < bytes.len() && ident(bytes[end])) || at == 0 || bytes[at - 1] != b'.' {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let after = &code[end..];
        if let Some(rest) = after.strip_prefix('.') {
            let method: String = rest.chars().take_while(|&c| ident(c as u8)).collect();
            if PARSING.contains(&method.as_str()) {
                found.push(format!("line {line}: .observed.{method}(…)"));
            }
            continue;
        }
        // An argument: the callee is the identifier before the `(` that opens it.
        let before = code[..at].trim_end_matches(|c: char| ident(c as u8) || c == '.');
        let before = before.trim_end_matches('&').trim_end();
        if let Some(call) = before.strip_suffix('(') {
            let call = call.trim_end_matches('!');
            let callee: String = call
                .chars()
                .rev()
                .take_while(|&c| ident(c as u8))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !callee.is_empty() && !SHOWING.contains(&callee.as_str()) {
                found.push(format!("line {line}: {callee}(….observed)"));
            }
        }
    }
    found
}

/// Numbers travel typed, as `measures`: no host code reads them back out of `observed`.
#[test]
fn no_host_code_parses_observed() {
    let mut found = Vec::new();
    for krate in HOST_CRATES {
        for f in rust_files(&workspace().join(krate).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for p in parses_observed(&code(&text)) {
                found.push(format!("{}: {p}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "host code reads `observed` apart; read the result's `measures` instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_observed_rule_finds_parsing_and_lets_showing_pass() {
    for bad in [
        "let n: f64 = r.observed.parse().unwrap();",
        "let v = r.observed.split_whitespace();",
        "let v = field(&r.observed, \"cpu_pct\");",
        "let v = numbers(&o.observed);",
        "let v = crate::charts::numbers(\n    &o.observed);",
    ] {
        assert_eq!(parses_observed(bad).len(), 1, "{bad}");
    }
    for good in [
        "td { (clip(&r.observed, 60)) }",
        "let same = o.observed == n.observed;",
        "format!(\"observed {}\", r.observed)",
        "observed: observed.into(),",
        "let observed = r.observed.clone();",
        "escape(&clip(&f.observed, 120)),",
        "// the observed.split of old",
    ] {
        assert!(parses_observed(&code(good)).is_empty(), "{good}");
    }
}
