//! Consumes `RunEvent`s: progress bars on a TTY, plain lines otherwise, and the final
//! table, JSON report, JUnit file and self-contained HTML page.

pub mod failure_paths;
pub mod html;
pub mod line;
pub mod links;
pub mod plain;
pub mod progress;
pub mod summary;
pub mod timeline;
pub mod watch;
