//! What can go wrong with run state: the state folder, run folders, journals and
//! locks. Rendering and exit codes live in `crate::error`.

use std::path::PathBuf;

/// A failure of the run-state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No state folder could be determined (no flag, no `$BATON_STATE_DIR`,
    /// `$XDG_STATE_HOME` or `$HOME`).
    #[error("cannot find a state folder: set --state-dir, BATON_STATE_DIR, XDG_STATE_HOME or HOME")]
    NoStateDir,
    /// A file or folder of the state could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What baton was doing.
        context: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but is not what baton wrote.
    #[error("{} is damaged: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `<run-id>` names no run (or is an ambiguous prefix).
    #[error("{0}")]
    NoSuchRun(String),
    /// Another run of the plan holds its lock.
    #[error("{0}")]
    Locked(String),
    /// The plan changed since the run started and `--force` was not given.
    #[error("{0}")]
    PlanChanged(String),
    /// The resume request does not fit the run.
    #[error("{0}")]
    Resume(String),
}

impl StateError {
    /// An I/O error with what was being done and where.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
