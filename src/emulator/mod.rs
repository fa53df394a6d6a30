//! baton's local BlueKing JOB: the v2, v3 and v4 HTTP APIs over real HTTP, with scripts
//! really executed and files really copied inside per-host sandbox folders.

pub mod exec;
pub mod files;
pub mod rolling;
pub mod sandbox;
