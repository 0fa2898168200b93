//! Families whose results a report shows in a section of their own rather than in the
//! generic views (the per-family grids, "What changes", the measurement charts): the cost
//! family's timings, which differ in every cell. A new one implements [`Section`] and is
//! listed in [`SECTIONS`]; the renderers and the analysis ask this module, never the family.

use maud::Markup;

use crate::model::{family, Report};

/// A family's own part of report.md and report.html.
pub trait Section: Sync {
    /// The family it shows (`cost`).
    fn family(&self) -> &'static str;
    /// What report.md gets (nothing when the report has no such results).
    fn markdown(&self, report: &Report, md: &mut String);
    /// What report.html gets (empty when the report has no such results).
    fn html(&self, report: &Report) -> Markup;
    /// Said in the family's place among the per-family grids.
    fn instead_of_grids(&self) -> &'static str;
}

/// The cost family: what each way of moving a file costs ([`crate::cost`]).
struct Cost;

impl Section for Cost {
    fn family(&self) -> &'static str {
        crate::cost::FAMILY
    }
    fn markdown(&self, report: &Report, md: &mut String) {
        crate::cost::markdown(report, md)
    }
    fn html(&self, report: &Report) -> Markup {
        crate::cost::html(report)
    }
    fn instead_of_grids(&self) -> &'static str {
        "Timings: see What zero-copy saves (cost) above."
    }
}

/// Every family with a section of its own, in the order the sections appear.
pub const SECTIONS: &[&dyn Section] = &[&Cost];

/// The section of `family`, if it has one.
pub fn of_family(family: &str) -> Option<&'static dyn Section> {
    SECTIONS.iter().copied().find(|s| s.family() == family)
}

/// Whether the check `id` (`cost.sendfile[tcp_warm]`) is shown in its family's own section.
pub fn has_own_section(id: &str) -> bool {
    of_family(family(id)).is_some()
}
