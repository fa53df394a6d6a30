//! The command line: clap types, one file per command family, and the mapping of
//! outcomes to exit codes.

pub mod backend;
pub mod emulator;
pub mod history;
pub mod inspect;
pub mod launch;
pub mod outputs;
pub mod preflight;
pub mod resume;
pub mod run;
pub mod runtime;
pub mod warnings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;

/// baton runs release-day runbooks against BlueKing JOB.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// baton's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan and its inputs without contacting JOB.
    Validate(inspect::ValidateArgs),
    /// Print the requests a run would send, wave by wave.
    Plan(inspect::PlanArgs),
    /// Draw the plan's step graph (DOT or Mermaid).
    Graph(inspect::GraphArgs),
    /// Print the plan file's JSON Schema.
    Schema,
    /// Run a plan against JOB, or against the local emulator when no endpoint is set.
    Run(Box<run::RunArgs>),
    /// Continue a recorded run: re-attach to in-flight jobs, keep what succeeded, run the rest.
    Resume(Box<resume::ResumeArgs>),
    /// List recorded runs, show one again, or prune old ones.
    Runs(history::RunsArgs),
    /// Serve the local JOB emulator.
    Emulator(emulator::EmulatorArgs),
    /// Internal: run one command inside a host sandbox (used by the emulator).
    #[command(name = "__sandbox-exec", hide = true)]
    SandboxExec(emulator::SandboxExecArgs),
}

/// Parses the command line, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: Result<ExitCode, Error> = match cli.command {
        Command::Validate(args) => inspect::validate(args),
        Command::Plan(args) => inspect::plan(args),
        Command::Graph(args) => inspect::graph(args),
        Command::Schema => inspect::schema(),
        Command::Run(args) => run::run(*args),
        Command::Resume(args) => resume::resume(*args),
        Command::Runs(args) => history::runs(args),
        Command::Emulator(args) => emulator::serve(args),
        Command::SandboxExec(args) => emulator::sandbox_exec(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => crate::error::report(error),
    }
}
