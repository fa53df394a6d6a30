//! `baton emulator` (serve the local JOB) and the hidden `__sandbox-exec` helper that
//! enters a host sandbox before running a script.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::Error;

/// `baton emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// World file: hosts, groups, accounts, job plans, credentials, faults.
    #[arg(long)]
    pub world: Option<PathBuf>,
    /// Folder holding the host sandboxes.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Run scripts without a mount namespace (they can touch this machine).
    #[arg(long)]
    pub unisolated: bool,
}

/// `baton __sandbox-exec`: arguments are private to the emulator.
#[derive(Debug, clap::Args)]
pub struct SandboxExecArgs {
    /// The host folder that becomes `/`.
    #[arg(long)]
    pub root: PathBuf,
    /// The program and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs `baton emulator`.
pub fn serve(_args: EmulatorArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("the emulator is not implemented yet".into()))
}

/// Runs `baton __sandbox-exec`.
pub fn sandbox_exec(args: SandboxExecArgs) -> Result<ExitCode, Error> {
    crate::emulator::sandbox::exec_main(&args.root, &args.command)
}
