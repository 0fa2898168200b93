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

/// The top-level module a file of `src` belongs to (`setup/needs.rs` → `setup`), or `None` for
/// the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The code before a file's `#[cfg(test)]` module: what tests import says nothing of the
/// layering.
fn without_tests(code: &str) -> &str {
    match code
        .find("#[cfg(test)]\nmod ")
        .or_else(|| code.find("#[cfg(test)]\npub(crate) mod "))
    {
        Some(i) => &code[..i],
        None => code,
    }
}

/// The top-level modules `code` names through `crate::` (also `crate::{a, b::c}`), and, in a
/// file directly under `src`, through `super::`.
fn imports(code: &str, top_level_file: bool) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut prefixes = vec!["crate::"];
    if top_level_file {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix) {
            if code[..at].ends_with(ident) {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(|p| p.trim())
                    .collect(),
                None => vec![rest],
            };
            for n in names {
                let name: String = n.chars().take_while(|&c| ident(c)).collect();
                if !name.is_empty() && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Each module of a crate's `src` and the other top-level modules it imports.
fn module_graph(src: &Path) -> Vec<(String, Vec<String>)> {
    let mut graph: Vec<(String, Vec<String>)> = Vec::new();
    let files = rust_files(src);
    let modules: Vec<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    for f in &files {
        let Some(m) = module_of(src, f) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        let top = f.parent() == Some(src);
        let deps: Vec<String> = imports(without_tests(&code(&text)), top)
            .into_iter()
            .filter(|d| *d != m && modules.contains(d))
            .collect();
        match graph.iter_mut().find(|(n, _)| *n == m) {
            Some((_, ds)) => {
                for d in deps {
                    if !ds.contains(&d) {
                        ds.push(d);
                    }
                }
            }
            None => graph.push((m, deps)),
        }
    }
    graph
}

/// The import circles of a graph: its strongly connected components of more than one module
/// (Tarjan's algorithm), each sorted.
fn circles(graph: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g [(String, Vec<String>)],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let deps: Vec<usize> = s.graph[v]
            .1
            .iter()
            .filter_map(|d| s.graph.iter().position(|(n, _)| n == d))
            .collect();
        for w in deps {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(s.graph[w].0.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let n = graph.len();
    let mut s = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Modules import downwards only: a circle means no module of it can be read, tested or moved
/// without the others.
#[test]
fn no_import_circles_in_host_crates() {
    let mut found = Vec::new();
    for krate in HOST_CRATES {
        let graph = module_graph(&workspace().join(krate).join("src"));
        for c in circles(&graph) {
            found.push(format!("{krate}: {}", c.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn circles_are_found_through_crate_and_super_paths() {
    assert_eq!(
        imports(
            "use crate::{model::Report, cost};\nlet x = super::plan::of();",
            true
        ),
        ["model", "cost", "plan"]
    );
    assert_eq!(imports("use super::Thing;", false), Vec::<String>::new());
    let g = |edges: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        edges
            .iter()
            .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    };
    assert_eq!(
        circles(&g(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &["a"])
        ])),
        [["a", "b", "c"]]
    );
    assert!(circles(&g(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])])).is_empty());
}
