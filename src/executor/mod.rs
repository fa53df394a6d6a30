//! The run engine: schedules ready steps, drives each step's life against JOB, owns the
//! run's lifecycle from start to outcome, and reports everything as `RunEvent`s.

pub mod events;
pub mod gate;
pub mod prompt;
pub mod reconcile;
pub mod run;
pub mod scheduler;
pub mod signals;
pub mod step;
pub mod wait;
