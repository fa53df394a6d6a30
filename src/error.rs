//! The user-facing error type: every failure a command can end with, its exit code,
//! and the single place where errors are rendered for the user.

use std::process::ExitCode;

/// Exit codes, as documented in the README.
pub mod exit {
    /// Everything succeeded.
    pub const SUCCESS: u8 = 0;
    /// A step failed.
    pub const STEP_FAILED: u8 = 1;
    /// The plan or the command line is invalid; nothing was sent.
    pub const INVALID: u8 = 2;
    /// Infrastructure: JOB unreachable, authentication refused, emulator failure.
    pub const INFRASTRUCTURE: u8 = 3;
    /// Another run of the plan holds the lock.
    pub const LOCKED: u8 = 75;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// Every way a baton command can fail.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// Bad command-line usage or input outside the plan file.
    #[error("{0}")]
    #[diagnostic(code(baton::usage))]
    Usage(String),
    /// JOB (or the emulator) could not be reached or refused us.
    #[error("{0}")]
    #[diagnostic(code(baton::infrastructure))]
    Infrastructure(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    #[diagnostic(code(baton::io))]
    Io {
        /// What baton was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::INVALID,
            Error::Infrastructure(_) => exit::INFRASTRUCTURE,
            Error::Io { .. } => exit::INFRASTRUCTURE,
        }
    }
}

/// Prints `error` to stderr (with source snippets where it has them) and returns its
/// exit code. The only place errors reach the user.
pub fn report(error: Error) -> ExitCode {
    let code = error.exit_code();
    eprintln!("{:?}", miette::Report::new(error));
    ExitCode::from(code)
}
