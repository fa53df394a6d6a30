//! baton runs release-day runbooks: YAML plans of file pushes, script runs and job
//! plans against Tencent BlueKing JOB, ordered as a DAG, watched to the end, and
//! resumable. With no JOB endpoint configured it rehearses on its own JOB emulator.

pub mod cli;
pub mod compile;
pub mod config;
pub mod emulator;
pub mod error;
pub mod executor;
pub mod job_api;
pub mod mask;
pub mod notify;
pub mod plan;
pub mod report;
pub mod state;
