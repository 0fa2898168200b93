//! The compatibility report: one model read from (and written as) `report.json`, and every
//! format rendered from it, so that the formats cannot disagree.
//!
//! A crate of its own so that both the host (`vm`, `xtask`) and the harness's native mode can
//! write the same report without the harness depending on any QEMU code.

pub mod analysis;
pub mod charts;
pub mod cost;
pub mod diff;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod model;

pub use analysis::Analysis;
pub use model::*;
