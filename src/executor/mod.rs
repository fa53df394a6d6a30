//! The run engine: schedules ready steps, drives each step's life against JOB, and
//! reports everything as `RunEvent`s.

pub mod events;
pub mod prompt;
pub mod scheduler;
pub mod step;
pub mod wait;
