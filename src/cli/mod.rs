//! The command line: clap types, one file per command family, and the mapping of
//! outcomes to exit codes.

pub mod approve;
pub mod backend;
pub mod emulator;
pub mod history;
pub mod inspect;
pub mod launch;
pub mod logs;
pub mod notices;
pub mod outputs;
pub mod plan_output;
pub mod preflight;
pub mod resume;
pub mod run;
pub mod runtime;
pub mod warnings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// Approve (or reject) an approval gate a run waits at, or will reach on resume.
    Approve(approve::ApproveArgs),
    /// List recorded runs, show one again, or prune old ones.
    Runs(history::RunsArgs),
    /// Print a recorded step's full logs as JOB keeps them.
    Logs(logs::LogsArgs),
    /// Serve the local JOB emulator.
    Emulator(emulator::EmulatorArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print baton's man page (roff) to stdout.
    Man,
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
        Command::Logs(args) => logs::logs(args),
        Command::Approve(args) => approve::approve(args),
        Command::Emulator(args) => emulator::serve(args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
        Command::SandboxExec(args) => emulator::sandbox_exec(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => crate::error::report(error),
    }
}

/// Shells `baton completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash: `source <(baton completions bash)`.
    Bash,
    /// zsh: write it as `_baton` into a folder on `$fpath`.
    Zsh,
    /// fish: write it to `~/.config/fish/completions/baton.fish`.
    Fish,
}

fn completions(shell: Shell) -> Result<ExitCode, Error> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "baton", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

fn man() -> Result<ExitCode, Error> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|source| Error::Io {
            context: "cannot write the man page".into(),
            source,
        })?;
    Ok(ExitCode::SUCCESS)
}
