//! The user-facing error type: every failure a command can end with, its exit code,
//! and the single place where errors are rendered for the user.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
};

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
    Usage(String),
    /// JOB (or the emulator) could not be reached or refused us.
    #[error("{0}")]
    Infrastructure(String),
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

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::INVALID,
            Error::Plan(_) => exit::INVALID,
            Error::Infrastructure(_) => exit::INFRASTRUCTURE,
            Error::Io { .. } => exit::INFRASTRUCTURE,
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
