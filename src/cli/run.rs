//! `run` (and later `resume`): load, validate, execute, report, and map the outcome to
//! an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::Error;

/// `baton run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The plan file.
    pub plan: PathBuf,
}

/// Runs `baton run`.
pub fn run(_args: RunArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("run is not implemented yet".into()))
}
