//! zcmatrix harness: the checks and the runner, usable in a guest (as PID 1) or on the host.

pub mod checks;
pub mod fsdetect;
pub mod guest;
pub mod kver;
pub mod runner;
pub mod sys;
