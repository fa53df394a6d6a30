//! `validate`, `plan`, `graph` and `schema`: everything that looks at a plan without
//! running it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::Error;

/// `baton validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The plan file.
    pub plan: PathBuf,
}

/// `baton plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan file.
    pub plan: PathBuf,
}

/// `baton graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
}

/// Runs `baton validate`.
pub fn validate(_args: ValidateArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("validate is not implemented yet".into()))
}

/// Runs `baton plan`.
pub fn plan(_args: PlanArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("plan is not implemented yet".into()))
}

/// Runs `baton graph`.
pub fn graph(_args: GraphArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("graph is not implemented yet".into()))
}

/// Runs `baton schema`.
pub fn schema() -> Result<ExitCode, Error> {
    Err(Error::Usage("schema is not implemented yet".into()))
}
