//! `baton emulator` (serve the local JOB) and the hidden `__sandbox-exec` helper that
//! enters a host sandbox before running a script.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::emulator::exec::sandbox::SandboxError;
use crate::emulator::model::world_load::WorldError;
use crate::emulator::{self, EmulatorConfig, Isolation, World};
use crate::error::{Error, UsageError};
use crate::plan::span::PlanSource;

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
    /// Serve the host's scripts over the socket on stdin instead of running one program.
    #[arg(long)]
    pub executor: bool,
    /// The program and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs `baton emulator`: prints `baton emulator listening on <url>` as the first line
/// of stdout, serves until SIGINT or SIGTERM, then stops cleanly.
pub fn serve(args: EmulatorArgs) -> Result<ExitCode, Error> {
    let listen: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|_| UsageError::ListenAddress(args.listen.clone()))?;
    let world = match &args.world {
        Some(path) => load_world(path)?,
        None => World::default(),
    };
    let isolation = isolation(args.unisolated)?;
    let runtime = super::runtime::start()?;
    runtime.block_on(async move {
        let config = EmulatorConfig {
            listen,
            world,
            root: args.root.clone(),
            isolation,
        };
        let handle = emulator::start(config)
            .await
            .map_err(Error::Emulator)?;
        let mut out = std::io::stdout().lock();
        // The first line is the contract: tools read the base URL from it.
        let _ = writeln!(out, "baton emulator listening on {}", handle.base_url());
        if handle.root_is_temporary() {
            let _ = writeln!(out, "host sandboxes in {} (temporary)", handle.root().display());
        } else {
            let _ = writeln!(out, "host sandboxes in {}", handle.root().display());
        }
        let _ = out.flush();
        drop(out);
        if args.unisolated {
            eprintln!(
                "WARNING: --unisolated: scripts run WITHOUT a sandbox and can read and change this machine"
            );
        }
        wait_for_signal().await?;
        handle.shutdown().await.map_err(|source| Error::Io {
            context: "emulator server failed".into(),
            source,
        })?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads the world file at `path` for `baton emulator --world` and `baton run --world`.
/// A refused world is reported like a refused plan: `file:line:column: field: message`
/// with the source line, exit 2.
pub fn load_world(path: &Path) -> Result<World, Error> {
    World::load(path).map_err(|error| match error {
        error @ WorldError::Read { .. } => UsageError::WorldRead(error).into(),
        WorldError::Parse { path, text, source } => {
            let file = PlanSource::new(path, text);
            let issue = crate::plan::load::yaml_issue(&file, &source);
            file.errors(vec![issue]).into()
        }
        WorldError::Values {
            path,
            text,
            problems,
        } => {
            let file = PlanSource::new(path, text);
            let issues = problems
                .into_iter()
                .map(|p| file.issue(p.field, p.message).with_label("here"))
                .collect();
            file.errors(issues).into()
        }
    })
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_signal() -> Result<(), Error> {
    let io = |source| Error::Io {
        context: "cannot listen for signals".into(),
        source,
    };
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(io),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(io)
    }
}

/// Runs `baton __sandbox-exec`.
pub fn sandbox_exec(args: SandboxExecArgs) -> Result<ExitCode, Error> {
    emulator::exec::sandbox::exec_main(&args.root, &args.command, args.executor).map_err(cli_error)
}

/// How `baton emulator` and `baton run` isolate scripts: namespaces through this binary
/// unless `--unisolated`.
pub fn isolation(unisolated: bool) -> Result<Isolation, Error> {
    Isolation::for_this_binary(unisolated).map_err(cli_error)
}

/// The sandbox helper's failures as the CLI reports them.
fn cli_error(error: SandboxError) -> Error {
    match error {
        SandboxError::NoCommand => Error::Usage(UsageError::NoSandboxCommand),
        SandboxError::Io { context, source } => Error::Io { context, source },
        other => Error::Sandbox(other),
    }
}
