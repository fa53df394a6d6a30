//! Consumes `RunEvent`s: progress bars on a TTY, plain lines otherwise, and the final
//! table, JSON report and JUnit file.

pub mod failure_paths;
pub mod line;
pub mod plain;
pub mod progress;
pub mod summary;
pub mod watch;
