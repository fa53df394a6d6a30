//! File pushes between host sandboxes: the copy with its strict and force modes
//! (`copy`), source matching with `REGEX:` and `*` (`sources`), the `[FILESRCIP]` and
//! `[DATE:…]` target-path macros (`target_path`), the per-host file log (`file_log`)
//! and why a target folder could not be had (`error`, [`TransferError`]).

pub mod copy;
pub mod error;
pub mod file_log;
mod sources;
pub mod target_path;

pub use copy::{SourceFiles, TransferSpec, transfer_to_host};
pub use error::TransferError;
pub use file_log::{FILE_FAILED, FILE_SUCCESS, MODE_DOWNLOAD, MODE_UPLOAD, size_text};
pub use target_path::{expand_target_path, java_to_strftime};
