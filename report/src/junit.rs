//! `junit.xml`: one test case per check × cell, for the common CI test reporters. A suite per
//! cell; `classname` is the family, `name` the id plus the cell. `fail` is a failure and `error`
//! an error, `skip` is skipped with its reason; `xfail`, `xpass` and `info` pass (they do not fail
//! a run) and carry a property `outcome` saying which, so a hazard never reads as a plain pass to
//! a tool that looks. A cell that did not finish cleanly gets one more case, an error, so that a
//! dead guest cannot look like a green suite.

use std::io::Cursor;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use zcmatrix_protocol::{CheckResult, Outcome};

use crate::model::{family, Cell, Report, Status};

/// The counts the `tests`, `failures`, `errors` and `skipped` attributes carry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Totals {
    fn of(c: &Cell) -> Totals {
        let unclean = usize::from(c.status != Status::Completed);
        Totals {
            tests: c.results.len() + unclean,
            failures: c.count(Outcome::Fail),
            errors: c.count(Outcome::Error) + unclean,
            skipped: c.count(Outcome::Skip),
        }
    }

    fn add(&mut self, o: Totals) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }

    fn attrs(&self) -> [(&'static str, String); 4] {
        [
            ("tests", self.tests.to_string()),
            ("failures", self.failures.to_string()),
            ("errors", self.errors.to_string()),
            ("skipped", self.skipped.to_string()),
        ]
    }
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

pub fn render(report: &Report) -> String {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    write(report, &mut w).expect("writing XML into memory cannot fail");
    let mut xml = String::from_utf8(w.into_inner().into_inner()).expect("the writer wrote UTF-8");
    xml.push('\n');
    xml
}

fn write(report: &Report, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut total = Totals::default();
    report.cells.iter().for_each(|c| total.add(Totals::of(c)));
    let attrs = total.attrs();
    w.create_element("testsuites")
        .with_attribute(("name", "zcmatrix"))
        .with_attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())))
        .write_inner_content(|w| {
            for c in &report.cells {
                suite(c, w)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn suite(c: &Cell, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
    let attrs = Totals::of(c).attrs();
    let label = c.label();
    let time: u64 = c.results.iter().map(|r| r.duration_ms).sum();
    w.create_element("testsuite")
        .with_attribute(("name", label.as_str()))
        .with_attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())))
        .with_attribute(("time", secs(time).as_str()))
        .write_inner_content(|w| {
            let console = (!c.guest_dir.is_empty()).then(|| c.console_log());
            let props = [
                ("kernel_spec", Some(c.kernel_spec.as_str())),
                ("kernel_release", c.kernel_release.as_deref()),
                ("kernel_version", c.kernel_version.as_deref()),
                ("fs", Some(c.fs.as_str())),
                ("status", Some(c.status.as_str())),
                ("console_log", console.as_deref()),
            ];
            w.create_element("properties").write_inner_content(|w| {
                for (k, v) in props.iter().filter_map(|(k, v)| Some((k, (*v)?))) {
                    w.create_element("property")
                        .with_attribute(("name", *k))
                        .with_attribute(("value", v))
                        .write_empty()?;
                }
                Ok(())
            })?;
            if c.status != Status::Completed {
                w.create_element("testcase")
                    .with_attribute(("classname", "zcmatrix"))
                    .with_attribute(("name", format!("guest [{label}]").as_str()))
                    .write_inner_content(|w| {
                        w.create_element("error")
                            .with_attribute(("type", c.status.as_str()))
                            .with_attribute(("message", c.status_detail.as_str()))
                            .write_empty()?;
                        Ok(())
                    })?;
            }
            for r in &c.results {
                case(r, &label, w)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn case(r: &CheckResult, cell: &str, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
    let name = format!("{} [{cell}]", r.full_id());
    let el = w
        .create_element("testcase")
        .with_attribute(("classname", family(&r.check)))
        .with_attribute(("name", name.as_str()))
        .with_attribute(("time", secs(r.duration_ms).as_str()));
    let message = format!("observed {}, expected {}", r.observed, r.expected);
    match r.outcome {
        Outcome::Pass => {
            el.write_empty()?;
        }
        Outcome::Fail | Outcome::Error => {
            let (tag, msg) = if r.outcome == Outcome::Fail {
                ("failure", message)
            } else {
                ("error", format!("{}: {}", r.observed, r.detail))
            };
            el.write_inner_content(|w| {
                w.create_element(tag)
                    .with_attribute(("type", r.outcome.as_str()))
                    .with_attribute(("message", msg.as_str()))
                    .write_text_content(BytesText::new(&format!("evidence: {}", r.evidence)))?;
                Ok(())
            })?;
        }
        Outcome::Skip => {
            el.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", r.detail.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
        Outcome::Xfail | Outcome::Xpass | Outcome::Info => {
            el.write_inner_content(|w| {
                w.create_element("properties").write_inner_content(|w| {
                    for (k, v) in [
                        ("outcome", r.outcome.as_str()),
                        ("observed", r.observed.as_str()),
                        ("expected", r.expected.as_str()),
                        ("evidence", r.evidence.as_str()),
                    ] {
                        w.create_element("property")
                            .with_attribute(("name", k))
                            .with_attribute(("value", v))
                            .write_empty()?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixture::{self, result};
    use quick_xml::events::BytesStart;
    use quick_xml::Reader;

    fn attr(e: &BytesStart, name: &str) -> Option<String> {
        e.try_get_attribute(name)
            .unwrap()
            .map(|a| a.unescape_value().unwrap().into_owned())
    }

    #[test]
    fn one_case_per_check_and_cell_with_the_right_counts_and_escaping() {
        let mut r = fixture::two_kernels();
        let hostile = "<x>\"&]]>";
        r.cells[0].results.push(result(
            "dio.bad",
            Some(("ext4", Some(4096))),
            Outcome::Fail,
            hostile,
        ));
        r.cells[1].results.push(result(
            "dio.broke",
            Some(("tmpfs", None)),
            Outcome::Error,
            "EIO",
        ));
        r.cells[3].status = Status::Timeout;
        let xml = r.junit();
        let mut reader = Reader::from_str(&xml);
        let (mut cases, mut failures, mut errors, mut skipped, mut xfail_props) = (0, 0, 0, 0, 0);
        let mut top = None;
        let mut names = Vec::new();
        let mut message = None;
        loop {
            match reader.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                    b"testsuites" => {
                        top = Some((
                            attr(&e, "tests"),
                            attr(&e, "failures"),
                            attr(&e, "errors"),
                            attr(&e, "skipped"),
                        ))
                    }
                    b"testcase" => {
                        cases += 1;
                        names.push((attr(&e, "classname").unwrap(), attr(&e, "name").unwrap()));
                    }
                    b"failure" => {
                        failures += 1;
                        message = attr(&e, "message");
                    }
                    b"error" => errors += 1,
                    b"skipped" => skipped += 1,
                    b"property" if attr(&e, "name").as_deref() == Some("outcome") => {
                        assert_eq!(attr(&e, "value").as_deref(), Some("xfail"));
                        xfail_props += 1;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let results: usize = r.cells.iter().map(|c| c.results.len()).sum();
        // Every result, plus the timed-out cell's own case.
        assert_eq!(cases, results + 1);
        assert_eq!((failures, errors, skipped, xfail_props), (1, 2, 4, 2));
        assert_eq!(
            top,
            Some((
                Some((results + 1).to_string()),
                Some("1".into()),
                Some("2".into()),
                Some("4".into())
            ))
        );
        assert!(
            names.contains(&("dio".into(), "dio.open [5.10 ext4/4096]".into())),
            "{names:?}"
        );
        assert!(
            names.contains(&("cow".into(), "cow.leak[thp] [6.1 tmpfs]".into())),
            "{names:?}"
        );
        assert_eq!(
            message.unwrap(),
            format!("observed {hostile}, expected {hostile}")
        );
    }
}
