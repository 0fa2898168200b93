//! The compatibility report: one model read from (and written as) `report.json`, and every
//! format rendered from it, so that the formats cannot disagree.
//!
//! A crate of its own so that both the host (`vm`, `xtask`) and the harness's native mode can
//! write the same report without the harness depending on any QEMU code.

//!
//! The model (`model`, `merge`) is the leaf every other module reads. The renderers and what
//! only they need (the analysis of a run, charts, the families' own sections, diffs, text
//! helpers) sit above it, behind the default `render` feature: the guest's harness streams
//! records and builds without them.

pub mod merge;
pub mod model;

#[cfg(feature = "render")]
pub mod analysis;
#[cfg(feature = "render")]
pub mod charts;
#[cfg(feature = "render")]
pub mod cost;
#[cfg(feature = "render")]
pub mod diff;
#[cfg(feature = "render")]
pub mod html;
#[cfg(feature = "render")]
pub mod junit;
#[cfg(feature = "render")]
pub mod markdown;
#[cfg(feature = "render")]
mod render;
#[cfg(feature = "render")]
pub mod section;
#[cfg(feature = "render")]
pub mod text;

#[cfg(feature = "render")]
pub use analysis::Analysis;
pub use model::*;
