//! KTAP, the kernel's test-result format (Documentation/dev-tools/ktap.rst, version 1): read and
//! written here so that zcmatrix's results reach kselftest's, KernelCI's and LKFT's parsers
//! without an adapter, and a user's own KTAP probe becomes results like any check's.
//!
//! The grammar is the document's: a version line, an optional plan `1..N`, then per test its
//! diagnostic lines (`# ...`), an optional nested suite indented by two spaces (starting with its
//! own version line), and its result line `ok|not ok <number> [<description>][ # [<directive>]
//! [<diagnostic data>]]`. Numbers start at 1 and rise by 1 within a level. Unknown lines are
//! allowed and kept as diagnostics; a line that *looks* like KTAP but breaks the grammar is
//! reported as a [`Problem`] with its line number, never dropped.

use crate::{CheckResult, Outcome, Record, Scope};

/// The version line a compliant producer writes.
pub const VERSION_LINE: &str = "KTAP version 1";

/// A directive after `#` on a result line (the accepted ones of ktap.rst, plus kselftest's XPASS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    Skip,
    Todo,
    Xfail,
    Xpass,
    Timeout,
    Error,
}

impl Directive {
    fn parse(word: &str) -> Option<Directive> {
        Some(match word {
            "SKIP" => Directive::Skip,
            "TODO" => Directive::Todo,
            "XFAIL" => Directive::Xfail,
            "XPASS" => Directive::Xpass,
            "TIMEOUT" => Directive::Timeout,
            "ERROR" => Directive::Error,
            _ => return None,
        })
    }

    fn as_str(&self) -> &'static str {
        match self {
            Directive::Skip => "SKIP",
            Directive::Todo => "TODO",
            Directive::Xfail => "XFAIL",
            Directive::Xpass => "XPASS",
            Directive::Timeout => "TIMEOUT",
            Directive::Error => "ERROR",
        }
    }
}

/// One test: its result line, the diagnostic lines before it, and its subtests if it has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub ok: bool,
    pub number: u32,
    pub description: String,
    pub directive: Option<Directive>,
    /// What follows `#` (after the directive, if any), trimmed.
    pub diagnostic: String,
    /// Diagnostic and unknown lines that came before the result line, without their `# `.
    pub diagnostics: Vec<String>,
    pub subtests: Option<Suite>,
    /// 1-based line of the result line in the parsed text (0 for a test built in code).
    pub line: usize,
}

/// A version line, a plan and the tests of one nesting level.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suite {
    pub plan: Option<u32>,
    pub tests: Vec<Test>,
    /// Diagnostic lines after the last result line of the level.
    pub trailing: Vec<String>,
}

/// A line that breaks the grammar, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Test {
    /// The project's outcome for a KTAP result: `ok` passes, `not ok` fails, and a directive
    /// says more (SKIP skips, XFAIL/TODO are known hazards, TIMEOUT/ERROR are errors).
    pub fn outcome(&self) -> Outcome {
        match (&self.directive, self.ok) {
            (Some(Directive::Skip), _) => Outcome::Skip,
            (Some(Directive::Xfail | Directive::Todo), _) => Outcome::Xfail,
            (Some(Directive::Xpass), _) => Outcome::Xpass,
            (Some(Directive::Timeout | Directive::Error), _) => Outcome::Error,
            (None, true) => Outcome::Pass,
            (None, false) => Outcome::Fail,
        }
    }

    /// The result line for one of the project's outcomes, as kselftest writes it: a hazard
    /// the rule predicts is `ok … # XFAIL`, a measurement is `ok … # measurement: VALUE` (no
    /// directive: parsers that know none read a plain `ok`).
    pub fn from_outcome(number: u32, name: &str, outcome: Outcome, detail: &str) -> Test {
        let (ok, directive) = match outcome {
            Outcome::Pass => (true, None),
            Outcome::Fail => (false, None),
            Outcome::Xfail => (true, Some(Directive::Xfail)),
            Outcome::Xpass => (true, Some(Directive::Xpass)),
            Outcome::Skip => (true, Some(Directive::Skip)),
            Outcome::Error => (false, Some(Directive::Error)),
            Outcome::Info => (true, None),
        };
        let diagnostic = match outcome {
            Outcome::Info => format!("measurement: {detail}"),
            _ => detail.to_string(),
        };
        Test {
            ok,
            number,
            description: name.to_string(),
            directive,
            diagnostic,
            diagnostics: Vec::new(),
            subtests: None,
            line: 0,
        }
    }
}

/// Text that may stand in a description: one line, no `#` (which would start the directive).
fn clean_description(s: &str) -> String {
    one_line(s).replace('#', "%23")
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Writes a whole KTAP document (version line, plan, tests, nested suites indented).
pub fn write(suite: &Suite) -> String {
    let mut out = String::new();
    write_suite(suite, 0, &mut out);
    out
}

fn write_suite(suite: &Suite, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!("{pad}{VERSION_LINE}\n"));
    out.push_str(&format!(
        "{pad}1..{}\n",
        suite.plan.unwrap_or(suite.tests.len() as u32)
    ));
    for t in &suite.tests {
        for d in &t.diagnostics {
            out.push_str(&format!("{pad}# {}\n", one_line(d)));
        }
        if let Some(sub) = &t.subtests {
            write_suite(sub, depth + 1, out);
        }
        out.push_str(&pad);
        out.push_str(if t.ok { "ok " } else { "not ok " });
        out.push_str(&t.number.to_string());
        let name = clean_description(&t.description);
        if !name.is_empty() {
            out.push(' ');
            out.push_str(&name);
        }
        let diag = one_line(&t.diagnostic);
        match (&t.directive, diag.is_empty()) {
            (Some(d), true) => out.push_str(&format!(" # {}", d.as_str())),
            (Some(d), false) => out.push_str(&format!(" # {} {diag}", d.as_str())),
            (None, false) => out.push_str(&format!(" # {diag}")),
            (None, true) => {}
        }
        out.push('\n');
    }
    for d in &suite.trailing {
        out.push_str(&format!("{pad}# {}\n", one_line(d)));
    }
}

/// The KTAP document of one guest's (or one native run's) records: a top-level test per target
/// (`kernel` for kernel-scope checks, then `ext4/4096`, `tmpfs`, ...) in the order results
/// came, each a nested suite of the project's results named by their ids. The hello record
/// becomes the first diagnostic line; a stream without a summary (the guest died) ends with a
/// `not ok … # ERROR` test saying so, and harness errors are diagnostic lines.
pub fn from_records(records: &[Record]) -> String {
    let mut targets: Vec<(String, Vec<&CheckResult>)> = Vec::new();
    let mut header = Vec::new();
    let mut summary = false;
    for r in records {
        match r {
            Record::Hello {
                kernel_release,
                machine,
                page_size,
                ..
            } => header.push(format!(
                "zcmatrix: kernel {kernel_release}, {machine}, page size {page_size}"
            )),
            Record::Result(c) => {
                let name = target_name(c);
                match targets.iter_mut().find(|(t, _)| *t == name) {
                    Some((_, v)) => v.push(c),
                    None => targets.push((name, vec![c])),
                }
            }
            Record::Error { message } => header.push(format!("harness error: {message}")),
            Record::Summary { .. } => summary = true,
            Record::Module { .. } | Record::Mount(_) => {}
        }
    }
    let mut tests: Vec<Test> = targets
        .into_iter()
        .enumerate()
        .map(|(i, (name, results))| target_test(i as u32 + 1, &name, &results))
        .collect();
    if !summary {
        let n = tests.len() as u32 + 1;
        tests.push(Test::from_outcome(
            n,
            "summary",
            Outcome::Error,
            "the stream ended without its summary: the run died before finishing",
        ));
    }
    if let Some(first) = tests.first_mut() {
        first.diagnostics.splice(0..0, header);
    }
    write(&Suite {
        plan: None,
        tests,
        trailing: Vec::new(),
    })
}

fn target_name(c: &CheckResult) -> String {
    match (c.scope, &c.fs, c.logical_block_size) {
        (Scope::Kernel, _, _) | (_, None, _) => "kernel".into(),
        (Scope::Fs, Some(fs), Some(lbs)) => format!("{fs}/{lbs}"),
        (Scope::Fs, Some(fs), None) => fs.clone(),
    }
}

/// A target's results as one parent test: `not ok` when any is a failure, `# SKIP` when all
/// skipped (ktap.rst's "bubbling up").
fn target_test(number: u32, name: &str, results: &[&CheckResult]) -> Test {
    let tests: Vec<Test> = results
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let detail = match c.outcome {
                Outcome::Info => c.observed.clone(),
                Outcome::Pass | Outcome::Xfail | Outcome::Xpass => String::new(),
                _ if c.detail.is_empty() => format!("observed {}", c.observed),
                _ => c.detail.clone(),
            };
            let mut t = Test::from_outcome(i as u32 + 1, &c.full_id(), c.outcome, &detail);
            if matches!(c.outcome, Outcome::Fail | Outcome::Xfail | Outcome::Xpass) {
                t.diagnostics.push(format!(
                    "{}: observed {}, expected {} ({})",
                    c.full_id(),
                    c.observed,
                    c.expected,
                    c.evidence
                ));
            }
            t
        })
        .collect();
    let failed = results.iter().any(|c| c.outcome.is_failure());
    let all_skipped = results.iter().all(|c| c.outcome == Outcome::Skip);
    Test {
        ok: !failed,
        number,
        description: name.to_string(),
        directive: all_skipped.then_some(Directive::Skip),
        diagnostic: String::new(),
        diagnostics: Vec::new(),
        subtests: Some(Suite {
            plan: None,
            tests,
            trailing: Vec::new(),
        }),
        line: 0,
    }
}

/// A parsed document: the top-level suite (absent when there is no version line at all) and
/// every grammar problem met on the way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub suite: Option<Suite>,
    pub problems: Vec<Problem>,
}

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

enum Kind<'a> {
    Version,
    Plan(Option<u32>),
    Result(Result<ResultLine<'a>, String>),
    Diagnostic(&'a str),
    Unknown,
}

struct ResultLine<'a> {
    ok: bool,
    number: u32,
    description: &'a str,
    directive: Option<Directive>,
    diagnostic: &'a str,
}

fn classify(text: &str) -> Kind<'_> {
    if ["KTAP version ", "TAP version "]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return Kind::Version;
    }
    if let Some(rest) = text.strip_prefix("1..") {
        let n = rest.split_whitespace().next().unwrap_or("");
        return Kind::Plan(n.parse().ok());
    }
    if let Some(d) = text.strip_prefix('#') {
        return Kind::Diagnostic(d.strip_prefix(' ').unwrap_or(d));
    }
    let (ok, rest) = if let Some(r) = text.strip_prefix("not ok") {
        (false, r)
    } else if let Some(r) = text.strip_prefix("ok") {
        (true, r)
    } else {
        return Kind::Unknown;
    };
    // "okay, …" or "nothing" is prose, not a result line.
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Kind::Unknown;
    }
    Kind::Result(parse_result(ok, rest.trim_start()))
}

fn parse_result(ok: bool, rest: &str) -> Result<ResultLine<'_>, String> {
    let (num, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let number: u32 = num.parse().map_err(|_| {
        format!("a result line needs a test number after `ok`/`not ok`, found `{num}`")
    })?;
    let (description, tail) = match after.split_once('#') {
        Some((d, t)) => (d.trim(), Some(t.trim())),
        None => (after.trim(), None),
    };
    let (directive, diagnostic) = match tail {
        None => (None, ""),
        Some(t) => {
            let (word, more) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            match Directive::parse(word) {
                Some(d) => (Some(d), more.trim()),
                None => (None, t),
            }
        }
    };
    Ok(ResultLine {
        ok,
        number,
        description,
        directive,
        diagnostic,
    })
}

/// Parses KTAP (or TAP 13/14 with KTAP's nesting) text.
pub fn parse(text: &str) -> Parsed {
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let trimmed = l.trim_start_matches(' ');
            Line {
                number: i + 1,
                indent: l.len() - trimmed.len(),
                text: trimmed.trim_end(),
            }
        })
        .collect();
    let mut p = Parser {
        lines,
        at: 0,
        problems: Vec::new(),
    };
    let mut before = Vec::new();
    // Anything before the first version line is unknown output (a kernel message, a banner).
    while let Some(l) = p.peek() {
        let (n, text) = (l.number, l.text);
        if matches!(classify(text), Kind::Version) {
            break;
        }
        if matches!(classify(text), Kind::Result(_) | Kind::Plan(_)) {
            p.problem(n, "a result or plan line before the `KTAP version 1` line");
        }
        before.push(text.to_string());
        p.at += 1;
    }
    let Some(first) = p.peek() else {
        let line = text.lines().count().max(1);
        p.problem(line, "no `KTAP version 1` line: this is not KTAP output");
        return Parsed {
            suite: None,
            problems: p.problems,
        };
    };
    let indent = first.indent;
    let mut suite = p.suite(indent);
    if let Some(t) = suite.tests.first_mut() {
        before.append(&mut t.diagnostics);
        t.diagnostics = before;
    }
    while let Some(l) = p.peek() {
        let (n, text) = (l.number, l.text.to_string());
        match classify(&text) {
            Kind::Diagnostic(d) => suite.trailing.push(d.to_string()),
            Kind::Unknown => suite.trailing.push(text),
            _ => p.problem(
                n,
                "a line after the end of the top-level suite (wrong indentation?)",
            ),
        }
        p.at += 1;
    }
    Parsed {
        suite: Some(suite),
        problems: p.problems,
    }
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    problems: Vec<Problem>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Line<'a>> {
        self.lines.get(self.at)
    }

    fn problem(&mut self, line: usize, message: &str) {
        self.problems.push(Problem {
            line,
            message: message.to_string(),
        });
    }

    /// One suite whose version line is the current line, at `indent` spaces.
    fn suite(&mut self, indent: usize) -> Suite {
        let version_line = self.peek().map(|l| l.number).unwrap_or(0);
        self.at += 1;
        let mut suite = Suite::default();
        if let Some(l) = self.peek() {
            if l.indent == indent {
                if let Kind::Plan(n) = classify(l.text) {
                    if n.is_none() {
                        self.problem(l.number, "a plan line must read `1..N` with N a number");
                    }
                    suite.plan = n;
                    self.at += 1;
                }
            }
        }
        let mut pending: Vec<String> = Vec::new();
        let mut sub: Option<Suite> = None;
        let mut sub_line = 0;
        // Result lines at this level, malformed ones included, so one bad line is one problem.
        let mut seen: u32 = 0;
        while let Some(l) = self.peek() {
            let (n, ind, text) = (l.number, l.indent, l.text);
            let kind = classify(text);
            if ind < indent && !matches!(kind, Kind::Diagnostic(_) | Kind::Unknown) {
                break; // the parent's line
            }
            match kind {
                Kind::Version if ind > indent => {
                    if ind != indent + 2 {
                        self.problem(n, "a nested suite must be indented by two spaces more");
                    }
                    if sub.is_some() {
                        self.problem(sub_line, "a nested suite without its parent's result line");
                    }
                    sub_line = n;
                    sub = Some(self.suite(ind));
                    continue;
                }
                Kind::Version => {
                    self.problem(n, "a version line where a result line was expected");
                    self.at += 1;
                }
                Kind::Plan(_) => {
                    self.problem(n, "a plan line that does not follow a version line");
                    self.at += 1;
                }
                Kind::Diagnostic(d) => {
                    pending.push(d.to_string());
                    self.at += 1;
                }
                Kind::Unknown => {
                    pending.push(text.to_string());
                    self.at += 1;
                }
                Kind::Result(_) if ind != indent => {
                    self.problem(n, "a result line at the wrong indentation for its suite");
                    self.at += 1;
                }
                Kind::Result(Err(e)) => {
                    seen += 1;
                    self.problem(n, &e);
                    pending.push(text.to_string());
                    self.at += 1;
                }
                Kind::Result(Ok(r)) => {
                    seen += 1;
                    let expected = seen;
                    if r.number != expected {
                        self.problem(
                            n,
                            &format!("test number {} where {expected} was expected", r.number),
                        );
                    }
                    suite.tests.push(Test {
                        ok: r.ok,
                        number: r.number,
                        description: r.description.to_string(),
                        directive: r.directive,
                        diagnostic: r.diagnostic.to_string(),
                        diagnostics: std::mem::take(&mut pending),
                        subtests: sub.take(),
                        line: n,
                    });
                    self.at += 1;
                }
            }
        }
        if sub.is_some() {
            self.problem(sub_line, "a nested suite without its parent's result line");
        }
        suite.trailing = pending;
        if let Some(plan) = suite.plan {
            if plan != seen {
                self.problem(
                    version_line,
                    &format!("the plan says {plan} tests, {seen} followed"),
                );
            }
        }
        suite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of ktap.rst's "Example KTAP output", verbatim in structure.
    const DOC_EXAMPLE: &str = "\
KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
";

    #[test]
    fn the_documents_own_example_parses_into_its_hierarchy() {
        let p = parse(DOC_EXAMPLE);
        assert_eq!(p.problems, []);
        let top = p.suite.unwrap();
        assert_eq!(top.tests.len(), 1);
        let main = &top.tests[0];
        assert_eq!((main.description.as_str(), main.ok), ("main_test", false));
        let mid = main.subtests.as_ref().unwrap();
        assert_eq!(mid.tests.len(), 3);
        let e1 = &mid.tests[0].subtests.as_ref().unwrap().tests[0];
        assert_eq!(e1.diagnostics, ["test_1: initializing test_1"]);
        let e2 = &mid.tests[1].subtests.as_ref().unwrap().tests[0];
        assert_eq!(e2.outcome(), Outcome::Skip);
        assert_eq!(e2.diagnostic, "test_1 skipped");
        let e3 = &mid.tests[2].subtests.as_ref().unwrap().tests;
        assert_eq!(e3[1].outcome(), Outcome::Fail);
        assert_eq!(e3[1].diagnostics, ["test_2: FAIL"]);
    }

    #[test]
    fn every_outcome_round_trips_through_a_result_line() {
        let tests: Vec<Test> = Outcome::ALL
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                Test::from_outcome(i as u32 + 1, &format!("fam.{}[v]", o.as_str()), o, "why")
            })
            .collect();
        let text = write(&Suite {
            plan: None,
            tests,
            trailing: vec![],
        });
        assert!(
            text.contains("ok 7 fam.info[v] # measurement: why"),
            "{text}"
        );
        assert!(text.contains("ok 3 fam.xfail[v] # XFAIL why"), "{text}");
        assert!(text.contains("not ok 6 fam.error[v] # ERROR why"), "{text}");
        let p = parse(&text);
        assert_eq!(p.problems, []);
        let got: Vec<Outcome> = p.suite.unwrap().tests.iter().map(Test::outcome).collect();
        // A measurement reads as a plain `ok` to a KTAP parser: there is no directive for it.
        let mut want = Outcome::ALL.to_vec();
        want[6] = Outcome::Pass;
        assert_eq!(got, want);
    }

    #[test]
    fn names_and_details_cannot_break_the_line() {
        let t = Test::from_outcome(1, "a#b", Outcome::Fail, "two\nlines # here");
        let text = write(&Suite {
            plan: None,
            tests: vec![t],
            trailing: vec![],
        });
        assert_eq!(
            text.lines().nth(2),
            Some("not ok 1 a%23b # two / lines # here")
        );
        assert_eq!(parse(&text).problems, []);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_numbers_and_kept() {
        let text = "\
banner from the kernel
KTAP version 1
1..3
ok 1 first
ok two second
ok 3 third
not ok 5 fifth
";
        let p = parse(text);
        let lines: Vec<usize> = p.problems.iter().map(|x| x.line).collect();
        assert_eq!(lines, [5, 7, 2], "{:?}", p.problems);
        assert!(
            p.problems[0].message.contains("test number"),
            "{}",
            p.problems[0]
        );
        let suite = p.suite.unwrap();
        // The bad line is kept as a diagnostic of the test after it, the banner of the first.
        assert_eq!(suite.tests[0].diagnostics, ["banner from the kernel"]);
        assert_eq!(suite.tests[1].diagnostics, ["ok two second"]);
        assert_eq!(suite.tests.len(), 3);
    }

    #[test]
    fn output_without_a_version_line_is_not_ktap() {
        let p = parse("hello\nok 1 x\n");
        assert!(p.suite.is_none());
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(p.problems[1].message.contains("not KTAP"));
        assert_eq!(parse("").problems.len(), 1);
    }

    #[test]
    fn a_nested_suite_needs_its_parents_result_and_two_spaces() {
        let p = parse("KTAP version 1\n1..1\n   KTAP version 1\n   1..1\n   ok 1 a\n");
        let msgs: Vec<&str> = p.problems.iter().map(|x| x.message.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("two spaces")), "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.contains("parent's result")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("plan says 1")), "{msgs:?}");
    }

    fn result(check: &str, fs: Option<&str>, outcome: Outcome) -> Record {
        Record::Result(CheckResult {
            check: check.into(),
            variant: None,
            scope: if fs.is_some() {
                Scope::Fs
            } else {
                Scope::Kernel
            },
            fs: fs.map(str::to_string),
            logical_block_size: fs.map(|_| 4096),
            outcome,
            observed: "EINVAL".into(),
            expected: "ok".into(),
            evidence: "man 2 x".into(),
            detail: String::new(),
            duration_ms: 1,
            tolerance: None,
            measures: Vec::new(),
        })
    }

    #[test]
    fn a_guests_records_become_one_suite_per_target_that_parses_cleanly() {
        let records = vec![
            Record::Hello {
                schema_version: crate::SCHEMA_VERSION,
                kernel_release: "6.1.0-1-cloud-amd64".into(),
                cmdline: String::new(),
                mem_total_kb: 1,
                uptime_ms: 1,
                machine: "x86_64".into(),
                page_size: 4096,
                kernel_build: String::new(),
            },
            result("uring.opcodes", None, Outcome::Info),
            result("dio.align", Some("ext4"), Outcome::Pass),
            result("dio.odd", Some("ext4"), Outcome::Fail),
            result("dax.mounted", Some("xfs"), Outcome::Skip),
            Record::Summary {
                counts: crate::Counts::default(),
                duration_ms: 1,
            },
        ];
        let text = from_records(&records);
        let p = parse(&text);
        assert_eq!(p.problems, [], "{text}");
        let top = p.suite.unwrap();
        let names: Vec<&str> = top.tests.iter().map(|t| t.description.as_str()).collect();
        assert_eq!(names, ["kernel", "ext4/4096", "xfs/4096"]);
        assert!(top.tests[0].diagnostics[0].contains("6.1.0-1-cloud-amd64"));
        assert_eq!(
            top.tests.iter().map(Test::outcome).collect::<Vec<_>>(),
            [Outcome::Pass, Outcome::Fail, Outcome::Skip]
        );
        let ext4 = &top.tests[1].subtests.as_ref().unwrap().tests;
        assert_eq!(ext4[1].description, "dio.odd");
        assert!(
            ext4[1].diagnostics[0].contains("expected ok (man 2 x)"),
            "{text}"
        );
        // Without a summary the document says the run died.
        let died = from_records(&records[..3]);
        let last = parse(&died).suite.unwrap().tests.pop().unwrap();
        assert_eq!(
            (last.description.as_str(), last.outcome()),
            ("summary", Outcome::Error)
        );
    }

    #[test]
    fn tap13_and_prose_lines_are_accepted() {
        let p = parse("TAP version 13\n1..1\nokay, starting\nok 1 x # rcode=0\n");
        assert_eq!(p.problems, []);
        let t = &p.suite.unwrap().tests[0];
        assert_eq!(
            (t.outcome(), t.diagnostic.as_str()),
            (Outcome::Pass, "rcode=0")
        );
        assert_eq!(t.diagnostics, ["okay, starting"]);
    }
}
