//! What can go wrong with a host sandbox: [`SandboxError`] for refused paths and an
//! unusable isolation, [`SetupError`] for a failed step of the `__sandbox-exec` helper,
//! with the small adapters that name each step.

use std::io;

/// Why a sandbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The path would leave the host folder.
    #[error("path `{path}` escapes the sandbox of host {host}")]
    Escape {
        /// The host.
        host: String,
        /// The offending path.
        path: String,
    },
    /// Namespaces are not available and `--unisolated` was not given.
    #[error("cannot isolate scripts: {0}; pass --unisolated to run them unsandboxed")]
    NoIsolation(String),
    /// The helper was called without a program to run.
    #[error("__sandbox-exec needs a program to run after `--`")]
    NoCommand,
    /// The helper could not build the sandbox.
    #[error("sandbox: {0}")]
    Setup(#[source] SetupError),
    /// File-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub(super) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A failed helper step, named for the host log.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct SetupError {
    pub(super) what: String,
    #[source]
    pub(super) source: io::Error,
}

pub(super) fn step<T>(
    what: impl FnOnce() -> String,
    result: nix::Result<T>,
) -> Result<T, SetupError> {
    result.map_err(|errno| SetupError {
        what: what(),
        source: io::Error::from(errno),
    })
}

pub(super) fn io_step<T>(
    what: impl FnOnce() -> String,
    result: io::Result<T>,
) -> Result<T, SetupError> {
    result.map_err(|source| SetupError {
        what: what(),
        source,
    })
}
