//! The user-facing error type: every failure a command can end with, its exit code,
//! and the single place where errors are rendered for the user.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
};

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::compile::RenderError;
use crate::config::ConfigError;
use crate::emulator::EmulatorError;
use crate::emulator::exec::sandbox::SandboxError;
use crate::emulator::model::world_load::WorldError;
use crate::job_api::build::BuildError;
use crate::job_api::client::ClientError;
use crate::plan::span::{Issue, PlanErrors};

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
    /// A step's submission may or may not have started a job and JOB could not tell:
    /// it is not sent again until checked (`baton resume RUN --step ID --force`).
    pub const IN_DOUBT: u8 = 4;
    /// An approval gate was rejected or not answered in time, and nothing else failed.
    pub const GATE_STOPPED: u8 = 5;
    /// Another run of the plan holds the lock.
    pub const LOCKED: u8 = 75;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// Every way a baton command can fail. No variant exposes a `source()`: the renderer
/// prints each error as one line, and the messages already say their cause.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// Bad command-line usage or input outside the plan file.
    #[error("{0}")]
    Usage(UsageError),
    /// The endpoint, credentials or profile could not be resolved.
    #[error("{0}")]
    Settings(ConfigError),
    /// The callback receiver could not listen.
    #[error("cannot listen for callbacks on {listen}: {error}")]
    Callback {
        /// The address asked for.
        listen: SocketAddr,
        /// Why it failed.
        error: std::io::Error,
    },
    /// JOB could not be reached or refused us.
    #[error("{0}")]
    Client(ClientError),
    /// The local emulator a run rehearses on could not start.
    #[error("cannot start the local JOB emulator: {0}")]
    EmulatorStart(EmulatorError),
    /// `baton emulator` could not serve.
    #[error("{0}")]
    Emulator(EmulatorError),
    /// The sandbox helper could not run its command, or scripts cannot be isolated.
    #[error("{0}")]
    Sandbox(SandboxError),
    /// The plan or its inputs are invalid: every problem, with locations.
    #[error(transparent)]
    Plan(#[from] PlanErrors),
    /// Run state: the state folder, journals, locks, resume.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What baton was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A command line that cannot be carried out; nothing was sent (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Emulator-only flags given with a real endpoint.
    #[error(
        "--sandbox, --world and --unisolated apply to the local emulator only; drop them or the endpoint"
    )]
    EmulatorOnlyFlags,
    /// The plan names no business to run in.
    #[error("{}: the plan has no `scope`; JOB needs the business to run in", plan.display())]
    NoScope {
        /// The plan file.
        plan: PathBuf,
    },
    /// `--wait callback` against a remote JOB that cannot reach the receiver.
    #[error(
        "--wait callback needs a public callback URL (--callback-url or BATON_CALLBACK_URL) for a remote JOB"
    )]
    CallbackNeedsUrl,
    /// `baton logs` cannot fetch what was asked.
    #[error("{0}")]
    NoLogs(String),
    /// A plan's `notify:` rule names a channel the profile does not have.
    #[error("{}: notify names channel `{name}`, which the profile does not declare (it has: {known})", plan.display())]
    UnknownNotifyChannel {
        /// The plan file.
        plan: PathBuf,
        /// The name.
        name: String,
        /// The profile's channel names, comma-separated.
        known: String,
    },
    /// `baton emulator --listen` is not an address.
    #[error("--listen `{0}` is not an address like 127.0.0.1:0")]
    ListenAddress(String),
    /// An output path given by a flag cannot be written.
    #[error("{flag} {}: {why}", path.display())]
    Output {
        /// The flag.
        flag: &'static str,
        /// The path it gave.
        path: PathBuf,
        /// Why not.
        why: OutputProblem,
    },
    /// `baton approve` or `--approve` names a step that is not an approval gate.
    #[error("{run} has no approval gate `{step}` ({known})")]
    NoSuchGate {
        /// The run (`run ID`) or plan (`plan NAME`).
        run: String,
        /// The step named.
        step: String,
        /// The run's gates, or that it has none.
        known: String,
    },
    /// The default state folder cannot be written.
    #[error("the state folder {}: {why} (choose another with --state-dir)", path.display())]
    StateFolder {
        /// The folder.
        path: PathBuf,
        /// Why not.
        why: OutputProblem,
    },
    /// `baton validate --online` without a JOB to ask.
    #[error(
        "--online asks JOB: give --endpoint (or BATON_ENDPOINT, or a profile) and credentials (BK_APP_CODE, BK_APP_SECRET and a user)"
    )]
    OnlineNeedsEndpoint,
    /// A step could not be rendered for `baton plan`.
    #[error("{0}")]
    Render(RenderError),
    /// A step's request could not be built for `baton plan`.
    #[error("step `{step}`: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Request {
        /// The step.
        step: String,
        /// What is wrong with it.
        problems: Vec<BuildError>,
    },
    /// The world file could not be read.
    #[error("{0}")]
    WorldRead(WorldError),
    /// `__sandbox-exec` without a command.
    #[error("__sandbox-exec needs a program to run after `--`")]
    NoSandboxCommand,
}

/// Why a path a run would write to cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputProblem {
    /// A file was asked for, a folder is there.
    #[error("it is a folder; give a file name")]
    IsFolder,
    /// A folder was asked for, a file is there.
    #[error("it is a file, not a folder")]
    IsFile,
    /// The path cannot be inspected.
    #[error("cannot be used: {0}")]
    Unusable(std::io::Error),
    /// The file's folder cannot be written.
    #[error("the folder {}: {why}", folder.display())]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// Why not.
        why: Box<OutputProblem>,
    },
    /// The file's folder is a file.
    #[error("{} is not a folder", .0.display())]
    ParentNotFolder(PathBuf),
    /// The file's folder does not exist.
    #[error("the folder {} does not exist", .0.display())]
    NoFolder(PathBuf),
    /// The file's folder cannot be inspected.
    #[error("the folder {} cannot be used: {error}", folder.display())]
    FolderUnusable {
        /// The folder.
        folder: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The nearest existing folder above cannot be written.
    #[error("cannot be created: {}: {why}", at.display())]
    CannotCreate {
        /// The nearest existing folder.
        at: PathBuf,
        /// Why not.
        why: Box<OutputProblem>,
    },
    /// A file stands where a folder above it should be.
    #[error("cannot be created: {} is a file, not a folder", .0.display())]
    FileInTheWay(PathBuf),
    /// Nothing above the path exists.
    #[error("no folder above it exists")]
    NoFolderAbove,
    /// The kernel refuses writing.
    #[error("it is not writable")]
    NotWritable,
    /// Read-only file system.
    #[error("it is on a read-only file system")]
    ReadOnly,
    /// Another refusal, as the kernel describes it.
    #[error("cannot be used: {0}")]
    Refused(&'static str),
}

#[cfg(test)]
impl OutputProblem {
    /// Whether the message holds `text`, as the checks' tests ask.
    pub(crate) fn contains(&self, text: &str) -> bool {
        self.to_string().contains(text)
    }
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Self {
        Error::Usage(error)
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error::Settings(error)
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Self {
        Error::Client(error)
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Settings(_) | Error::Plan(_) => exit::INVALID,
            Error::Callback { .. }
            | Error::Client(_)
            | Error::EmulatorStart(_)
            | Error::Emulator(_)
            | Error::Sandbox(_)
            | Error::Io { .. } => exit::INFRASTRUCTURE,
            Error::State(error) => {
                use crate::state::StateError;
                match error {
                    StateError::Locked(_) => exit::LOCKED,
                    StateError::NoSuchRun(_)
                    | StateError::PlanChanged(_)
                    | StateError::Resume(_)
                    | StateError::NoStateDir => exit::INVALID,
                    StateError::Io { .. } | StateError::Corrupt { .. } => exit::INFRASTRUCTURE,
                }
            }
        }
    }
}

/// Prints `error` to stderr (with source snippets where it has them) and returns its
/// exit code. The only place errors reach the user.
pub fn report(error: Error) -> ExitCode {
    let code = error.exit_code();
    match &error {
        Error::Plan(errors) => {
            eprint!(
                "{}",
                render_issues(&errors.file, &errors.text, &errors.issues, Severity::Error)
            );
            let count = errors.issues.len();
            eprintln!(
                "error: {} is invalid ({count} problem{}); nothing was sent",
                errors.file,
                if count == 1 { "" } else { "s" }
            );
        }
        _ => {
            let mut out = String::new();
            if handler().render_report(&mut out, &error).is_err() {
                out = format!("error: {error}\n");
            }
            eprint!("{out}");
        }
    }
    ExitCode::from(code)
}

/// Renders plan issues (errors or warnings) with source snippets, one after another.
/// Each headline is `file:line:column: field: message`, so the location survives
/// copy-paste and plain logs even without the snippet.
pub fn render_issues(file: &str, text: &Arc<str>, issues: &[Issue], severity: Severity) -> String {
    let handler = handler();
    let mut out = String::new();
    for issue in issues {
        let diagnostic = IssueDiagnostic::new(file, text, issue, severity);
        if handler.render_report(&mut out, &diagnostic).is_err() {
            out.push_str(&diagnostic.headline);
            out.push('\n');
        }
    }
    out
}

/// miette's graphical handler with colours only on a terminal (tests and CI logs
/// compare plain text) and without line wrapping, which would split field paths and
/// cycle descriptions across lines.
fn handler() -> GraphicalReportHandler {
    let theme = if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme)
        .with_wrap_lines(false)
        .with_width(400)
}

/// One plan issue as a miette diagnostic.
#[derive(Debug)]
struct IssueDiagnostic {
    headline: String,
    source: Option<NamedSource<Arc<str>>>,
    label: Option<LabeledSpan>,
    help: Option<String>,
    severity: Severity,
}

impl IssueDiagnostic {
    fn new(file: &str, text: &Arc<str>, issue: &Issue, severity: Severity) -> Self {
        let headline = match issue.location {
            Some(loc) => format!(
                "{file}:{}:{}: {}: {}",
                loc.line, loc.column, issue.field, issue.message
            ),
            None => format!("{}: {}", issue.field, issue.message),
        };
        let (source, label) = match issue.location {
            Some(loc) if !text.is_empty() => (
                Some(NamedSource::new(file, text.clone())),
                Some(LabeledSpan::new_primary_with_span(
                    issue.label.clone(),
                    (loc.offset, loc.len),
                )),
            ),
            _ => (None, None),
        };
        IssueDiagnostic {
            headline,
            source,
            label,
            help: issue.help.clone(),
            severity,
        }
    }
}

impl std::fmt::Display for IssueDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.headline)
    }
}

impl std::error::Error for IssueDiagnostic {}

impl Diagnostic for IssueDiagnostic {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label
            .clone()
            .map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}
